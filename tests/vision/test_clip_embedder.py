from __future__ import annotations

import hashlib
import json
import logging
from contextlib import nullcontext as does_not_raise
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from tests.conftest import read_rgb
from vision.clip_embedder import ClipEmbedder
from vision.device import pick_device
from vision.errors import ModelError, WeightsError
from vision.image_decode import read_image_file
from vision.semantic import SemanticModel

TINY_MODEL = "onscreen-test-tiny"
"""A 2-layer, 32-d open_clip ViT: the real code paths (tokenizer, towers, checkpoint loading)
at a fraction of ViT-B-32's cost, for tests that need several models or a weights file."""
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}
HAS_CUDA = torch.cuda.is_available()


def register_tiny_model(directory: Path) -> str:
    """Register ``TINY_MODEL`` with open_clip (idempotent) and return its name."""
    if open_clip.get_model_config(TINY_MODEL) is None:
        path = directory / f"{TINY_MODEL}.json"
        path.write_text(json.dumps(TINY_CONFIG))
        open_clip.add_model_config(path)
    return TINY_MODEL


@pytest.fixture(scope="module")
def b32() -> ClipEmbedder:
    """The real default architecture, random init: same compute as real weights."""
    return ClipEmbedder(random_weights=True, device="cpu", batch_size=2)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> ClipEmbedder:
    register_tiny_model(tmp_path_factory.mktemp("clip-config"))
    return ClipEmbedder(TINY_MODEL, random_weights=True, device="cpu", batch_size=2)


@pytest.fixture(scope="module")
def photos(real_images: dict[str, Path]) -> list[np.ndarray]:
    """Five real photos of four sizes (bus twice, mirrored: a same-size group)."""
    bus = read_rgb(real_images["bus"])
    return [
        bus,
        read_rgb(real_images["zidane"]),
        np.ascontiguousarray(bus[:, ::-1]),
        read_rgb(real_images["astronaut"]),
        read_rgb(real_images["coffee"]),
    ]


# -- device ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "preference, device_type, dtype, expectation",
    [
        (
            "auto",
            "cuda" if HAS_CUDA else "cpu",
            torch.float16 if HAS_CUDA else torch.float32,
            does_not_raise(),
        ),
        ("cpu", "cpu", torch.float32, does_not_raise()),
        (" CPU ", "cpu", torch.float32, does_not_raise()),
        ("tpu", None, None, pytest.raises(ModelError, match="unknown device 'tpu'")),
        ("cuda:x", None, None, pytest.raises(ModelError, match="expected cuda:N")),
        pytest.param(
            "cuda",
            None,
            None,
            pytest.raises(ModelError, match="CUDA is not available"),
            marks=pytest.mark.skipif(HAS_CUDA, reason="this machine has CUDA"),
        ),
        pytest.param(
            "cuda:99",
            None,
            None,
            pytest.raises(ModelError, match="has 1 CUDA device|has \\d"),
            marks=pytest.mark.skipif(not HAS_CUDA, reason="needs CUDA"),
        ),
    ],
)
def test_pick_device(preference, device_type, dtype, expectation) -> None:
    with expectation:
        choice = pick_device(preference)
        assert choice.device.type == device_type
        assert choice.dtype == dtype
        assert choice.name.startswith(device_type)


# -- construction errors (all raised before any model is built) --------------------------------


@pytest.mark.parametrize(
    "kwargs, exc, message",
    [
        ({}, ModelError, "no weights given"),
        ({"weights": Path("w.safetensors"), "random_weights": True}, ModelError, "choose one"),
        (
            {"weights": Path("/nonexistent/open_clip_model.safetensors")},
            WeightsError,
            r"/nonexistent/open_clip_model\.safetensors not found: run "
            r"`onscreen weights fetch clip-vit-b-32-laion2b`",
        ),
        (
            {"model_name": "ViT-Q-99", "random_weights": True},
            ModelError,
            "unknown CLIP architecture",
        ),
        ({"random_weights": True, "batch_size": 0}, ValueError, r"batch_size must be in 1\.\.1024"),
        ({"random_weights": True, "device": "tpu"}, ModelError, "unknown device"),
        ({"random_weights": True, "weights_sha256": "abc"}, ValueError, "64 hex digits"),
        ({"random_weights": True, "text_cache_size": -1}, ValueError, "text_cache_size must be"),
    ],
)
def test_constructor_errors(kwargs, exc, message) -> None:
    with pytest.raises(exc, match=message) as info:
        ClipEmbedder(**kwargs)
    assert type(info.value) is exc


def test_weights_with_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "clip.onnx"
    path.write_bytes(b"not weights")
    with pytest.raises(WeightsError, match=r"clip\.onnx: unsupported format '\.onnx'"):
        ClipEmbedder(weights=path)


# -- images ------------------------------------------------------------------------------------


def test_embed_images_shape_dtype_norm_and_batching(b32: ClipEmbedder, photos) -> None:
    batched = b32.embed_images(photos)  # batch_size=2: batches of 2, 2, 1
    assert batched.shape == (5, 512) and batched.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)
    singles = np.concatenate([b32.embed_images([img]) for img in photos])
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    assert b32.dim == 512 and b32.input_size == (224, 224)
    assert b32.embed_images([]).shape == (0, 512)


def test_preprocess_matches_open_clip_transform(b32: ClipEmbedder, real_images) -> None:
    """Same input tensor as open_clip's PIL eval transform: resampled in uint8 like PIL, so the
    only differences are rounding ties (a float resample measured mean 0.002, max 0.085)."""
    reference = open_clip.image_transform(224, is_train=False)
    for name in ("bus", "zidane", "astronaut", "coffee", "chelsea"):
        img = read_rgb(real_images[name])
        want = reference(Image.fromarray(img)).unsqueeze(0)
        got = b32.preprocess([img])
        assert got.shape == want.shape == (1, 3, 224, 224)
        diff = (got - want).abs()
        assert float(diff.mean()) < 0.0005, name
        assert float(diff.max()) < 0.03, name


def test_random_init_is_deterministic_loud_and_leaves_rng_alone(
    b32: ClipEmbedder, photos, caplog: pytest.LogCaptureFixture
) -> None:
    torch.manual_seed(1234)
    expected_draw = torch.rand(3)
    torch.manual_seed(1234)
    with caplog.at_level(logging.WARNING, logger="vision.clip_embedder"):
        other = ClipEmbedder(random_weights=True, device="cpu")
    assert torch.equal(torch.rand(3), expected_draw)  # caller's RNG stream untouched
    warnings = [r for r in caplog.records if r.name == "vision.clip_embedder"]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING
    assert "RANDOM WEIGHTS" in warnings[0].getMessage()
    assert "NOT MEANINGFUL" in warnings[0].getMessage()
    assert not [r for r in caplog.records if "initialized randomly" in r.getMessage()]
    assert other.is_random and other.model_id == b32.model_id
    assert other.model_id.startswith("ViT-B-32@random-seed0")
    np.testing.assert_allclose(
        other.embed_images(photos[:1]), b32.embed_images(photos[:1]), atol=1e-6
    )


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            np.zeros((8, 8), np.uint8),
            r"images\[1\] must be an \(H, W, 3\) uint8 RGB array, got \(8, 8\)",
        ),
        (np.zeros((8, 8, 4), np.uint8), r"images\[1\] .* got \(8, 8, 4\) uint8"),
        (np.zeros((8, 8, 3), np.float32), r"images\[1\] .* got \(8, 8, 3\) float32"),
        (np.zeros((0, 8, 3), np.uint8), r"images\[1\] .* got \(0, 8, 3\)"),
        ("bus.jpg", r"images\[1\] .* got str"),
    ],
)
def test_embed_images_rejects_bad_arrays(tiny: ClipEmbedder, photos, bad, message) -> None:
    with pytest.raises(ValueError, match=message):
        tiny.embed_images([photos[0], bad])


def test_int8_visual_tower_stays_close_to_fp32(b32: ClipEmbedder, photos) -> None:
    q = ClipEmbedder(random_weights=True, device="cpu", int8=True)
    assert q.int8 and q.name == "clip-random-int8" and q.model_id == b32.model_id
    assert not any(type(m) is torch.nn.Linear for m in q._model.visual.modules())
    cos = (q.embed_images(photos) * b32.embed_images(photos)).sum(axis=1)
    assert cos.min() > 0.999, cos
    np.testing.assert_array_equal(q.embed_texts(["a bus"]), b32.embed_texts(["a bus"]))


def test_satisfies_concept_embedder_protocol(b32: ClipEmbedder, tiny: ClipEmbedder) -> None:
    assert isinstance(b32, SemanticModel) and isinstance(tiny, SemanticModel)


# -- image files -------------------------------------------------------------------------------


def test_embed_image_files_equals_decoded_arrays(tiny: ClipEmbedder, real_images) -> None:
    paths = [real_images[n] for n in ("grace_hopper", "logo2", "chelsea")]
    from_files = tiny.embed_image_files(paths)
    from_arrays = tiny.embed_images([read_image_file(p) for p in paths])
    assert from_files.shape == (3, 32)
    np.testing.assert_allclose(from_files, from_arrays, atol=1e-6)


# -- texts -------------------------------------------------------------------------------------


def test_embed_texts_shape_norm_and_cache(b32: ClipEmbedder) -> None:
    prompts = ["a red double-decker bus", "a cup of coffee", "a red double-decker bus"]
    before = b32.text_cache_info
    first = b32.embed_texts(prompts)
    after_first = b32.text_cache_info
    assert first.shape == (3, 512) and first.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(first[0], first[2])
    assert after_first.misses - before.misses == 2  # the repeated prompt is encoded once
    again = b32.embed_texts(["a cup of coffee", "a red double-decker bus"])
    after_again = b32.text_cache_info
    assert after_again.misses == after_first.misses  # no text-tower pass
    assert after_again.hits - after_first.hits == 2
    np.testing.assert_array_equal(again, first[[1, 0]])
    assert not np.allclose(first[0], first[1])


def test_text_cache_is_bounded_lru(tmp_path: Path) -> None:
    register_tiny_model(tmp_path)
    small = ClipEmbedder(TINY_MODEL, random_weights=True, device="cpu", text_cache_size=2)
    small.embed_texts(["a", "b"])
    small.embed_texts(["a"])  # refresh "a": "b" is now the oldest
    small.embed_texts(["c"])  # evicts "b"
    info = small.text_cache_info
    assert (info.size, info.maxsize, info.misses, info.hits) == (2, 2, 3, 1)
    small.embed_texts(["a"])
    assert small.text_cache_info.hits == 2
    small.embed_texts(["b"])
    assert small.text_cache_info.misses == 4


@pytest.mark.parametrize(
    "texts, exc, message",
    [
        ("one prompt", TypeError, "got a single str"),
        (["ok", 3], TypeError, r"texts\[1\] must be a str, got int"),
    ],
)
def test_embed_texts_rejects_bad_input(tiny: ClipEmbedder, texts, exc, message) -> None:
    with pytest.raises(exc, match=message):
        tiny.embed_texts(texts)


def test_embed_texts_empty(tiny: ClipEmbedder) -> None:
    assert tiny.embed_texts([]).shape == (0, 32)


# -- weights files (tiny architecture: a ViT-B-32 checkpoint is 600 MB) ------------------------


@pytest.fixture(scope="module")
def tiny_trained(tmp_path_factory: pytest.TempPathFactory, tiny: ClipEmbedder):
    """A tiny model with its own (seed 7) weights, saved as safetensors and as a torch pickle."""
    from safetensors.torch import save_file

    torch.manual_seed(7)
    model = open_clip.create_model(TINY_MODEL, pretrained=None).eval()
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    d = tmp_path_factory.mktemp("weights")
    save_file(state, str(d / "tiny.safetensors"))
    torch.save(state, d / "tiny.pt")
    return model, d


@pytest.mark.parametrize("filename", ["tiny.safetensors", "tiny.pt"])
def test_load_weights_file(tiny_trained, tiny: ClipEmbedder, photos, filename, caplog) -> None:
    model, d = tiny_trained
    path = d / filename
    with caplog.at_level(logging.INFO):
        loaded = ClipEmbedder(TINY_MODEL, weights=path, device="cpu")
    assert not any(
        "RANDOM" in r.getMessage() or "randomly" in r.getMessage() for r in caplog.records
    )
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.model_id == f"{TINY_MODEL}@sha256:{sha[:16]}"
    assert not loaded.is_random
    got = loaded.embed_images(photos[:2])
    with torch.inference_mode():
        want = torch.nn.functional.normalize(
            model.encode_image(loaded.preprocess(photos[:2])), dim=-1
        )
    np.testing.assert_allclose(got, want.numpy(), atol=1e-5)
    assert not np.allclose(got, tiny.embed_images(photos[:2]), atol=1e-3)  # not the seed-0 init
    # Mixed lengths in one batch (the text tower runs only up to the longest prompt), an empty
    # prompt, and one past the 77-token context (truncated): all equal to stock encode_text.
    prompts = [
        "a bus",
        "",
        "a red double-decker bus in a busy street",
        "a " + "very " * 90 + "long",
    ]
    text = loaded.embed_texts(prompts)
    with torch.inference_mode():
        want_text = model.encode_text(open_clip.get_tokenizer(TINY_MODEL)(prompts), normalize=True)
    np.testing.assert_allclose(text, want_text.numpy(), atol=1e-5)
    pinned = ClipEmbedder(TINY_MODEL, weights=path, device="cpu", weights_sha256="AB" * 32)
    assert pinned.model_id == f"{TINY_MODEL}@sha256:{'ab' * 8}"


class _NotTensors:
    pass


@pytest.mark.parametrize(
    "write, message",
    [
        (lambda p: p.with_suffix(".safetensors").write_bytes(b"\x00" * 64), "cannot be loaded"),
        (
            lambda p: torch.save({"visual.proj": torch.zeros(2)}, p.with_suffix(".pt")),
            "Missing key",
        ),
        (
            lambda p: torch.save({"x": _NotTensors()}, p.with_suffix(".pt")),
            "Unpickling|weights_only",
        ),
    ],
)
def test_bad_weights_file(tiny: ClipEmbedder, tmp_path: Path, write, message) -> None:
    write(tmp_path / "bad")
    path = next(tmp_path.glob("bad.*"))
    with pytest.raises(WeightsError, match=message) as info:
        ClipEmbedder(TINY_MODEL, weights=path, device="cpu")
    assert str(path) in str(info.value)

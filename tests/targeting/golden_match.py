"""A pinned ``match()`` scenario: a few hundred campaigns with every clause kind, one long
timeline and a still image, and the placements the implementation gave for them.

Why: ``match`` is rewritten for speed from time to time, and "the same placements, the same
reasons, the same order" is the contract such a rewrite must keep. The hand-built tests check
rules one at a time; this one checks everything at once against a golden file written by an
earlier implementation (``data/match_golden.json``), so a change anywhere in signals,
decisions, segments, reasons or ranking shows up as a diff.

The scenario is generated from fixed seeds (no model: ``FakeEmbedder``, hash-seeded IAB
vectors): clauses ``concept`` (prompts and example sets), ``iab`` (with and without a
threshold), ``logo``, ``face`` (with ``max_count``), ``text``, in ``all`` and ``any``;
exclusions of every kind (detector and prompt safety classes, concepts, logos, text); flights,
gaps, minimum durations and bids that vary; a timeline of 200 keyframes (more than one
``MATCH_FRAME_CHUNK``) with shot cuts, keyframes without an embedding, fused logo matches,
second opinions and OCR reads with typical confusions.

Regenerate the golden file only when a change of behaviour is intended, and say so in the
commit: ``PYTHONPATH=. .venv/bin/python -m tests.targeting.golden_match``.
"""

from __future__ import annotations

import json
import math
import random
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from targeting.concept_index import ConceptIndex
from targeting.match import match
from targeting.rules_schema import Campaign
from targeting.types import Placement, Reason
from tests.targeting.fakes import FakeEmbedder, _unit
from tests.targeting.timelines import TODAY
from vision.taxonomy import iab_categories
from vision.types import LOGO_METHODS, Detection, FrameFacts, LogoMatch, SafetyFlag, TextRead

GOLDEN = Path(__file__).with_name("data") / "match_golden.json"
N_CAMPAIGNS = 300
N_KEYFRAMES = 200
N_PROMPTS = 40
BRANDS = tuple(f"brand{i}" for i in range(12))
PHRASES = ("acme", "winter tyres", "big sale", "free delivery", "new model", "rival cola")
EXAMPLE_FILES = ("examples/a.jpg", "examples/b.jpg", "examples/c.jpg")
STEP_S = 0.5
FLOAT_TOL = 1e-6
"""Scores may differ by float noise between BLAS builds; anything larger is a change."""


def prompt(i: int) -> str:
    return f"prompt {i}"


def write_examples(root: Path) -> None:
    """The example images as files with fixed bytes (``FakeEmbedder`` hashes the bytes)."""
    for rel in EXAMPLE_FILES:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"golden example " + rel.encode())


def iab_vocabulary(dim: int) -> tuple[tuple[str, ...], np.ndarray]:
    ids = tuple(c.id for c in iab_categories())
    return ids, np.stack([_unit(b"iab:" + i.encode(), dim) for i in ids])


def _clause(rng: random.Random, iab_ids: tuple[str, ...]) -> dict[str, Any]:
    kind = rng.choices(
        ["concept", "example", "iab", "logo", "face", "text"], [0.35, 0.05, 0.15, 0.2, 0.12, 0.13]
    )[0]
    if kind == "concept":
        th = rng.choice([0.25, 0.3, 0.45, None])
        c: dict[str, Any] = {"prompt": prompt(rng.randrange(N_PROMPTS))}
        if th is not None:
            c["threshold"] = th
        return {"concept": c}
    if kind == "example":
        files = rng.sample(EXAMPLE_FILES, rng.randint(1, 2))
        return {"concept": {"examples": files, "threshold": rng.choice([0.2, 0.3])}}
    if kind == "iab":
        iab: dict[str, Any] = {"ids": [rng.choice(iab_ids)], "top_k": rng.choice([1, 3, 5])}
        if rng.random() < 0.3:
            iab["threshold"] = 0.3
        return {"iab": iab}
    if kind == "logo":
        logo: dict[str, Any] = {"brand": rng.choice(BRANDS), "min_score": rng.choice([0.5, 0.7])}
        if rng.random() < 0.3:
            logo["min_area"] = 0.02
        return {"logo": logo}
    if kind == "face":
        face: dict[str, Any] = {"min_count": rng.randint(1, 2), "min_area": rng.choice([0.0, 0.02])}
        if rng.random() < 0.3:
            face["max_count"] = face["min_count"] + 1
        return {"face": face}
    phrases = rng.sample(PHRASES, rng.randint(1, 2))
    return {"text": {"any": phrases, "min_score": rng.choice([0.5, 0.8])}}


def campaigns(iab_ids: tuple[str, ...], seed: int = 11) -> list[Campaign]:
    rng = random.Random(seed)
    out = []
    for i in range(N_CAMPAIGNS):
        clauses = [_clause(rng, iab_ids) for _ in range(rng.randint(1, 4))]
        if len(clauses) > 1 and rng.random() < 0.3:
            target = {"all": clauses[:1], "any": clauses[1:]}
        elif len(clauses) > 1 and rng.random() < 0.1:
            target = {"all": clauses}
        else:
            target = {"any": clauses}
        exclude: dict[str, Any] = {}
        if rng.random() < 0.4:
            exclude["safety"] = rng.sample(["nudity", "violence", "weapons"], rng.randint(1, 2))
        if rng.random() < 0.15:
            exclude["concepts"] = [{"prompt": prompt(rng.randrange(N_PROMPTS)), "threshold": 0.4}]
        if rng.random() < 0.1:
            exclude["logos"] = [{"brand": rng.choice(BRANDS)}]
        if rng.random() < 0.08:
            exclude["text"] = [rng.choice(PHRASES)]
        spec: dict[str, Any] = {
            "id": f"g{i:03d}",
            "advertiser": f"adv{i % 17}",
            "bid_cpm": round(rng.uniform(0.5, 5.0), 2),
            "target": target,
            "exclude": exclude,
            "min_duration_s": rng.choice([0.0, 1.0, 2.0, 2.0, 4.0]),
            "gap_s": rng.choice([0.0, 0.5, 0.5, 1.0, 1.0, 2.0]),
        }
        if rng.random() < 0.1:
            spec["flight"] = rng.choice(
                [{"end": "2026-11-30"}, {"start": "2026-12-02"}, {"start": "2026-11-01"}]
            )
        out.append(Campaign.model_validate(spec))
    return out


def _ocr(phrase: str, rng: random.Random) -> str:
    """A phrase as OCR might read it: upper case, a confusion, the blanks dropped, or noise."""
    how = rng.randrange(5)
    if how == 0:
        return phrase.upper()
    if how == 1:
        return phrase.replace("m", "rn").replace("o", "0")
    if how == 2:
        return phrase.replace(" ", "").upper()
    if how == 3:
        return f"{phrase} now on"
    return phrase[:-1] + "x"  # one substitution: within budget for long phrases only


def _keyframe(
    t: float, base: np.ndarray, brand: str, rng: random.Random, nrng: np.random.Generator
) -> FrameFacts:
    v = base + 0.15 * nrng.standard_normal(base.size).astype(np.float32)
    emb = None if rng.random() < 0.03 else (v / np.linalg.norm(v)).astype(np.float32)
    faces = tuple(
        Detection(
            "face",
            "FACE_FEMALE",
            round(rng.uniform(0.3, 0.95), 3),
            rng.choice([(0.1, 0.1, 0.3, 0.35), (0.5, 0.5, 0.6, 0.6)]),
        )
        for _ in range(rng.choice([0, 0, 0, 1, 2, 3]))
    )
    logos: tuple[LogoMatch, ...] = ()
    if rng.random() < 0.6:
        box = rng.choice([(0.6, 0.6, 0.8, 0.7), (0.0, 0.0, 0.1, 0.1)])
        method = rng.choice(LOGO_METHODS[:2])  # features, detector
        logos = (LogoMatch(brand, round(rng.uniform(0.4, 0.95), 3), box, method),)
    safety: list[SafetyFlag] = []
    if rng.random() < 0.05:
        safety.append(
            SafetyFlag("nudity", round(rng.uniform(0.5, 0.95), 3), "detector", (0.2, 0.2, 0.5, 0.6))
        )
    if rng.random() < 0.04:
        safety.append(SafetyFlag("violence", round(rng.uniform(0.5, 0.8), 3), "clip"))
    if rng.random() < 0.1:
        safety.append(SafetyFlag("not_a_person", round(rng.uniform(0.5, 0.95), 3), "clip"))
    text = tuple(
        TextRead(
            _ocr(rng.choice(PHRASES), rng), round(rng.uniform(0.4, 0.99), 3), (0.1, 0.8, 0.9, 0.9)
        )
        for _ in range(rng.choice([0, 0, 1, 2]))
    )
    return FrameFacts("golden", t, emb, faces, logos, tuple(safety), text=text)


def timeline(
    embedder: FakeEmbedder, iab_matrix: np.ndarray, n: int = N_KEYFRAMES, seed: int = 5
) -> list[FrameFacts]:
    """Scenes of 2..12 keyframes, each near two prompts and one IAB category, with one brand;
    a scene may start with a shot-cut keyframe 0.2 s after the last interval one."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    frames: list[FrameFacts] = []
    t = 0.0
    while len(frames) < n:
        p1, p2 = rng.sample(range(N_PROMPTS), 2)
        cat = iab_matrix[rng.randrange(len(iab_matrix))]
        base = (
            0.45 * embedder.text_vector(prompt(p1))
            + 0.35 * embedder.text_vector(prompt(p2))
            + 0.5 * cat
        )
        brand = rng.choice(BRANDS)
        if frames and rng.random() < 0.3:
            t = round(t - STEP_S + 0.2, 3)
        for _ in range(min(rng.randint(2, 12), n - len(frames))):
            frames.append(_keyframe(t, base, brand, rng, nrng))
            t = round(t + STEP_S, 3)
    return frames


def inputs(root: Path) -> tuple[list[FrameFacts], list[Campaign], ConceptIndex]:
    """The pinned timeline, campaigns and their index; ``root`` receives the example files."""
    write_examples(root)
    emb = FakeEmbedder()
    iab_ids, iab_matrix = iab_vocabulary(emb.dim)
    cs = campaigns(iab_ids)
    idx = ConceptIndex.build(cs, emb, rules_root=root, iab_matrix=iab_matrix, iab_ids=iab_ids)
    return timeline(emb, iab_matrix), cs, idx


def scenario(root: Path) -> dict[str, list[Placement]]:
    """Placements of the pinned campaigns on the long timeline and on a still image (its
    keyframe 40); ``root`` receives the example files."""
    tl, cs, idx = inputs(root)
    return {
        "video": match(tl, cs, idx, today=TODAY),
        "still": match([tl[40]], cs, idx, today=TODAY, media="still"),
    }


def reason_record(r: Reason) -> dict[str, Any]:
    return {
        "kind": r.kind,
        "what": r.what,
        "score": r.score,
        "t": r.t,
        "box": None if r.box is None else list(r.box),
        "detail": r.detail,
    }


def placement_record(p: Placement) -> dict[str, Any]:
    """Every field at full precision (``to_json`` rounds, which could hide a change)."""
    return {
        "rank": p.rank,
        "campaign": p.campaign,
        "media": p.media,
        "start_s": p.start_s,
        "end_s": p.end_s,
        "score": p.score,
        "advertiser": p.advertiser,
        "bid_cpm": p.bid_cpm,
        "reasons": [reason_record(r) for r in p.reasons],
    }


def records(got: dict[str, list[Placement]]) -> dict[str, list[dict[str, Any]]]:
    return {name: [placement_record(p) for p in ps] for name, ps in got.items()}


def differences(got: Any, want: Any, where: str = "") -> list[str]:
    """Where ``got`` and ``want`` differ: strings, ints and structure exactly, floats within
    ``FLOAT_TOL``."""
    if isinstance(want, float) and isinstance(got, int | float) and not isinstance(got, bool):
        if math.isclose(got, want, rel_tol=0.0, abs_tol=FLOAT_TOL):
            return []
        return [f"{where}: {got!r} != {want!r}"]
    if isinstance(want, dict) and isinstance(got, dict):
        if got.keys() != want.keys():
            return [f"{where}: keys {sorted(got)} != {sorted(want)}"]
        return [d for k in want for d in differences(got[k], want[k], f"{where}.{k}")]
    if isinstance(want, list) and isinstance(got, list):
        out = [f"{where}: {len(got)} items != {len(want)}"] if len(got) != len(want) else []
        return out + [
            d
            for i, (g, w) in enumerate(zip(got, want, strict=False))
            for d in differences(g, w, f"{where}[{i}]")
        ]
    return [] if got == want else [f"{where}: {got!r} != {want!r}"]


def dumps(rec: dict[str, list[dict[str, Any]]]) -> str:
    """One placement a line, so a diff of the golden file shows which placements changed."""
    parts = [
        json.dumps(name) + ": [\n" + ",\n".join(json.dumps(p) for p in ps) + "\n]"
        for name, ps in rec.items()
    ]
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rec = records(scenario(Path(tmp)))
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(dumps(rec), encoding="utf-8")
    print(f"wrote {GOLDEN}: " + ", ".join(f"{k} {len(v)} placements" for k, v in rec.items()))


if __name__ == "__main__":
    main()

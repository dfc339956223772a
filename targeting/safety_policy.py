"""How detector brand-safety flags and face boxes become decisions: the rules a vendor defends.

A detector (NudeNet) box is evidence, not a verdict. On footage nobody here made it reads the
smooth skin-coloured shapes of animation and animals as exposed bodies (Big Buck Bunny's
rabbit: FEMALE_BREAST_EXPOSED 0.57 / 0.56 / 0.64 on three keyframes, a face 0.67), so the
class threshold alone blocks a children's cartoon. A detector class (``nudity``) blocks a
keyframe when its strongest box scores at least the class threshold *and* one of:

1. **alone**: the score is at least ``alone`` (0.85): one keyframe this confident blocks by
   itself, whatever else is said;
2. **confident and consistent**: the score is at least ``confident`` (0.70) and at least
   ``min_keyframes`` (2) keyframes within ``window_s`` (1.0 s) of it reach the threshold;
3. **consistent, not overruled**: it is consistent (as in 2) and the second opinion (the
   ``not_a_person`` flag, ``vision.safety``) is below ``not_a_person`` (0.80), or missing: no
   semantic model means no veto (fail closed).

A still image is its own whole timeline: it counts as consistent. Everything else is not
blocked, and the reason is kept (``SafetyVerdict.why``) for ``--explain``; the raw detector
scores stay in the facts.

Faces: a face box counts for face targeting unless the frame's second opinion is at least
``not_a_person`` and the box scores below ``face_confident`` (0.75): the rabbit's 0.67 "face"
and chelsea's (a cat) 0.16 do not count, real faces (zidane, bus, grace_hopper, all frames the
second opinion puts under 0.45) do.

The defaults were calibrated on ``bench/safety_set.py`` (``bench/bench_safety.py``); every value
is a field of ``SafetyPolicy``, passed to ``match``/``explain_frames``/``scan_timeline``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vision.safety_classes import NOT_A_PERSON
from vision.types import Box, Detection, FrameFacts


@dataclass(frozen=True)
class SafetyPolicy:
    """The decision rules above; scores are 0..1, ``window_s`` seconds, ``min_keyframes`` >= 1."""

    alone: float = 0.85
    confident: float = 0.70
    min_keyframes: int = 2
    window_s: float = 1.0
    not_a_person: float = 0.80
    face_confident: float = 0.75
    use_second_opinion: bool = True

    def __post_init__(self) -> None:
        for name in ("alone", "confident", "not_a_person", "face_confident"):
            v = getattr(self, name)
            if not (isinstance(v, int | float) and math.isfinite(v) and 0.0 <= v <= 1.0):
                raise ValueError(f"SafetyPolicy.{name} must be in 0..1, got {v!r}")
        if self.confident > self.alone:
            raise ValueError(
                f"SafetyPolicy.confident ({self.confident:g}) must not exceed alone ({self.alone:g})"
            )
        if not (isinstance(self.min_keyframes, int) and 1 <= self.min_keyframes <= 100):
            raise ValueError(
                f"SafetyPolicy.min_keyframes must be 1..100, got {self.min_keyframes!r}"
            )
        if not (math.isfinite(self.window_s) and 0.0 <= self.window_s <= 60.0):
            raise ValueError(f"SafetyPolicy.window_s must be in 0..60 s, got {self.window_s!r}")


DEFAULT_SAFETY_POLICY = SafetyPolicy()
"""The policy ``match`` and ``--explain`` use unless given another."""

OLD_RULE = SafetyPolicy(
    alone=0.0, confident=0.0, min_keyframes=1, window_s=0.0, use_second_opinion=False
)
"""The rule before issue 13 (any flag at the class threshold blocks; every face counts), for
benchmarks: with ``alone`` 0 every flag at or above the threshold blocks alone."""


@dataclass(frozen=True)
class SafetyVerdict:
    """One detector class on one keyframe whose strongest box reached the class threshold:
    ``blocked`` or not, and ``why`` in one sentence. ``score``/``label``/``box`` are the raw
    strongest box's."""

    blocked: bool
    score: float
    label: str
    box: Box | None
    why: str


def second_opinion(frame: FrameFacts) -> float | None:
    """The frame's ``not_a_person`` probability, or None when the semantic model gave none."""
    for fl in frame.safety:
        if fl.category == NOT_A_PERSON:
            return fl.score
    return None


def face_counts(d: Detection, opinion: float | None, policy: SafetyPolicy) -> bool:
    """Whether face box ``d`` counts on a frame whose second opinion is ``opinion``."""
    if not policy.use_second_opinion or opinion is None or opinion < policy.not_a_person:
        return True
    return d.score >= policy.face_confident


def face_veto_note(d: Detection, opinion: float, policy: SafetyPolicy) -> str:
    """Why a face box does not count (for ``--explain``)."""
    return (
        f"face {d.label} {d.score:.2f} not counted: the second opinion says not a person "
        f"({NOT_A_PERSON} {opinion:.2f} >= {policy.not_a_person:g}) and {d.score:.2f} < "
        f"face_confident {policy.face_confident:g}"
    )


def detector_verdicts(
    frames: Sequence[FrameFacts],
    category: str,
    threshold: float,
    policy: SafetyPolicy = DEFAULT_SAFETY_POLICY,
) -> list[SafetyVerdict | None]:
    """Per keyframe (``frames`` in time order, one media): the verdict on detector class
    ``category`` at ``threshold``, or None where no box of it reaches the threshold."""
    n = len(frames)
    score = np.zeros(n, dtype=np.float64)
    best: list[tuple[str, Box | None]] = [("", None)] * n
    for i, f in enumerate(frames):
        for fl in f.safety:
            if fl.category == category and fl.source == "detector" and fl.score > score[i]:
                score[i] = fl.score
                best[i] = (fl.label or category, fl.box)
    times = np.asarray([f.t for f in frames], dtype=np.float64)
    over = score >= threshold
    out: list[SafetyVerdict | None] = [None] * n
    if not over.any():
        return out
    over_t = times[over]
    still = n == 1
    w = policy.window_s
    for i in np.flatnonzero(over).tolist():
        s = float(score[i])
        label, box = best[i]
        agree = int(np.count_nonzero(np.abs(over_t - times[i]) <= w + 1e-9))
        consistent = still or agree >= policy.min_keyframes
        where = "a still image" if still else f"{agree} keyframe(s) within ±{w:g} s"
        opinion = second_opinion(frames[i]) if policy.use_second_opinion else None
        head = f"{label} {s:.2f} >= {threshold:g}"
        if s >= policy.alone:
            blocked, why = True, f"{label} {s:.2f} >= alone {policy.alone:g}: blocks by itself"
        elif not consistent:
            blocked = False
            why = (
                f"{head} on {where}, fewer than min_keyframes {policy.min_keyframes}, and "
                f"< alone {policy.alone:g}: not blocked"
            )
        elif s >= policy.confident:
            blocked = True
            why = f"{head} on {where} and >= confident {policy.confident:g}: blocks"
        elif opinion is not None and opinion >= policy.not_a_person:
            blocked = False
            why = (
                f"{head} on {where}, < confident {policy.confident:g}, and the second opinion "
                f"says not a person ({NOT_A_PERSON} {opinion:.2f} >= {policy.not_a_person:g}): "
                "not blocked"
            )
        else:
            blocked = True
            said = "none" if opinion is None else f"{NOT_A_PERSON} {opinion:.2f}"
            why = f"{head} on {where}, second opinion {said} < {policy.not_a_person:g}: blocks"
        out[i] = SafetyVerdict(blocked, s, label, box, why)
    return out

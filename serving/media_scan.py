"""The per-media core every scan path shares: keyframes of a file, then placements of its
facts, with the same checks and messages whoever drives the models in between.

    keyframes_of(pipeline, path, media)      -> lazy keyframes (limits checked from the header)
    <the caller's analysis>                   -> FrameFacts, in time order
    place_timeline(targeter, facts, ...)      -> MediaOutcome (placements, decisions, version)

The middle step is the caller's, because that is where the two paths differ for good reason:
the batch scan (:mod:`serving.batch.scan`) batches one media's keyframes through the analyzer
directly, the gRPC server (``serving.rpc.handlers.scan_video``) submits them to the shared
micro-batcher so concurrent requests fill one GPU batch. What comes before and after is the
same code, so a file one path refuses the other refuses with the same words, and a timeline
gives the same placements whichever path analyzed it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from serving.targeter import RulesSnapshot, Targeter
from targeting.match import FrameDecision
from targeting.types import Placement
from vision.errors import MediaError
from vision.keyframes import KeyframeConfig
from vision.pipeline import Pipeline
from vision.types import Frame, FrameFacts

__all__ = ["Decoder", "MediaOutcome", "keyframes_of", "place_timeline", "printable_name"]

Decoder = Callable[[Path, str, KeyframeConfig], Iterable[Frame]]
"""Something that decodes ``(path, media, keyframe config)`` into keyframes elsewhere, e.g.
:meth:`serving.batch.isolated_decode.DecodePool.keyframes` (a worker process)."""


def printable_name(name: str) -> str:
    """``name`` as valid Unicode: bytes of a file name that were not UTF-8 (which Python keeps
    as lone surrogates, PEP 383) become the text ``\\\\xNN``; any other name is returned as is.

    Media ids, JSON lines, Parquet, the store and gRPC strings all need valid UTF-8.
    """
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        import os

        return os.fsencode(name).decode("utf-8", "backslashreplace")
    return name


@dataclass(frozen=True)
class MediaOutcome:
    """Placements of one media's timeline, the rules version that made them, and (with
    ``explain``) every campaign's decision at every keyframe."""

    media: str
    placements: tuple[Placement, ...]
    decisions: tuple[FrameDecision, ...]
    rules_version: str
    keyframes: int


def keyframes_of(
    pipeline: Pipeline, path: Path, media: str, decoder: Decoder | None = None
) -> Iterator[Frame]:
    """The keyframes of ``path`` (an image: one frame) under ``media``, sampled as the
    pipeline's keyframe config says. In-process, the header and decode limits are checked now
    and the frames decoded lazily; with a ``decoder`` all of it happens there, lazily.
    MediaError for a file that is missing, not media, or over a limit."""
    from vision.media import load_frames

    if not path.exists():
        raise MediaError(f"{printable_name(str(path))}: no such file")
    if decoder is not None:
        return iter(decoder(path, media, pipeline.keyframes))
    return load_frames(path, media_id=media, config=pipeline.keyframes)


def place_timeline(
    targeter: Targeter,
    facts: Sequence[FrameFacts],
    *,
    media: str,
    today: date,
    explain: bool = False,
    snapshot: RulesSnapshot | None = None,
) -> MediaOutcome:
    """Placements (and decisions) of one media's whole timeline: matching needs all of it, to
    find segments and rank them. MediaError when no keyframe could be decoded."""
    if not facts:
        raise MediaError(f"{media}: no frames could be decoded")
    snap = snapshot or targeter.snapshot  # one rules version makes placements and decisions
    placements = targeter.place(facts, media=media, today=today, snapshot=snap)
    decisions = targeter.explain(facts, today=today, snapshot=snap) if explain else []
    return MediaOutcome(media, tuple(placements), tuple(decisions), snap.version, len(facts))

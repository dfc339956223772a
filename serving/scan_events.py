"""What a ScanVideo call reports, as one typed event: the server's handler yields these and the
Python client (``serving.client``) yields the same type, so both sides share one definition.

An event carries exactly one of: a ``placement`` (``targeting.types.Placement``), the ``facts``
of a keyframe (``vision.types.FrameFacts``, only when the request asked for them), a
``progress`` tick or the final ``summary``. Protobuf stays at the servicer edge
(``serving.rpc.proto_convert``).
"""

from __future__ import annotations

from dataclasses import dataclass

from targeting.types import Placement
from vision.types import FrameFacts


@dataclass(frozen=True)
class ScanProgress:
    """Where a scan is: media time reached ``t_s`` of ``duration_s`` (0 while unknown), seconds;
    ``keyframes`` analyzed so far; ``received_bytes`` of an upload (0 for a media-root path)."""

    t_s: float
    duration_s: float
    keyframes: int
    received_bytes: int = 0


@dataclass(frozen=True)
class ScanSummary:
    """The end of one ScanVideo call: sent once, last. Times in seconds."""

    duration_s: float
    keyframes: int
    placements: int
    stored: bool
    elapsed_s: float
    rules_version: str


@dataclass(frozen=True)
class ScanEvent:
    """One ScanVideo message: exactly one field is set."""

    placement: Placement | None = None
    facts: FrameFacts | None = None
    progress: ScanProgress | None = None
    summary: ScanSummary | None = None

    def __post_init__(self) -> None:
        given = sum(
            v is not None for v in (self.placement, self.facts, self.progress, self.summary)
        )
        if given != 1:
            raise ValueError(f"a ScanEvent carries exactly one thing, got {given}")

"""Batch scanning: plan the media of a scan, scan each one, write as it goes.

This module holds the planning (which files, under which media ids, refused before any model
loads) and the scanning (keyframes -> facts -> placements per media, every failure an error
result, the scan goes on). What is written lives beside it: :mod:`serving.batch.outputs` (the
JSONL lines of a result, the Parquet table) and :mod:`serving.batch.checkpoint` (the crash-safe
sink and ``--resume``).

Order per media, so a crash or a locked store never loses one: scan, then the placement store
(if any), then the JSONL lines and the checkpoint. A media whose store write fails stops the
scan before it is checkpointed, so ``--resume`` redoes it.

Media ids: the file name by default (``--media-id stem|path`` otherwise). A file name that is
not valid UTF-8 (Linux allows any bytes) has each undecodable byte written as the four ASCII
characters ``\\xNN``: the file ``b"\\xff\\xfe-latin1.mp4"`` gets the id ``\\xff\\xfe-latin1.mp4``
(:func:`printable_name`). The id is then valid text for JSON, Parquet and the store, readable,
and the media is scanned like any other; two files that would share an id are refused up front.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving.batch.checkpoint import JsonlSink
from serving.batch.isolated_decode import DecodeLimits
from serving.batch.manifest import ManifestEntry, ManifestProblem
from serving.batch.outputs import result_lines
from serving.batch.pipeline import DECODE_AHEAD, ScanPipeline, default_decode_workers
from serving.batch.progress import ScanProgress, StageTimes
from serving.media_scan import Decoder, keyframes_of, place_timeline, printable_name
from serving.targeter import RulesSnapshot, Targeter
from targeting.match import FrameDecision
from targeting.types import Placement
from vision.errors import InvalidArgument, OnscreenError
from vision.limits import MAX_MEDIA_ID_CHARS
from vision.prefetch import prefetch
from vision.types import Frame, FrameFacts

if TYPE_CHECKING:
    from serving.placement_store import PlacementStore

log = logging.getLogger(__name__)

__all__ = [
    "DECODE_AHEAD",
    "MEDIA_ID_SCHEMES",
    "MEDIA_SUFFIXES",
    "BatchSummary",
    "MediaResult",
    "commit_result",
    "expand_media",
    "failed",
    "media_result",
    "media_id_for",
    "plan_items",
    "plan_media",
    "printable_name",
    "run_scan",
    "scan_media",
]

MEDIA_SUFFIXES = (
    ".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".ts",
    ".jpg", ".jpeg", ".png", ".webp",
)  # fmt: skip
"""Files picked up when a directory is given (single files are taken whatever their name)."""
MEDIA_ID_SCHEMES = ("name", "stem", "path")
"""What identifies a media: its file name (default), its stem, or the path as given."""


@dataclass(frozen=True)
class MediaResult:
    """What one media gave: placements, or an error message; facts/decisions with explain."""

    media: str
    path: Path
    placements: tuple[Placement, ...] = ()
    facts: tuple[FrameFacts, ...] = ()
    decisions: tuple[FrameDecision, ...] = ()
    error: str | None = None
    keyframes: int = 0
    seconds: float = 0.0
    metadata: Mapping[str, Any] | None = None
    """The media's manifest metadata (``--manifest``), carried to its placement lines."""
    duration_s: float | None = None
    """The video's declared duration (None: an image, unknown, or not decoded)."""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class BatchSummary:
    """What a whole batch scan did: the media scanned now, those a resume skipped, and where
    the time went."""

    results: tuple[MediaResult, ...]
    skipped: tuple[str, ...]
    times: StageTimes = StageTimes()
    """Where the time went (:class:`~serving.batch.progress.StageTimes`)."""

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)


def expand_media(paths: Iterable[Path]) -> list[Path]:
    """Files as given, directories expanded to their media files (recursively, sorted).

    A path that does not exist is kept, so it yields its own error line instead of vanishing.
    """
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            out += sorted(
                f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in MEDIA_SUFFIXES
            )
        else:
            out.append(p)
    return out


def media_id_for(path: Path, scheme: str = "name") -> str:
    """The id placements are stored under: the file ``name`` (default), ``stem`` or ``path``,
    always valid Unicode (see :func:`printable_name`)."""
    if scheme == "name":
        return printable_name(path.name)
    if scheme == "stem":
        return printable_name(path.stem)
    if scheme == "path":
        return printable_name(str(path))
    raise ValueError(f"media id scheme must be name, stem or path, got {scheme!r}")


def _tap(frames: Iterable[Frame], fn: Callable[[Frame], None]) -> Iterator[Frame]:
    for f in frames:
        fn(f)
        yield f


def plan_media(paths: Iterable[Path], media_ids: str = "name") -> list[Path]:
    """The files a scan will read; refuses ids that collide (one media would overwrite another)
    or that are longer than ``MAX_MEDIA_ID_CHARS`` (the store would refuse them mid-scan).

    Cheap (no decoding), so commands call it before loading any model.
    """
    files = expand_media(paths)
    ids = [media_id_for(p, media_ids) for p in files]
    dupes = sorted({m for m in ids if ids.count(m) > 1})
    if dupes:
        raise InvalidArgument(
            f"several files would share the media id(s) {', '.join(dupes[:5])}: "
            "use --media-id path (or stem) so each media keeps its own placements"
        )
    long = [m for m in ids if len(m) > MAX_MEDIA_ID_CHARS]
    if long:
        raise InvalidArgument(
            f"{len(long)} media id(s) are over the {MAX_MEDIA_ID_CHARS}-character limit, the "
            f"first: {long[0][:60]}...: use --media-id name (or stem)"
        )
    return files


ScanItem = tuple[str, Path, "Mapping[str, Any] | None", "ManifestProblem | None"]
"""One media to scan: id, file, manifest metadata, and the manifest problem that replaces it."""


def plan_items(
    paths: Iterable[Path],
    media_ids: str = "name",
    manifest: Sequence[ManifestEntry | ManifestProblem] = (),
) -> list[ScanItem]:
    """Every media of a scan: the files given (:func:`plan_media`), then the manifest's entries
    and bad lines in manifest order; refuses an id both name (InvalidArgument)."""
    items: list[ScanItem] = [
        (media_id_for(p, media_ids), p, None, None) for p in plan_media(paths, media_ids)
    ]
    for x in manifest:
        if isinstance(x, ManifestProblem):
            items.append((x.media, Path(x.where), None, x))
        else:
            items.append((x.media, x.path, dict(x.metadata) or None, None))
    ids = [m for m, *_ in items]
    dupes = sorted({m for m in ids if ids.count(m) > 1})
    if dupes:
        raise InvalidArgument(
            f"the media id(s) {', '.join(dupes[:5])} are named both by a file given and by the "
            "manifest: each media needs its own id"
        )
    return items


def failed(media: str, path: Path, exc: BaseException, seconds: float = 0.0) -> MediaResult:
    """The error result of a media whose scan raised ``exc``: an OnscreenError or OSError is
    the file's fault (its message is the line); anything else is a bug, logged in full, that
    must not stop a night's scan."""
    if isinstance(exc, OnscreenError | OSError):
        return MediaResult(media, path, error=printable_name(str(exc)), seconds=seconds)
    shown = printable_name(str(path))  # error texts are JSON lines and terminal output
    log.error("unexpected failure on %s", shown, exc_info=exc)
    msg = printable_name(f"{shown}: internal error {type(exc).__name__}: {exc}")
    return MediaResult(media, path, error=msg, seconds=seconds)


def media_result(
    targeter: Targeter,
    path: Path,
    media: str,
    facts: Sequence[FrameFacts],
    *,
    today: date,
    explain: bool = False,
    snapshot: RulesSnapshot | None = None,
    started: float | None = None,
) -> MediaResult:
    """Placements of one media's analyzed keyframes as its result (every failure an error
    result): the step after the models, the same whoever ran them (this process, the
    pipelined scan, Ray actors). ``started``: ``time.perf_counter()`` when its scan began."""
    start = time.perf_counter() if started is None else started
    try:
        outcome = place_timeline(
            targeter, facts, media=media, today=today, explain=explain, snapshot=snapshot
        )
    except Exception as exc:  # noqa: BLE001 - becomes the media's error line (see failed)
        return failed(media, path, exc, time.perf_counter() - start)
    return MediaResult(
        media,
        path,
        placements=outcome.placements,
        facts=tuple(facts) if explain else (),
        decisions=outcome.decisions,
        keyframes=outcome.keyframes,
        seconds=time.perf_counter() - start,
    )


def commit_result(
    result: MediaResult,
    sink: JsonlSink,
    store: PlacementStore | None = None,
    *,
    explain: bool = False,
) -> None:
    """Write one media's result everywhere, in the crash-safe order (module doc): the store
    first (a good result replaces the media's rows), then its JSONL lines and checkpoint."""
    if store is not None and result.ok:
        store.replace_media(result.media, result.placements)
    sink.write(result.media, result_lines(result, explain=explain))


def scan_media(
    targeter: Targeter,
    path: Path,
    media: str,
    *,
    today: date,
    explain: bool = False,
    on_frame: Callable[[Frame], None] | None = None,
    decoder: Decoder | None = None,
) -> MediaResult:
    """Keyframes -> facts -> placements for one media; every failure becomes an error result.

    The core before and after the models is :mod:`serving.media_scan`, shared with the gRPC
    server; here one media's keyframes are batched through the analyzer directly.

    ``on_frame`` sees each keyframe as it is decoded (progress inside a long video).
    ``decoder``: decode elsewhere (a :class:`DecodePool` worker); default in this process.
    """
    start = time.perf_counter()
    try:
        frames: Iterable[Frame] = keyframes_of(targeter.pipeline, path, media, decoder)
        if on_frame is not None:
            frames = _tap(frames, on_frame)
        snapshot = targeter.snapshot  # the logos and the placements of one rules version
        facts = list(targeter.analyze(prefetch(frames, DECODE_AHEAD), snapshot))
    except Exception as exc:  # noqa: BLE001 - becomes the media's error line (see failed)
        return failed(media, path, exc, time.perf_counter() - start)
    return media_result(
        targeter,
        path,
        media,
        facts,
        today=today,
        explain=explain,
        snapshot=snapshot,
        started=start,
    )


def run_scan(
    targeter: Targeter,
    paths: Sequence[Path],
    *,
    out: Path,
    today: date,
    explain: bool = False,
    resume: bool = False,
    media_ids: str = "name",
    store: PlacementStore | None = None,
    on_result: Callable[[MediaResult], None] | None = None,
    progress: bool = True,
    decode: DecodeLimits | None = DecodeLimits(),  # noqa: B008 - frozen, shared safely
    manifest: Sequence[ManifestEntry | ManifestProblem] = (),
    decode_workers: int | None = None,
) -> BatchSummary:
    """Scan every media, writing as it goes; see the module doc for the write order.

    The media go through :mod:`serving.batch.pipeline`: ``decode_workers`` decode at once
    (default :func:`~serving.batch.pipeline.default_decode_workers`), the models take batches
    across media, results are written in plan order.

    ``store``: each media scanned without error replaces its placements there *before* its
    lines are checkpointed (a media that failed keeps what an earlier good scan stored). A
    store that stays locked past its wait raises ``PlacementStoreError``: the scan stops, the
    media in progress is not checkpointed, and ``resume=True`` later redoes it.

    ``decode``: each media is decoded in a worker process held to these limits
    (:mod:`serving.batch.isolated_decode`); None decodes in this process (debugging).
    ``manifest``: more media after ``paths`` (:mod:`serving.batch.manifest`); a bad line is
    that media's error result. ``progress``: a bar on a terminal, else a line every
    ``LOG_EVERY_S`` (:mod:`serving.batch.progress`); the ``done MEDIA`` lines always.
    """
    items = plan_items(paths, media_ids, manifest)
    sink = JsonlSink(out, resume=resume)
    todo = [(k, item) for k, item in enumerate(items) if item[0] not in sink.done]
    skipped = [item[0] for item in items if item[0] in sink.done]
    bar = ScanProgress(len(todo), enabled=progress)
    try:
        results, times = ScanPipeline(
            targeter,
            todo,
            sink=sink,
            store=store,
            today=today,
            explain=explain,
            decode=decode,
            decode_workers=decode_workers or default_decode_workers(),
            progress=bar,
            on_result=on_result,
        ).run()
    finally:
        bar.close()
        sink.close()
    return BatchSummary(tuple(results), tuple(skipped), times)

"""Batch scanning: many media -> placements as JSONL (and Parquet), resumable after a crash.

Output contract (DESIGN.md): one JSON object a line; a placement is
``{"media", "campaign", "start_s", "end_s", "score", "reasons": [...]}`` (plus extra fields),
a media that could not be processed is ``{"media", "error"}`` and the scan goes on. With
``explain`` each keyframe adds ``{"media", "t", "facts", "decisions"}``.

Crash safety: a media's lines are appended and fsynced together, then a checkpoint line
``{"media", "offset"}`` goes to ``<out>.progress``. ``resume=True`` truncates the output to the
last checkpointed offset (dropping a half-written media) and skips media already done, so a
scan killed at any instant restarts without losing or duplicating a line.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from serving.facts_json import facts_to_json
from serving.targeter import Targeter
from targeting.match import FrameDecision
from targeting.types import Placement
from vision.errors import OnscreenError
from vision.prefetch import prefetch
from vision.types import Frame, FrameFacts

log = logging.getLogger(__name__)

MEDIA_SUFFIXES = (
    ".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v", ".ts",
    ".jpg", ".jpeg", ".png", ".webp",
)  # fmt: skip
"""Files picked up when a directory is given (single files are taken whatever their name)."""
DECODE_AHEAD = 16
"""Keyframes decoded ahead of the models (bounded: full-size RGB frames)."""
PROGRESS_EVERY_S = 1.0
"""How often the progress bar shows the position inside the media being scanned, seconds."""


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

    @property
    def ok(self) -> bool:
        return self.error is None

    def json_lines(self, explain: bool) -> list[str]:
        if self.error is not None:
            return [json.dumps({"media": self.media, "error": self.error})]
        lines = [json.dumps(p.to_json()) for p in self.placements]
        if explain:
            by_t: dict[float, list[FrameDecision]] = {}
            for d in self.decisions:
                by_t.setdefault(d.t, []).append(d)
            for f in self.facts:
                decisions = [
                    {
                        "campaign": d.campaign,
                        "placed": d.placed,
                        "target": d.target,
                        "blocked": d.blocked,
                        "evidence": round(d.evidence, 4),
                        "matched": [r.to_json() for r in d.matched],
                        "blocked_by": [r.to_json() for r in d.blocking],
                    }
                    for d in by_t.get(f.t, [])
                ]
                facts = facts_to_json(f)
                lines.append(
                    json.dumps(
                        {
                            "media": self.media,
                            "t": facts.pop("t"),
                            "facts": facts,
                            "decisions": decisions,
                        }
                    )
                )
        return lines


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
    """The id placements are stored under: the file ``name`` (default), ``stem`` or ``path``."""
    if scheme == "name":
        return path.name
    if scheme == "stem":
        return path.stem
    if scheme == "path":
        return str(path)
    raise ValueError(f"media id scheme must be name, stem or path, got {scheme!r}")


def _tap(frames: Iterable[Frame], fn: Callable[[Frame], None]) -> Iterator[Frame]:
    for f in frames:
        fn(f)
        yield f


def plan_media(paths: Iterable[Path], media_ids: str = "name") -> list[Path]:
    """The files a scan will read; refuses ids that collide (one media would overwrite another).

    Cheap (no decoding), so commands call it before loading any model.
    """
    files = expand_media(paths)
    ids = [media_id_for(p, media_ids) for p in files]
    dupes = sorted({m for m in ids if ids.count(m) > 1})
    if dupes:
        raise OnscreenError(
            f"several files would share the media id(s) {', '.join(dupes[:5])}: "
            "use --media-id path (or stem) so each media keeps its own placements"
        )
    return files


def scan_media(
    targeter: Targeter,
    path: Path,
    media: str,
    *,
    today: date,
    explain: bool = False,
    on_frame: Callable[[Frame], None] | None = None,
) -> MediaResult:
    """Keyframes -> facts -> placements for one media; every failure becomes an error result.

    ``on_frame`` sees each keyframe as it is decoded (progress inside a long video).
    """
    from vision.media import load_frames

    start = time.perf_counter()
    try:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        frames: Iterable[Frame] = load_frames(
            path, media_id=media, config=targeter.pipeline.keyframes
        )
        if on_frame is not None:
            frames = _tap(frames, on_frame)
        facts = list(targeter.pipeline.analyzer.analyze(prefetch(frames, DECODE_AHEAD)))
        if not facts:
            raise OnscreenError(f"{path}: no frames could be decoded")
        placements = targeter.place(facts, media=media, today=today)
        decisions = targeter.explain(facts, today=today) if explain else []
    except (OnscreenError, OSError) as exc:
        return MediaResult(media, path, error=str(exc), seconds=time.perf_counter() - start)
    except Exception as exc:  # a bug must not stop a night's scan; it is logged in full
        log.exception("unexpected failure on %s", path)
        msg = f"{path}: internal error {type(exc).__name__}: {exc}"
        return MediaResult(media, path, error=msg, seconds=time.perf_counter() - start)
    return MediaResult(
        media,
        path,
        placements=tuple(placements),
        facts=tuple(facts) if explain else (),
        decisions=tuple(decisions),
        keyframes=len(facts),
        seconds=time.perf_counter() - start,
    )


@dataclass
class JsonlSink:
    """Appends each media's lines atomically-enough (one write + fsync) with a checkpoint."""

    path: Path
    resume: bool = False
    done: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.progress = self.path.with_name(self.path.name + ".progress")
        offset = 0
        if self.resume and self.progress.exists():
            for line in self.progress.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    break  # a torn last checkpoint line: everything before it stands
                self.done.add(rec["media"])
                offset = int(rec["offset"])
        if not self.resume:
            self.progress.unlink(missing_ok=True)
        self._out = open(self.path, "ab" if self.resume else "wb")  # noqa: SIM115
        if self.resume:
            self._out.truncate(offset)
            self._out.seek(offset)
        self._progress = open(self.progress, "a")  # noqa: SIM115

    def write(self, media: str, lines: Sequence[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode()
        self._out.write(data)
        self._out.flush()
        os.fsync(self._out.fileno())
        self._progress.write(json.dumps({"media": media, "offset": self._out.tell()}) + "\n")
        self._progress.flush()
        os.fsync(self._progress.fileno())
        self.done.add(media)

    def close(self) -> None:
        self._out.close()
        self._progress.close()


def write_parquet(path: Path, results: Sequence[MediaResult]) -> None:
    """Placements as a Parquet table (reasons as a JSON string column), written atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [p.to_json() for r in results for p in r.placements]
    table = pa.table(
        {
            "media": [r["media"] for r in rows],
            "campaign": [r["campaign"] for r in rows],
            "start_s": pa.array([r["start_s"] for r in rows], pa.float64()),
            "end_s": pa.array([r["end_s"] for r in rows], pa.float64()),
            "score": pa.array([r["score"] for r in rows], pa.float64()),
            "rank": pa.array([r["rank"] for r in rows], pa.int32()),
            "bid_cpm": pa.array([r["bid_cpm"] for r in rows], pa.float64()),
            "advertiser": [r["advertiser"] for r in rows],
            "reasons_json": [json.dumps(r["reasons"]) for r in rows],
        }
    )
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


@dataclass(frozen=True)
class ScanSummary:
    results: tuple[MediaResult, ...]
    skipped: tuple[str, ...]

    @property
    def ok(self) -> int:
        return sum(r.ok for r in self.results)

    @property
    def failed(self) -> int:
        return sum(not r.ok for r in self.results)


def run_scan(
    targeter: Targeter,
    paths: Sequence[Path],
    *,
    out: Path,
    today: date,
    explain: bool = False,
    resume: bool = False,
    media_ids: str = "name",
    on_result: Callable[[MediaResult], None] | None = None,
    progress: bool = True,
) -> ScanSummary:
    """Scan every media in order, writing as it goes; see the module doc for crash safety."""
    from tqdm import tqdm

    files = plan_media(paths, media_ids)
    sink = JsonlSink(out, resume=resume)
    results: list[MediaResult] = []
    skipped: list[str] = []
    try:
        bar = tqdm(files, unit="media", disable=not progress, dynamic_ncols=True)
        for path in bar:
            media = media_id_for(path, media_ids)
            if media in sink.done:
                skipped.append(media)
                continue
            bar.set_postfix_str(path.name[:40])
            shown = [time.monotonic()]

            def on_frame(frame: Frame, name: str = path.name[:40], shown: list = shown) -> None:
                now = time.monotonic()
                if now - shown[0] >= PROGRESS_EVERY_S:  # a long video shows where it is
                    shown[0] = now
                    bar.set_postfix_str(f"{name} @ {frame.t:.0f} s")

            result = scan_media(
                targeter, path, media, today=today, explain=explain, on_frame=on_frame
            )
            sink.write(media, result.json_lines(explain))
            results.append(result)
            if on_result is not None:
                on_result(result)
            if result.error:
                bar.write(f"error: {result.error}")
    finally:
        sink.close()
    return ScanSummary(tuple(results), tuple(skipped))

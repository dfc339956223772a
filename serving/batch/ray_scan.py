"""``onscreen scan --ray``: the same per-media scan, spread over a Ray cluster with Ray Data.

What runs where::

    driver     plan_items, JsonlSink (--resume skips done media), the placement store
      |  ray.data.from_items(one row per media to do: index, id, path as bytes)
      v
    actors     map(_MediaScanner, compute=ActorPoolStrategy(size=N)): each actor loads the
               models and the rules once, then runs scan_media on one media at a time, its
               keyframes decoded in the actor's own DecodePool worker (CPU, with the decode
               limits), and returns the media's MediaResult (placements, or its error)
      |  iter_rows (streamed, as each media finishes)
      v
    driver     commit_result: store, then JSONL lines and checkpoint (the crash-safe order)

**Why a media is one unit of work, decoded beside its models.** A separate Ray decode stage
would have to ship either a media's whole keyframe list as one row (a one-hour video is
thousands of full-size RGB frames: memory without bound) or chunks of keyframes that different
actors analyze (then a media's frames are batched differently, and the OCR schedule, which
carries the last read of a shot from keyframe to keyframe, starts again at each chunk: other
facts than the local scan's). Scanning a whole media in one actor with :func:`scan_media`, the
very function ``run_scan`` calls, keeps both: the keyframes stream through the same
``DECODE_AHEAD`` prefetch (bounded memory), the model batches are the local run's, and the
result is the same bytes. The decode still runs on CPU in its own process (the actor's
:class:`~serving.batch.isolated_decode.DecodePool` worker, with ``--decode-timeout`` and
``--decode-memory-mb``), overlapped with the models, on the node that holds the models, so no
frame crosses the network; Ray Data spreads the media over the actors and streams the results.

**Actors.** One per GPU of the cluster (``num_gpus=1`` each: the pipeline's ``device="auto"``
then finds exactly its own GPU); on a cluster without GPUs, one per ``CPUS_PER_CPU_ACTOR`` CPUs
(at least one), since each holds a full set of models and uses several cores.

**What crosses the wire.** To the actors: the rules directory's *path* and version, the
pipeline config (weights by name), the flags. Each actor loads the rules from that path on its
own node and refuses to start if their version (a hash of every rules file) differs from the
driver's, so a node with a stale copy stops the scan instead of placing with other rules. Back:
one :class:`MediaResult` per media (placements, and with ``--explain`` the facts; small next to
frames), and the pipeline's ``note:`` lines, which the driver prints once. The environment variables that say where weights live (``ONSCREEN_WEIGHTS_DIR``,
``ONSCREEN_MANIFEST``) and the offline switches are passed on when set.

The driver loads no model, so it can be a small machine; the outputs are written there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving.batch.checkpoint import JsonlSink
from serving.batch.isolated_decode import DecodeLimits, DecodePool
from serving.batch.manifest import ManifestEntry, ManifestProblem
from serving.batch.progress import StageTimes
from serving.batch.scan import BatchSummary, MediaResult, commit_result, plan_items, scan_media
from vision.errors import InvalidArgument, OnscreenError

if TYPE_CHECKING:
    from serving.placement_store import PlacementStore
    from vision.pipeline import PipelineConfig

__all__ = [
    "CONNECT_CHECK_S",
    "CPUS_PER_CPU_ACTOR",
    "FORWARDED_ENV",
    "RAY_INSTALL_HINT",
    "RayScanError",
    "require_ray",
    "run_ray_scan",
]

RAY_INSTALL_HINT = "pip install 'onscreen[ray]'"
"""How to get Ray: it is an optional extra, not a base dependency."""
CPUS_PER_CPU_ACTOR = 4
"""CPUs per model actor on a cluster without GPUs (each holds every model and uses several
cores for them, one more for its decode worker)."""
CONNECT_CHECK_S = 5.0
"""How long the driver tries to reach ``--ray-address``'s port before saying it cannot: Ray
itself retries for a long while."""
FORWARDED_ENV = (
    "ONSCREEN_WEIGHTS_DIR",
    "ONSCREEN_MANIFEST",
    "YOLO_OFFLINE",
    "YOLO_AUTOINSTALL",
    "HF_HUB_OFFLINE",
    "ONSCREEN_DECODE_TEST_HOOK",
)
"""Environment variables the actors get from the driver when it has them set (where the
weights live, offline switches, the decode test hook)."""

log = logging.getLogger(__name__)


class RayScanError(OnscreenError):
    """The Ray cluster cannot be reached or the scan on it stopped (``onscreen scan`` exits 2
    with this line; media already done are checkpointed, ``--resume`` goes on from there)."""


def require_ray(address: str | None = None) -> None:
    """InvalidArgument naming the extra to install when Ray Data cannot be imported, or when
    ``address`` is a Ray Client address (``ray://``), over which Ray Data does not run (its
    executor needs a driver on the cluster: it fails mid-scan with an AttributeError).
    Checked before any model loads."""
    if address is not None and address.startswith("ray://"):
        raise InvalidArgument(
            f"--ray-address {address}: Ray Data does not run over Ray Client (ray://); run the "
            "scan on a node of the cluster with --ray-address auto (or HEAD:6379), or submit "
            "it as a Ray job"
        )
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise InvalidArgument(
            f"--ray needs Ray Data, which is not installed ({exc}): {RAY_INSTALL_HINT}"
        ) from None


@dataclass(frozen=True)
class _ActorSettings:
    """What every actor is built from (pickled to it once)."""

    rules_dir: str
    rules_version: str
    config: PipelineConfig
    today: date
    explain: bool
    decode: DecodeLimits | None
    cwd: str
    """The driver's working directory: relative media paths mean the same on every node that
    has it (and the error lines name them as the local scan does)."""


def _quiet_ray() -> None:
    """Ray's own lines on stderr only when fatal: its progress bars, INFO lines and the stack
    traces it logs would bury the scan's one line per media (the scan reports a failure in one
    line of its own). Ray Data's full log stays in the session's ``logs/ray-data/`` files."""
    import ray.data
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.enable_operator_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.enable_auto_log_stats = False
    ctx.log_internal_stack_trace = False
    for name in ("ray", "ray.data"):
        logger = logging.getLogger(name)
        for handler in logger.handlers:
            if not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.CRITICAL)
    del ray


class _MediaScanner:
    """The model-holding actor: the pipeline, the rules' Targeter and a decode worker, built
    once; then one media per call, scanned exactly as ``run_scan`` scans it."""

    def __init__(self, settings: _ActorSettings) -> None:
        _quiet_ray()
        from serving.targeter import Targeter
        from targeting.rules_loader import load_rules
        from vision.pipeline import build_pipeline

        with contextlib.suppress(OSError):  # a node without it: relative paths are missing
            os.chdir(settings.cwd)
        rules = load_rules(settings.rules_dir)
        if rules.version != settings.rules_version:
            raise RayScanError(
                f"the rules directory {settings.rules_dir} on node {socket.gethostname()} is "
                f"version {rules.version[:12]}, the driver's is {settings.rules_version[:12]}: "
                "give every node the same copy"
            )
        self.settings = settings
        pipeline = build_pipeline(settings.config)
        self.notices = "\n".join(pipeline.notices)  # what the CLI prints as `note:` lines
        self.targeter = Targeter(pipeline, rules)
        self.pool = DecodePool(settings.decode) if settings.decode is not None else None

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        s = self.settings
        result = scan_media(
            self.targeter,
            Path(os.fsdecode(row["path"])),
            row["media"],
            today=s.today,
            explain=s.explain,
            decoder=self.pool.keyframes if self.pool is not None else None,
        )
        return {"index": row["index"], "result": result, "notices": self.notices}


def _check_reachable(address: str) -> None:
    """RayScanError within ``CONNECT_CHECK_S`` when a ``host:port`` (GCS) address does not
    answer; ``auto`` and other forms are left to Ray."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or address == "auto":
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_CHECK_S).close()
    except OSError as exc:
        raise RayScanError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}): check the "
            "address (HEAD:6379, or auto on a node of the cluster) and that the port is open"
        ) from None


def _connect(address: str | None) -> bool:
    """Join the cluster at ``address``, or start a local instance (None); True when this call
    started Ray (and so shuts it down)."""
    import ray

    if ray.is_initialized():
        return False
    env = {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}
    kwargs: dict[str, Any] = {
        "include_dashboard": False,
        "log_to_driver": False,
        "logging_level": logging.ERROR,
        "runtime_env": {"env_vars": env} if env else None,
    }
    if address is None:  # "local": a new instance, even beside a running cluster
        kwargs["address"] = "local"
        kwargs["num_cpus"] = os.cpu_count() or 1
    else:
        _check_reachable(address)
        kwargs["address"] = address
    try:
        ray.init(**kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local instance"
        raise RayScanError(f"cannot start Ray on {where}: {exc}") from None
    return True


def _actor_resources() -> tuple[int, int]:
    """How many model actors, and how many GPUs each takes: one actor per GPU, else one per
    ``CPUS_PER_CPU_ACTOR`` CPUs (at least one) on none."""
    import ray

    res = ray.cluster_resources()
    gpus = int(res.get("GPU", 0))
    if gpus:
        return gpus, 1
    return max(1, int(res.get("CPU", 1)) // CPUS_PER_CPU_ACTOR), 0


def _why(exc: BaseException) -> str:
    """One line for why the Ray scan stopped: the actor's own error (``TypeName: message``)
    under Ray's wrappers, not their stack traces. RayTaskError keeps the exception as
    ``cause``; an actor that died in its constructor leaves only the traceback text."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        first = (str(cause).strip().splitlines() or [""])[0]
        return f"{type(cause).__name__}: {first}"
    lines = [x.strip() for x in str(getattr(exc, "error_msg", "") or exc).splitlines()]
    lines = [x for x in lines if x]
    return lines[-1] if lines else type(exc).__name__


def _scan_on_ray(
    todo: Sequence[tuple[int, str, Path]], settings: _ActorSettings
) -> Iterator[tuple[int, MediaResult, str]]:
    """``(index, result, notices)`` of each media in ``todo``, as the actors finish them;
    ``notices``: the ``note:`` lines of the pipeline that scanned it, one a line."""
    import ray.data
    from ray.data import ActorPoolStrategy

    actors, gpus = _actor_resources()
    rows = [{"index": i, "media": m, "path": os.fsencode(p)} for i, m, p in todo]
    ds = ray.data.from_items(rows, override_num_blocks=len(rows)).map(
        _MediaScanner,  # type: ignore[arg-type]  # a callable class: Ray Data's actors
        fn_constructor_kwargs={"settings": settings},
        compute=ActorPoolStrategy(size=min(actors, len(rows))),
        num_cpus=1,
        num_gpus=gpus or None,
    )
    for row in ds.iter_rows():
        yield int(row["index"]), row["result"], str(row["notices"])


def run_ray_scan(
    config: PipelineConfig,
    rules_dir: Path,
    rules_version: str,
    paths: Sequence[Path],
    *,
    out: Path,
    today: date,
    address: str | None = None,
    explain: bool = False,
    resume: bool = False,
    media_ids: str = "name",
    store: PlacementStore | None = None,
    progress: bool = True,
    decode: DecodeLimits | None = DecodeLimits(),  # noqa: B008 - frozen, shared safely
    manifest: Sequence[ManifestEntry | ManifestProblem] = (),
) -> BatchSummary:
    """``run_scan`` on Ray (module doc): the same media, ids, results and writes.

    ``config``, ``rules_dir`` and ``rules_version``: what each actor builds its pipeline and
    Targeter from (the driver checked the rules; the actors check they read the same version).
    ``address``: a running cluster (``HEAD:6379``, ``auto``); None
    starts a local instance with this machine's CPUs and GPUs, shut down at the end.
    Results arrive in the order the actors finish them, each committed as it arrives (store,
    then lines and checkpoint); the summary lists them in plan order. RayScanError when the
    cluster cannot be reached or the scan stops (an actor that cannot load its models, a node
    lost): what was committed stays, ``resume=True`` goes on. ``progress``: taken for the
    same call as ``run_scan``; there is no bar (media finish out of order), the ``done MEDIA``
    line of each media is printed either way.
    """
    del progress
    begun = time.perf_counter()
    items = plan_items(paths, media_ids, manifest)
    sink = JsonlSink(out, resume=resume)
    results: dict[int, MediaResult] = {}
    skipped: list[str] = []
    todo: list[tuple[int, str, Path]] = []
    started = False

    def commit(index: int, result: MediaResult) -> None:
        metadata = items[index][2]
        if metadata is not None:
            result = replace(result, metadata=metadata)
        commit_result(result, sink, store, explain=explain)
        results[index] = result
        if result.error:
            print(f"error: {result.error}", file=sys.stderr)
        print(f"done {result.media}: {len(result.placements)} placements", file=sys.stderr)

    try:
        for index, (media, path, _, problem) in enumerate(items):
            if media in sink.done:
                skipped.append(media)
            elif problem is not None:
                commit(index, MediaResult(media, path, error=str(problem)))
            else:
                todo.append((index, media, path))
        if todo:
            settings = _ActorSettings(
                str(rules_dir), rules_version, config, today, explain, decode, os.getcwd()
            )
            started = _connect(address)
            _quiet_ray()
            try:
                noted: set[str] = set()
                for index, result, notices in _scan_on_ray(todo, settings):
                    for line in notices.splitlines():
                        if line not in noted:  # once, as the local scan prints them
                            noted.add(line)
                            print(f"note: {line}", file=sys.stderr)
                    commit(index, result)
            except OnscreenError:
                raise
            except Exception as exc:  # noqa: BLE001 - Ray's errors wrap the actor's
                done = f"{len(results)} media done and checkpointed, --resume goes on"
                raise RayScanError(f"the Ray scan stopped ({done}): {_why(exc)}") from None
    finally:
        sink.close()
        if started:
            import ray

            ray.shutdown()
    ordered = tuple(results[i] for i in sorted(results))
    times = StageTimes(  # the stages run on the actors; the driver sees the whole
        wall_s=time.perf_counter() - begun,
        video_s=sum(r.duration_s or 0.0 for r in ordered),
        keyframes=sum(r.keyframes for r in ordered),
    )
    return BatchSummary(ordered, tuple(skipped), times)

"""The server's loaded state: models, compiled rules, the batcher, and what every call shares.

``Engine`` exists once models and rules are loaded; ``ServerCore`` is what the servicers hold
from the first second (config, store, metrics) and hands them the engine when it is ready.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date

from serving.placement_store import PlacementStore
from serving.rpc.batcher import MicroBatcher
from serving.rpc.config import ServerConfig
from serving.rpc.metrics import ServerMetrics
from serving.rpc.pixel_budget import PixelBudget
from serving.rpc.served_catalog import ServedCatalog
from serving.targeter import RulesSnapshot, Targeter, analyze_with_snapshots
from targeting.rules_watch import RulesHolder, RulesWatcher
from vision.errors import Unavailable
from vision.pipeline import Pipeline
from vision.types import Frame, FrameFacts

log = logging.getLogger(__name__)

# --- the loaded state ----------------------------------------------------------------------------


@dataclass
class Engine:
    """What the model-backed RPCs need; exists once models are loaded and warmed up."""

    pipeline: Pipeline
    targeter: Targeter
    batcher: MicroBatcher[ModelItem, FrameFacts]
    holder: RulesHolder
    budget: PixelBudget
    watcher: RulesWatcher | None = None
    catalog: ServedCatalog | None = None
    """The visual-search catalog (``--catalog``), None when the server has none."""
    decoding: int = 0
    """Images being decoded now: they count against ``max_queue`` with the waiting frames, so
    a burst is refused before its decode work starts, not after."""

    def models(self) -> list[str]:
        """Names of the models that run, e.g. ``semantic:lite``, ``semantic:clip:ViT-B-32``,
        ``detector:nudenet-320n``."""
        cfg = self.pipeline.config
        out: list[str] = []
        name = self.pipeline.semantic_name
        if name.startswith("clip"):  # clip[-random][-int8] -> semantic:clip:<arch>[:random][:int8]
            variant = "".join(f":{v}" for v in name.split("-")[1:])
            out.append(f"semantic:clip:{cfg.clip_model}{variant}")
        elif name != "off":
            out.append(f"semantic:{name}")
        if self.pipeline.analyzer.detector is not None and cfg.detector_weights:
            out.append(f"detector:{cfg.detector_weights}")
        if self.targeter.snapshot.logos is not None:
            out.append("logos:reference-features")
        return out


ModelItem = tuple[Frame, RulesSnapshot]
"""What the model worker gets: a frame and the rules snapshot its request took (its logos are
matched against that snapshot's brands, so a request sees one rules version end to end)."""


def analyze_isolating(targeter: Targeter, items: list[ModelItem]) -> list[FrameFacts | Exception]:
    """The models over ``items`` (see ``serving.targeter.analyze_with_snapshots``); if the batch
    fails, each item is retried alone so one bad frame fails only its own request (its slot
    holds the exception)."""
    try:
        return list(analyze_with_snapshots(targeter.models, items))
    except Exception:
        if len(items) == 1:
            raise
        log.warning("a batch of %d frames failed; retrying them one by one", len(items))
    out: list[FrameFacts | Exception] = []
    for item in items:
        try:
            out.extend(analyze_with_snapshots(targeter.models, [item]))
        except Exception as exc:
            out.append(exc)
    return out


class ServerCore:
    """Shared by the servicers: config, metrics, the placement store and (once loaded) the engine."""

    def __init__(
        self, config: ServerConfig, metrics: ServerMetrics, store: PlacementStore | None
    ) -> None:
        self.config = config
        self.metrics = metrics
        self.store = store
        self.engine_or_none: Engine | None = None

    def engine(self) -> Engine:
        if self.engine_or_none is None:
            raise Unavailable("the server is still loading its models; retry in a few seconds")
        return self.engine_or_none

    @staticmethod
    def today() -> date:
        return date.today()

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
from serving.targeter import Targeter
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
    batcher: MicroBatcher[Frame, FrameFacts]
    holder: RulesHolder
    watcher: RulesWatcher | None = None

    def models(self) -> list[str]:
        """Names of the models that run, e.g. ``clip:ViT-B-32``, ``detector:nudenet-320n``."""
        cfg = self.pipeline.config
        out: list[str] = []
        if self.pipeline.clip is not None:
            out.append(
                f"clip:{cfg.clip_model}" + ("" if self.pipeline.clip_meaningful else ":random")
            )
        if self.pipeline.analyzer.detector is not None and cfg.detector_weights:
            out.append(f"detector:{cfg.detector_weights}")
        if self.pipeline.analyzer.logos is not None:
            out.append("logos:reference-features")
        return out


def analyze_isolating(pipeline: Pipeline, frames: list[Frame]) -> list[FrameFacts | Exception]:
    """``analyze_batch`` over ``frames``; if the batch fails, each frame is retried alone so
    one bad frame fails only its own request (its slot holds the exception)."""
    try:
        return list(pipeline.analyzer.analyze_batch(frames))
    except Exception:
        if len(frames) == 1:
            raise
        log.warning("a batch of %d frames failed; retrying them one by one", len(frames))
    out: list[FrameFacts | Exception] = []
    for f in frames:
        try:
            out.extend(pipeline.analyzer.analyze_batch([f]))
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

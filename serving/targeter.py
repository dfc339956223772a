"""Wires vision to targeting: a loaded Pipeline + one rules snapshot -> placements for a timeline.

This is the only place that knows both sides: it hands the pipeline's semantic model
(``vision.semantic.SemanticModel``: CLIP or ``lite``) to targeting, and gives targeting the IAB matrix that vision computed, so every
concept of every campaign is embedded once per rules version in the frames' own space.

One rules snapshot: a ``RulesSnapshot`` holds the rules, their compiled ``ConceptIndex``, the
logo finder built from *their* brands (the ``LogoMatcher``, fused with the trained detector
that ``logos.yaml`` or ``--logo-detector`` names: ``vision.logo_fusion.FusedLogoFinder``) and
their version, and is never mutated. The detector is loaded for each snapshot and checked
against its brands, so a reload whose brands no longer fit the detector's card fails as a
whole and the last good snapshot keeps serving. A reload
builds a whole new snapshot (every brand image read again, with the decode limits) or fails as a
whole; ``Targeter.swap`` then replaces the reference in one assignment. A caller takes
``targeter.snapshot`` once per request and passes it to ``analyze_batch`` (logos) and ``place``
(campaigns), so the version it reports is the one that made its placements.

The models that do not depend on the rules (semantic model, detectors, OCR) are the pipeline's; the
pipeline's own logo matcher, if it has one, is never used here (its brands are those of start-up).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from targeting.concept_index import ConceptIndex
from targeting.logos_config import detector_settings
from targeting.match import FrameDecision, PlacementTable, explain_frames, match, match_table
from targeting.rules_loader import RuleSet
from targeting.types import Placement
from vision.analyze import Analyzer, TextMemory
from vision.brands import BrandRefs, read_reference
from vision.errors import ModelError
from vision.logo_fusion import FusedLogoFinder, build_fused_finder
from vision.logo_matcher import LogoMatcher
from vision.pipeline import Pipeline
from vision.safety_classes import SAFETY_BY_NAME
from vision.types import Frame, FrameFacts


def semantic_needs(rules: RuleSet) -> list[str]:
    """Where the rules need a semantic model (``file:line: what``); empty when logos, faces and
    text are enough."""
    out: list[str] = []
    for c in rules.campaigns:
        file, line = rules.sources.get(c.id, ("?", 0))
        kinds = {cl.kind for cl in c.target.clauses if cl.kind in ("concept", "iab")}
        if c.exclude.concepts:
            kinds.add("excluded concept")
        kinds |= {
            f"safety '{s}'"
            for s in c.exclude.safety
            if s in SAFETY_BY_NAME and SAFETY_BY_NAME[s].source == "clip"
        }
        if kinds:
            out.append(f"{file}:{line}: campaign {c.id} uses {', '.join(sorted(kinds))}")
    return out


@dataclass(frozen=True, eq=False)
class RulesSnapshot:
    """One rules version with everything built from it; swapped whole on reload, never mutated.

    ``logos`` finds the logos of ``rules.brands``: their reference matcher, fused with the
    trained detector when one is configured (None when the rules have no brands). ``version`` is the rules' content hash (every campaign, brand and example file).
    """

    rules: RuleSet
    index: ConceptIndex
    logos: LogoMatcher | FusedLogoFinder | None

    @property
    def detector(self) -> object | None:
        """The trained logo detector fused into ``logos``, None when the matcher runs alone."""
        return self.logos.detector if isinstance(self.logos, FusedLogoFinder) else None

    @property
    def version(self) -> str:
        return self.rules.version


def brand_refs(rules: RuleSet) -> list[BrandRefs]:
    """Every brand's reference images of ``rules``, decoded again with the decode limits
    (``vision.brands.read_reference``): a header over the pixel limit, a corrupt or an almost
    fully transparent file raises MediaError naming it, so the snapshot (and with it the
    reload) is refused."""
    refs: list[BrandRefs] = []
    for brand in sorted(rules.brands):
        paths = rules.brands[brand]
        if not paths:
            continue
        decoded = [read_reference(p) for p in paths]
        refs.append(
            BrandRefs(
                brand=brand,
                images=tuple(img for img, _ in decoded),
                masks=tuple(mask for _, mask in decoded),
                paths=tuple(paths),
            )
        )
    return refs


def build_logo_matcher(rules: RuleSet) -> LogoMatcher | None:
    """A matcher over every brand's reference images of ``rules`` (None without brands)."""
    refs = brand_refs(rules)
    return LogoMatcher(refs) if refs else None


def build_logo_finder(
    rules: RuleSet, logo_detector: Path | None = None, *, device: str = "auto"
) -> LogoMatcher | FusedLogoFinder | None:
    """The rules' logo finder: the matcher, fused with the detector ``logos.yaml`` names
    (``logo_detector``, the ``--logo-detector`` flag, overrides it). ModelError when a
    detector is configured for rules without brands, or its card names other brands than
    the rules' (both lists named)."""
    refs = brand_refs(rules)
    settings = detector_settings(rules.logos, logo_detector)
    if settings is not None and not refs:
        raise ModelError(
            f"logo detector {settings.weights.name}: these rules have no brands "
            f"({rules.root}/brands/ is missing or empty), so a logo detector has nothing to "
            "find; add brands or drop the detector"
        )
    if not refs:
        return None
    matcher = LogoMatcher(refs)
    if settings is None:
        return matcher
    return build_fused_finder(matcher, refs, settings, device=device)


def build_snapshot(pipeline: Pipeline, rules: RuleSet) -> RulesSnapshot:
    """Compile ``rules`` for ``pipeline``: concept index and logo finder (the detector of the
    pipeline's ``--logo-detector`` overrides ``logos.yaml``'s). Raises ModelError when the
    rules need a semantic model and it is off or a logo detector does not fit their brands,
    MediaError for a brand image that cannot be used."""
    needs = semantic_needs(rules)
    if needs and pipeline.semantic is None:
        raise ModelError(
            "these rules need a semantic model, which is off (drop --semantic off, or fetch the "
            "default's weights with `make weights`):\n  " + "\n  ".join(needs)
        )
    index = ConceptIndex.build(
        rules.campaigns,
        pipeline.semantic,
        rules_root=rules.root,
        iab_matrix=pipeline.iab_matrix,
        iab_ids=pipeline.iab_ids or None,
    )
    logos = build_logo_finder(
        rules, pipeline.config.logo_detector_path, device=pipeline.config.device
    )
    return RulesSnapshot(rules, index, logos)


class Targeter:
    """Facts -> placements against a rules snapshot; ``swap`` installs a new rules version."""

    def __init__(self, pipeline: Pipeline, rules: RuleSet) -> None:
        self.pipeline = pipeline
        self.models: Analyzer = dataclasses.replace(pipeline.analyzer, logos=None)
        """The pipeline's models without its logo matcher (logos come from the snapshot)."""
        self._snapshot = build_snapshot(pipeline, rules)
        self._lock = threading.Lock()

    @property
    def snapshot(self) -> RulesSnapshot:
        """The current rules snapshot: take it once per request and use it throughout."""
        return self._snapshot

    def swap(self, rules: RuleSet) -> RulesSnapshot:
        """Build a snapshot of ``rules`` and make it current; on any error the old one stays."""
        snapshot = build_snapshot(self.pipeline, rules)
        with self._lock:
            self._snapshot = snapshot
        return snapshot

    def analyze_batch(
        self,
        frames: Sequence[Frame],
        snapshot: RulesSnapshot | None = None,
        memory: TextMemory | None = None,
    ) -> list[FrameFacts]:
        """Every model over ``frames`` (one call each), logos matched with ``snapshot``'s
        brands (default: the current snapshot); ``memory`` as :func:`analyze_with_snapshots`."""
        return analyze_with_snapshots(
            self.models, [(f, snapshot or self._snapshot) for f in frames], memory
        )

    def analyze(
        self, frames: Iterable[Frame], snapshot: RulesSnapshot | None = None
    ) -> Iterator[FrameFacts]:
        """``analyze_batch`` over a stream of keyframes, a model batch at a time (a long video
        never sits in memory), every batch with the same ``snapshot``."""
        snap = snapshot or self._snapshot
        memory: TextMemory = {}  # the OCR schedule spans the stream, not one batch
        batch: list[Frame] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) >= self.models.batch_size:
                yield from self.analyze_batch(batch, snap, memory)
                batch = []
        if batch:
            yield from self.analyze_batch(batch, snap, memory)

    def place(
        self,
        timeline: Sequence[FrameFacts],
        *,
        media: str,
        today: date | None = None,
        snapshot: RulesSnapshot | None = None,
    ) -> list[Placement]:
        s = snapshot or self._snapshot
        return match(timeline, s.rules.campaigns, s.index, today=today or date.today(), media=media)

    def place_table(
        self,
        timeline: Sequence[FrameFacts],
        *,
        media: str,
        today: date | None = None,
        snapshot: RulesSnapshot | None = None,
    ) -> PlacementTable:
        """``place`` as columns (``targeting.placement_table``): for callers that want a few
        placements (the best ones) or write each once, not 10^4 objects."""
        s = snapshot or self._snapshot
        return match_table(
            timeline, s.rules.campaigns, s.index, today=today or date.today(), media=media
        )

    def explain(
        self,
        timeline: Sequence[FrameFacts],
        *,
        today: date | None = None,
        snapshot: RulesSnapshot | None = None,
    ) -> list[FrameDecision]:
        s = snapshot or self._snapshot
        return explain_frames(timeline, s.rules.campaigns, s.index, today=today or date.today())


def analyze_with_snapshots(
    models: Analyzer,
    items: Sequence[tuple[Frame, RulesSnapshot]],
    memory: TextMemory | None = None,
) -> list[FrameFacts]:
    """The rule-independent models over every frame in one batch, then each frame's logos with
    the logo finder of the snapshot it was submitted with (one ``match_many`` per snapshot: during
    a reload a batch can hold frames of two versions). ``memory``: the OCR schedule carried
    from earlier batches of the same media (:data:`vision.analyze.TextMemory`)."""
    frames = [f for f, _ in items]
    facts = models.analyze_batch(frames, memory)
    groups: dict[int, list[int]] = {}
    for i, (_, snap) in enumerate(items):
        groups.setdefault(id(snap), []).append(i)
    for positions in groups.values():
        matcher = items[positions[0]][1].logos
        if matcher is None:
            continue
        found = matcher.match_many([frames[i].image for i in positions])
        for i, logos in zip(positions, found, strict=True):
            facts[i] = dataclasses.replace(facts[i], logos=tuple(logos))
    return facts

"""Wires vision to targeting: a loaded Pipeline + compiled rules -> placements for a timeline.

This is the only place that knows both sides: it hands the CLIP embedder to targeting through the
``ConceptEmbedder`` protocol, and gives targeting the IAB matrix that vision computed, so every
concept of every campaign is embedded once per rules version in the frames' own space.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from targeting.concept_index import ConceptIndex
from targeting.match import FrameDecision, explain_frames, match
from targeting.rules_loader import RuleSet
from targeting.types import Placement
from vision.errors import ModelError
from vision.pipeline import Pipeline
from vision.safety_classes import SAFETY_BY_NAME
from vision.types import FrameFacts


def clip_needs(rules: RuleSet) -> list[str]:
    """Where the rules need CLIP (``file:line: what``); empty when logos and faces are enough."""
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
class CompiledRules:
    """A rules version with its concept index; swapped whole on reload, never mutated."""

    rules: RuleSet
    index: ConceptIndex

    @property
    def version(self) -> str:
        return self.rules.version


def compile_rules(pipeline: Pipeline, rules: RuleSet) -> CompiledRules:
    """Embed every concept of ``rules`` with the pipeline's CLIP; fails if CLIP is needed and off."""
    needs = clip_needs(rules)
    if needs and pipeline.clip is None:
        raise ModelError(
            "these rules need CLIP, which is not loaded (fetch its weights with "
            "`onscreen weights fetch clip-vit-b-32-laion2b`, or pass --random-weights for a test):\n  "
            + "\n  ".join(needs)
        )
    index = ConceptIndex.build(
        rules.campaigns,
        pipeline.clip,
        rules_root=rules.root,
        iab_matrix=pipeline.iab_matrix,
        iab_ids=pipeline.iab_ids or None,
    )
    return CompiledRules(rules, index)


class Targeter:
    """Facts -> placements against the current rules; ``swap`` installs a new rules version."""

    def __init__(self, pipeline: Pipeline, rules: RuleSet) -> None:
        self.pipeline = pipeline
        self._compiled = compile_rules(pipeline, rules)
        self._lock = threading.Lock()

    @property
    def compiled(self) -> CompiledRules:
        return self._compiled

    def swap(self, rules: RuleSet) -> CompiledRules:
        """Compile ``rules`` and make them current; on any error the old rules stay."""
        compiled = compile_rules(self.pipeline, rules)
        with self._lock:
            self._compiled = compiled
        return compiled

    def place(
        self, timeline: Sequence[FrameFacts], *, media: str, today: date | None = None
    ) -> list[Placement]:
        c = self._compiled
        return match(timeline, c.rules.campaigns, c.index, today=today or date.today(), media=media)

    def explain(
        self, timeline: Sequence[FrameFacts], *, today: date | None = None
    ) -> list[FrameDecision]:
        c = self._compiled
        return explain_frames(timeline, c.rules.campaigns, c.index, today=today or date.today())

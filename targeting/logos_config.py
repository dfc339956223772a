"""``logos.yaml``: which trained logo detector joins the reference matcher for a rules directory.

A rules directory may hold one ``logos.yaml`` at its root::

    detector: ../weights/logos-demo.pt   # relative to the rules directory, or absolute
    min_score: 0.25                      # lowest detector score kept as a candidate, (0, 1]
    verify: matcher                      # matcher (default) | none
    verify_threshold: 0.3                # matcher score on the crop that confirms a hit, (0, 1]
    keep_above: 0.7                      # ...or a detector score that keeps it unconfirmed

Why a file in the rules directory: the detector is trained *for these brands* (its card names
them), so it belongs with them; a reload that changes the brands, or logos.yaml, rebuilds the
fused finder with the rules, or is refused as a whole. ``--logo-detector PATH`` on
analyze/scan/serve/target names the detector instead (the flag overrides ``detector``; the
other keys still apply); ``detector`` may be left out for that.

Decisions:

- ``detector`` may point outside the rules directory (weights are large and shared), but only
  a ``.pt`` with its card (``<weights>.json``) whose sha256 matches the file and whose brands
  are exactly the rules' brands is accepted: a rules directory can only pick a detector that
  someone trained or registered for it, never an arbitrary file (a ``.pt`` is a pickle).
- Every problem is reported at ``logos.yaml:line`` with the other rules problems: unknown keys
  (with a suggestion), wrong types or ranges, a missing file or card, a sha256 that is not the
  card's, a card trained for other brands (both lists named), a detector without brands.
- ``verify: semantic`` (checking a detection against the semantic model) is not implemented:
  it is refused by name, so a rules file asking for it never runs with a silent fallback.
- The card's sha256 goes into the rules version: a detector retrained in place is a new rules
  version, so a running server reloads (and re-checks) it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from targeting.schema_messages import suggest, yaml_kind
from targeting.yaml_lines import YamlPath, line_for
from vision.errors import ModelError
from vision.logo_fusion import (
    DEFAULT_LOGO_CONF,
    DEFAULT_VERIFY_MIN_SCORE,
    VERIFY_MODES,
    DetectorSettings,
    VerifyMode,
)

LOGOS_FILE = "logos.yaml"
"""The rules directory's logo detector settings (at its root)."""

LOGOS_KEYS = ("detector", "min_score", "verify", "verify_threshold", "keep_above")

AddProblem = Callable[[str, int | None, YamlPath | str, str], None]
"""``(file, line, field, message)``: how problems are reported (``rules_loader._Collector.add``)."""


@dataclass(frozen=True)
class LogosConfig:
    """A checked ``logos.yaml``. ``detector``: absolute path, None when the file names none
    (``--logo-detector`` then must). ``line``: the line of ``detector:`` (1 without one)."""

    detector: Path | None = None
    min_score: float = DEFAULT_LOGO_CONF
    verify: VerifyMode = "matcher"
    verify_threshold: float = DEFAULT_VERIFY_MIN_SCORE
    keep_above: float | None = None
    line: int = 1

    def settings(self, override: Path | None = None) -> DetectorSettings | None:
        """The detector settings to run: ``override`` (the flag) replaces ``detector``;
        None when neither names a detector."""
        weights = override if override is not None else self.detector
        if weights is None:
            return None
        return DetectorSettings(
            Path(weights),
            min_score=self.min_score,
            verify=self.verify,
            verify_threshold=self.verify_threshold,
            keep_above=self.keep_above,
        )


def detector_settings(logos: LogosConfig | None, override: Path | None) -> DetectorSettings | None:
    """What runs for a rules directory's ``logos.yaml`` (may be None) and ``--logo-detector``."""
    if logos is None:
        return DetectorSettings(override) if override is not None else None
    return logos.settings(override)


def _score(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    v = float(value)
    return v if 0.0 < v <= 1.0 else None


def check_logos(
    data: Any,
    lines: Mapping[YamlPath, int],
    root: Path,
    brands: Mapping[str, tuple[Path, ...]],
    add: AddProblem,
) -> tuple[LogosConfig | None, str | None]:
    """Check a parsed ``logos.yaml``: (the config or None when it has problems, the detector's
    card sha256 for the rules version or None). Problems go to ``add`` at their lines."""
    from vision.logo_training.registry import check_detector_card

    f = LOGOS_FILE
    if data is None:
        add(f, 1, "", "file is empty: name a detector (detector: PATH) or delete the file")
        return None, None
    if not isinstance(data, dict):
        add(
            f,
            lines.get((), 1),
            "",
            f"top level should be a mapping (detector: ..., min_score: ...), "
            f"got {yaml_kind(data, echo=False)}",
        )
        return None, None
    ok = True
    for key in data:
        if key not in LOGOS_KEYS:
            name = str(key)
            maybe = suggest(name, list(LOGOS_KEYS), cutoff=0.6)
            add(
                f,
                line_for(lines, (key,)),
                name,
                f"unknown key '{name}' ({maybe}known: {', '.join(LOGOS_KEYS)})",
            )
            ok = False
    values: dict[str, Any] = {}
    for key in ("min_score", "verify_threshold", "keep_above"):
        if key in data:
            v = _score(data[key])
            if v is None:
                add(
                    f,
                    line_for(lines, (key,)),
                    key,
                    f"must be a number in (0, 1], got {yaml_kind(data[key])}",
                )
                ok = False
            else:
                values[key] = v
    if "verify" in data:
        v = data["verify"]
        if v == "semantic":
            add(
                f,
                line_for(lines, ("verify",)),
                "verify",
                "'semantic' verification is not implemented: use matcher (the reference "
                "matcher confirms each detection) or none (detections are kept as scored)",
            )
            ok = False
        elif v not in VERIFY_MODES:
            add(
                f,
                line_for(lines, ("verify",)),
                "verify",
                f"must be one of {', '.join(VERIFY_MODES)}, got {yaml_kind(v)}",
            )
            ok = False
        else:
            values["verify"] = v
        for key in ("verify_threshold", "keep_above"):
            if v == "none" and key in data:
                add(
                    f,
                    line_for(lines, (key,)),
                    key,
                    "applies only to verify: matcher (verify is none here): drop one of them",
                )
                ok = False
    detector: Path | None = None
    sha: str | None = None
    line = 1
    if "detector" in data:
        line = line_for(lines, ("detector",)) or 1
        raw = data["detector"]
        if not isinstance(raw, str) or not raw.strip():
            add(f, line, "detector", f"must be a path to a .pt file, got {yaml_kind(raw)}")
            return None, None
        rel = raw.strip()
        detector = Path(rel) if Path(rel).is_absolute() else (root / rel)
        detector = Path(detector.resolve())
        if detector.suffix != ".pt":
            add(f, line, "detector", f"'{rel}' is not a .pt file (train-logos writes .pt files)")
            return None, None
        if not detector.is_file():
            add(
                f,
                line,
                "detector",
                f"'{rel}' not found (resolved to {detector}; relative paths start at the rules "
                f"directory); train one with `onscreen train-logos {root} --out {detector}`",
            )
            return None, None
        if not brands:
            add(
                f,
                line,
                "detector",
                "a logo detector needs brands, and these rules have none: add reference "
                "images under brands/<brand>/ or drop the detector",
            )
            return None, None
        try:
            sha = check_detector_card(detector, sorted(brands)).weights_sha256
        except ModelError as exc:
            add(f, line, "detector", str(exc))
            return None, None
    if not ok:
        return None, sha
    return (
        LogosConfig(
            detector=detector,
            min_score=values.get("min_score", DEFAULT_LOGO_CONF),
            verify=values.get("verify", "matcher"),
            verify_threshold=values.get("verify_threshold", DEFAULT_VERIFY_MIN_SCORE),
            keep_above=values.get("keep_above"),
            line=line,
        ),
        sha,
    )


__all__ = [
    "LOGOS_FILE",
    "LOGOS_KEYS",
    "LogosConfig",
    "check_logos",
    "detector_settings",
]

"""``onscreen rules check DIR``: validate an advertisers' rules directory before it goes live.

Made for the edit-check-fix loop of a campaign manager and for CI on a rules repository:

- problems: one line each, ``file:line: field: message`` (the format editors and CI annotators
  parse), then ``N problems``; exit code 1;
- clean: a summary of what the server would run (campaigns with advertiser, bid and clauses;
  brands with their image counts; distinct concept prompts; IAB ids); exit code 0;
- ``--json``: the same as one JSON object (``ok``, and ``problems`` or the summary) for scripts.

Exit code 2 stays what ``serving.commands.cli`` gives every command for its own errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from targeting.rules_loader import RuleSet, load_rules
from targeting.rules_schema import Campaign, Clause
from vision.errors import RuleProblem, RulesError

EXIT_OK = 0
EXIT_PROBLEMS = 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "rules",
        help="check an advertisers' rules directory (campaigns/*.yaml, brands/<brand>/)",
        description="Work with an advertisers' rules directory.",
    )
    actions = p.add_subparsers(dest="rules_action", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate every campaign and brand; print file:line of each problem",
        description=(
            "Validate a rules directory. Prints every problem as 'file:line: field: message' "
            "and exits 1, or prints a summary and exits 0."
        ),
    )
    check.add_argument("dir", type=Path, help="rules directory (holds campaigns/ and brands/)")
    check.add_argument("--json", action="store_true", help="print one JSON object for scripts")
    check.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.rules_action != "check":  # argparse allows only 'check' today
        raise SystemExit(f"unknown rules action {args.rules_action!r}")
    try:
        rules = load_rules(args.dir)
    except RulesError as exc:
        if args.json:
            _dump({"ok": False, "problems": [_problem_json(p) for p in exc.problems]})
        else:
            for p in exc.problems:
                print(p)
            n = len(exc.problems)
            print(f"{n} problem{'s' if n != 1 else ''}")
        return EXIT_PROBLEMS
    if args.json:
        _dump(summary_json(rules))
    else:
        print(summary_text(rules))
    return EXIT_OK


def _dump(obj: object) -> None:
    json.dump(obj, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _problem_json(p: RuleProblem) -> dict[str, Any]:
    return {"file": p.file, "line": p.line, "field": p.field, "message": p.message}


def clause_text(clause: Clause) -> str:
    """One clause in a few words: ``logo acme>=0.6``, ``face >=1 area>=0.02``, ``iab 210,222``."""
    if clause.logo is not None:
        return f"logo {clause.logo.brand}>={clause.logo.min_score:g}"
    if clause.face is not None:
        f = clause.face
        most = f"..{f.max_count}" if f.max_count is not None else ""
        return f"face >={f.min_count}{most} area>={f.min_area:g}"
    if clause.iab is not None:
        return f"iab {','.join(clause.iab.ids)} top{clause.iab.top_k}"
    if clause.text is not None:
        phrases = ",".join(f'"{t}"' for t in clause.text.any)
        return f"text {phrases}>={clause.text.min_score:g}"
    concept = clause.concept
    assert concept is not None  # a Clause holds exactly one kind (schema validator)
    if concept.prompt is not None:
        return f'concept "{concept.prompt}">={concept.effective_threshold:g}'
    return f"concept {len(concept.examples or ())} example(s)>={concept.effective_threshold:g}"


def _exclude_text(c: Campaign) -> str:
    parts = []
    if c.exclude.safety:
        parts.append("safety " + ",".join(c.exclude.safety))
    if c.exclude.logos:
        parts.append("logos " + ",".join(lg.brand for lg in c.exclude.logos))
    if c.exclude.concepts:
        parts.append(f"{len(c.exclude.concepts)} concept(s)")
    if c.exclude.text:
        parts.append("text " + ",".join(f'"{t}"' for t in c.exclude.text))
    return "; ".join(parts) or "-"


def summary_text(rules: RuleSet) -> str:
    """The human summary printed when the directory is clean."""
    from vision.taxonomy import iab_by_id

    lines = [
        f"{rules.root}: {len(rules.campaigns)} campaign(s), {len(rules.brands)} brand(s), "
        f"version {rules.version[:12]}",
        "campaigns:",
    ]
    for c in rules.campaigns:
        file, line = rules.sources[c.id]
        target = []
        if c.target.all:
            target.append("all: " + " & ".join(clause_text(cl) for cl in c.target.all))
        if c.target.any:
            target.append("any: " + " | ".join(clause_text(cl) for cl in c.target.any))
        flight = ""
        if c.flight is not None:
            flight = f"  flight {c.flight.start or '...'}..{c.flight.end or '...'}"
        lines.append(
            f"  {c.id}  ({c.advertiser or 'no advertiser'}, bid {c.bid_cpm:g} CPM)  {file}:{line}"
        )
        lines.append(f"      target {'; '.join(target)}")
        lines.append(f"      exclude {_exclude_text(c)}  min {c.min_duration_s:g}s{flight}")
    lines.append("brands:")
    for brand, images in sorted(rules.brands.items()):
        lines.append(f"  {brand}: {len(images)} image(s)")
    if not rules.brands:
        lines.append("  (none)")
    prompts = rules.prompts()
    lines.append(f"concepts ({len(prompts)}):")
    lines.extend(f'  "{p}"' for p in prompts)
    examples = rules.example_paths()
    if examples:
        lines.append(f"example images ({len(examples)}):")
        lines.extend(f"  {p.relative_to(rules.root).as_posix()}" for p in examples)
    ids = rules.iab_ids()
    lines.append(f"IAB ids ({len(ids)}):")
    lines.extend(f"  {i}  {' > '.join(iab_by_id()[i].path)}" for i in ids)
    return "\n".join(lines)


def summary_json(rules: RuleSet) -> dict[str, Any]:
    """The ``--json`` summary: stable keys for scripts (extend, never rename)."""
    from vision.taxonomy import iab_by_id

    campaigns = []
    for c in rules.campaigns:
        file, line = rules.sources[c.id]
        campaigns.append(
            {
                "id": c.id,
                "advertiser": c.advertiser,
                "bid_cpm": c.bid_cpm,
                "file": file,
                "line": line,
                "flight": (
                    None
                    if c.flight is None
                    else {
                        "start": c.flight.start.isoformat() if c.flight.start else None,
                        "end": c.flight.end.isoformat() if c.flight.end else None,
                    }
                ),
                "all": [cl.kind for cl in c.target.all],
                "any": [cl.kind for cl in c.target.any],
                "exclude": {
                    "safety": list(c.exclude.safety),
                    "logos": [lg.brand for lg in c.exclude.logos],
                    "concepts": len(c.exclude.concepts),
                    "text": list(c.exclude.text),
                },
                "min_duration_s": c.min_duration_s,
            }
        )
    return {
        "ok": True,
        "root": str(rules.root),
        "version": rules.version,
        "campaigns": campaigns,
        "brands": {b: len(imgs) for b, imgs in sorted(rules.brands.items())},
        "concepts": list(rules.prompts()),
        "examples": [p.relative_to(rules.root).as_posix() for p in rules.example_paths()],
        "iab": [{"id": i, "name": iab_by_id()[i].name} for i in rules.iab_ids()],
        "ignored": list(rules.ignored),
    }

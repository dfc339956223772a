"""Advertisers' files on mutation: a campaign YAML and a catalog JSONL edited into every shape
a hurried hand (or a hostile upload) makes. A rules directory either loads or raises one
RulesError listing every problem with its file and (where it has one) a line; it never raises
anything else and never echoes the file. A catalog file yields items and one problem per bad
line, never an exception."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from hypothesis import given, settings

from targeting.rules_loader import RuleSet, load_rules
from tests.conftest import REPO
from tests.fuzz.conftest import examples
from tests.fuzz.mutations import mutated_text
from vision.catalog import parse_catalog_lines
from vision.errors import RulesError

EXAMPLES = REPO / "examples" / "rules"
SEED_CAMPAIGNS = ("acme-own-logo.yaml", "beanery-coffee-break.yaml", "tyrehaus-winter-sale.yaml")


def _rules_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fuzz-rules")
    shutil.copytree(EXAMPLES, root / "rules")
    for extra in (root / "rules" / "campaigns").iterdir():
        if extra.name not in SEED_CAMPAIGNS:
            extra.unlink()
    return root / "rules"


def test_mutated_campaign_yaml_loads_or_lists_its_problems(tmp_path_factory) -> None:
    rules = _rules_dir(tmp_path_factory)
    seeds = {n: (rules / "campaigns" / n).read_text(encoding="utf-8") for n in SEED_CAMPAIGNS}
    target = rules / "campaigns" / SEED_CAMPAIGNS[1]

    @settings(max_examples=examples(300))
    @given(text=mutated_text(seeds[SEED_CAMPAIGNS[1]]))
    def check(text: str) -> None:
        target.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            got = load_rules(rules)
        except RulesError as exc:
            assert exc.problems
            for p in exc.problems:
                assert p.file and p.message
                assert p.line is None or p.line >= 1
                # never echo a line of the file back (they may hold anything)
                long_lines = [ln for ln in text.splitlines() if len(ln.strip()) > 40]
                assert not any(ln.strip() in p.message for ln in long_lines)
            return
        assert isinstance(got, RuleSet) and got.campaigns

    check()


def test_mutated_catalog_lines_give_items_and_problems_never_an_exception() -> None:
    seed = "\n".join(
        json.dumps(line)
        for line in (
            {"id": "sku-1", "image": "a.jpg", "title": "Cup", "category": "kitchen", "price": 9.5},
            {"id": "sku-2", "image": "b.png", "advertiser": "Acme", "tags": ["blue", "round"]},
            {
                "id": "sku-3",
                "image": "c.webp",
                "extra": {"colour": "red"},
                "url": "https://x.test/c",
            },
        )
    )

    @settings(max_examples=examples(500))
    @given(text=mutated_text(seed, max_edits=6))
    def check(text: str) -> None:
        got = parse_catalog_lines(text.splitlines(), base_dir=Path("/catalog"))
        assert len(got.items) + len(got.problems) <= max(1, len(text.splitlines()))
        ids = [it.id for it in got.items]
        assert len(ids) == len(set(ids))
        for problem in got.problems:
            assert problem.startswith("line ")

    check()

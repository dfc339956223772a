"""``onscreen rules check``: exit codes 0/1/2 and the output formats people and scripts rely on."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from serving.commands import cli

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "rules"
PROBLEM_LINE = re.compile(r"^[^:\s]+(:\d+)?:( [A-Za-z_][\w.\[\]]*:)? \S.*$")
"""``file:line: field: message`` (line and field may be absent for directory-level problems)."""


@pytest.fixture
def run_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]):
    """Run ``onscreen`` through ``serving.commands.cli.main`` with only this command registered, so the
    test does not depend on other commands' (heavier) imports."""
    monkeypatch.setattr(cli, "COMMANDS", ("rules",))

    def run(*argv: str) -> tuple[int, str, str]:
        code = cli.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    root = tmp_path / "rules"
    shutil.copytree(EXAMPLES, root)
    (root / "campaigns" / "zz.yaml").write_text(
        "id: zz\ntarget:\n  any:\n    - concept: {prompt: snow, treshold: 0.3}\n"
        "    - logo: {brand: acmee}\n",
        encoding="utf-8",
    )
    (root / "campaigns" / "acme-rival-conquest.yaml").write_text("id: [\n", encoding="utf-8")
    (root / "brands" / "hollow").mkdir()
    return root


def test_examples_are_clean(run_cli) -> None:
    code, out, err = run_cli("rules", "check", str(EXAMPLES))
    assert code == 0, out + err
    lines = out.splitlines()
    assert lines[0].endswith(": 5 campaign(s), 2 brand(s), version " + lines[0][-12:])
    assert (
        "  acme-rival-conquest  (Acme Analytics, bid 5.5 CPM)  campaigns/acme-rival-conquest.yaml:3"
        in lines
    )
    assert "      target any: logo rival>=0.6" in lines
    assert "      target all: face >=1 area>=0.02" in lines
    assert '      target any: iab 210,222 top3 | concept "a cup of coffee">=0.25' in lines
    tyres = '      target any: text "winter tyres","winter tires","snow chains">=0.5'
    assert tyres in lines
    assert '      exclude safety nudity; text "recall notice"  min 1s' in lines
    assert lines[lines.index("brands:") + 1 :][:2] == ["  acme: 1 image(s)", "  rival: 1 image(s)"]
    assert '  "a cup of coffee"' in lines
    assert "  222  Food & Drink > Non-Alcoholic Beverages" in lines
    assert err == ""


def test_examples_json(run_cli) -> None:
    code, out, _ = run_cli("rules", "check", str(EXAMPLES), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] is True and len(doc["version"]) == 64
    assert [c["id"] for c in doc["campaigns"]] == [
        "acme-own-logo",
        "acme-rival-conquest",
        "beanery-coffee-break",
        "speakeasy-presenter",
        "tyrehaus-winter-sale",
    ]
    conquest = doc["campaigns"][1]
    assert conquest["bid_cpm"] == 5.5 and conquest["any"] == ["logo"]
    assert conquest["exclude"] == {
        "safety": ["nudity", "violence"],
        "logos": ["acme"],
        "concepts": 0,
        "text": [],
    }
    assert doc["campaigns"][4]["exclude"]["text"] == ["recall notice"]
    assert doc["brands"] == {"acme": 1, "rival": 1}
    assert doc["iab"] == [
        {"id": "210", "name": "Food & Drink"},
        {"id": "222", "name": "Non-Alcoholic Beverages"},
    ]


def test_problems_exit_1_one_line_each(run_cli, broken: Path) -> None:
    code, out, _ = run_cli("rules", "check", str(broken))
    assert code == 1
    lines = out.splitlines()
    assert lines[-1] == "4 problems"
    assert lines[:-1] == [
        "brands/hollow: brand 'hollow' has no reference image (.png, .jpg, .jpeg, .webp)",
        "campaigns/acme-rival-conquest.yaml:2: YAML syntax error (column 1): expected the node content, "
        "but found '<stream end>'",
        "campaigns/zz.yaml:4: target.any[0].concept.treshold: unknown key 'treshold' "
        "(did you mean 'threshold'? allowed: prompt, examples, threshold)",
        "campaigns/zz.yaml:5: target.any[1].logo.brand: unknown brand 'acmee' "
        "(did you mean 'acme'? known: acme, rival; a brand is a folder brands/<brand>/ of "
        "reference images)",
    ]
    assert all(PROBLEM_LINE.match(line) for line in lines[:-1]), lines


def test_problems_json(run_cli, broken: Path) -> None:
    code, out, _ = run_cli("rules", "check", str(broken), "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False
    assert [(p["file"], p["line"], p["field"]) for p in doc["problems"]] == [
        ("brands/hollow", None, ""),
        ("campaigns/acme-rival-conquest.yaml", 2, ""),
        ("campaigns/zz.yaml", 4, "target.any[0].concept.treshold"),
        ("campaigns/zz.yaml", 5, "target.any[1].logo.brand"),
    ]


@pytest.mark.parametrize(
    "argv, code, expected",
    [
        (
            ("rules", "check", "no/such/dir"),
            1,
            "no/such/dir: rules directory does not exist\n1 problem\n",
        ),
        (("rules", "check", str(EXAMPLES / "README.md")), 1, "rules directory is not a directory"),
    ],
)
def test_bad_directory_argument(run_cli, argv: tuple[str, ...], code: int, expected: str) -> None:
    got, out, _ = run_cli(*argv)
    assert got == code
    assert expected in out


def test_missing_action_is_a_usage_error(run_cli) -> None:
    with pytest.raises(SystemExit) as info:
        run_cli("rules")
    assert info.value.code == 2

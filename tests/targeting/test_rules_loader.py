"""targeting.rules_loader: the examples load; every mistake is reported at file:line, at once."""

from __future__ import annotations

import logging
import shutil
import typing
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from targeting.rules_loader import RuleSet, load_rules
from targeting.yaml_lines import MAX_YAML_NODES
from tests.targeting.images import png, png_bomb
from vision.errors import MediaError, RuleProblem, RulesError
from vision.logo_matcher import LogoMatcher

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "rules"

GOOD = """\
id: good
target:
  any:
    - logo: {brand: acme}
"""


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    """A writable copy of examples/rules."""
    root = tmp_path / "rules"
    shutil.copytree(EXAMPLES, root)
    return root


def write(root: Path, rel: str, text: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def problems_of(root: Path) -> list[RuleProblem]:
    with pytest.raises(RulesError) as info:
        load_rules(root)
    return info.value.problems


# ------------------------------------------------------------------------------------ good dir


def test_examples_load() -> None:
    rules = load_rules(EXAMPLES)
    assert isinstance(rules, RuleSet)
    assert rules.root == EXAMPLES.resolve()
    assert [c.id for c in rules.campaigns] == [
        "acme-own-logo",
        "acme-rival-conquest",
        "beanery-coffee-break",
        "speakeasy-presenter",
        "tyrehaus-winter-sale",
    ]
    assert {b: [p.name for p in imgs] for b, imgs in rules.brands.items()} == {
        "acme": ["logo2.png"],
        "rival": ["logo.png"],
    }
    # Every source points at the campaign's own `id:` line.
    for cid, (file, line) in rules.sources.items():
        text = (EXAMPLES / file).read_text(encoding="utf-8").splitlines()
        assert text[line - 1] == f"id: {cid}", (file, line)
    assert rules.prompts() == ("a cup of coffee", "a spilled drink and a mess on the table")
    assert rules.iab_ids() == ("210", "222")
    assert rules.example_paths() == ()
    assert rules.ignored == ()
    assert len(rules.version) == 64
    assert load_rules(EXAMPLES).version == rules.version  # deterministic


def test_campaign_lookup_and_clauses() -> None:
    rules = load_rules(EXAMPLES)
    conquest = rules.campaign("acme-rival-conquest")
    assert conquest.bid_cpm > rules.campaign("acme-own-logo").bid_cpm
    assert [cl.kind for cl in conquest.target.any] == ["logo"]
    assert conquest.target.any[0].logo is not None
    assert conquest.target.any[0].logo.brand == "rival"
    assert [lg.brand for lg in conquest.exclude.logos] == ["acme"]
    face = rules.campaign("speakeasy-presenter").target.all[0].face
    assert face is not None and (face.min_count, face.min_area) == (1, 0.02)
    with pytest.raises(KeyError, match="no campaign 'nope'.*known: acme-own-logo"):
        rules.campaign("nope")
    with pytest.raises(TypeError):
        rules.brands["x"] = ()  # type: ignore[index]


def test_version_follows_content_not_mtime(rules: Path) -> None:
    before = load_rules(rules).version
    logo = rules / "brands" / "acme" / "logo2.png"
    logo.touch()
    assert load_rules(rules).version == before
    logo.write_bytes(logo.read_bytes() + b"\0")
    after = load_rules(rules).version
    assert after != before
    write(rules, "campaigns/acme-own-logo.yaml", GOOD.replace("good", "acme-own-logo"))
    assert load_rules(rules).version not in (before, after)


def test_examples_resolve_and_dedupe(rules: Path, real_images: dict[str, Path]) -> None:
    shutil.copy(real_images["coffee"], rules / "examples-coffee.png")
    write(
        rules,
        "campaigns/ex.yaml",
        """\
id: ex
target:
  any:
    - concept: {examples: [examples-coffee.png]}
    - concept: {prompt: "a cup of coffee"}
    - concept: {examples: ['.\\examples-coffee.png']}
exclude:
  concepts: [{examples: [examples-coffee.png], threshold: 0.95}]
""",
    )
    rules_set = load_rules(rules)
    assert rules_set.example_paths() == (rules.resolve() / "examples-coffee.png",)
    assert rules_set.prompts().count("a cup of coffee") == 1


def test_ignored_files_warn_and_hidden_files_are_silent(
    rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write(rules, "campaigns/notes.md", "# not a campaign\n")
    write(rules, "campaigns/.acme-own-logo.yaml.swp", "garbage: [")
    write(rules, "campaigns/acme-own-logo.yaml~", "garbage: [")
    (rules / "campaigns" / "old").mkdir()
    with caplog.at_level(logging.WARNING, logger="targeting.rules_loader"):
        loaded = load_rules(rules)
    assert loaded.ignored == ("campaigns/notes.md", "campaigns/old")
    warned = [r.getMessage() for r in caplog.records]
    assert warned == [
        "campaigns/notes.md: ignored (campaign files end in .yaml or .yml)",
        "campaigns/old: ignored (campaign files end in .yaml or .yml)",
    ]


def test_yml_suffix_and_bom_are_accepted(rules: Path) -> None:
    write(rules, "campaigns/other.yml", "\ufeff" + GOOD.replace("good", "other"))
    assert "other" in {c.id for c in load_rules(rules).campaigns}


# ------------------------------------------------------------------------------ one error each

# (campaign file text, expected line, expected field, key part of the message)
CASES = [
    pytest.param(
        "id: bad\ntarget:\n  any: [{logo: {brand: acme}\n",
        4,
        "",
        "YAML syntax error (column 1): expected ',' or '}', but got '<stream end>' "
        "(while parsing a flow mapping started on line 3)",
        id="yaml-syntax",
    ),
    pytest.param(
        "id: bad\n  target: 1\n",
        2,
        "",
        "YAML syntax error (column 9): mapping values are not allowed",
        id="yaml-indent",
    ),
    pytest.param(
        "# a list, not a campaign\n- id: bad\n",
        2,
        "",
        "top level should be a mapping (id: ..., target: ...), got a list",
        id="top-level-list",
    ),
    pytest.param(
        "just text\n",
        1,
        "",
        "top level should be a mapping (id: ..., target: ...), got text",
        id="top-text",
    ),
    pytest.param("# nothing yet\n", 1, "", "file is empty", id="empty-file"),
    pytest.param(
        """\
id: bad
target:
  any:
    - concept:
        prompt: a red car
        treshold: 0.3
""",
        6,
        "target.any[0].concept.treshold",
        "unknown key 'treshold' (did you mean 'threshold'? allowed: prompt, examples, threshold)",
        id="unknown-key-nested",
    ),
    pytest.param(
        "id: bad\nbid: 2.0\ntarget: {any: [{face: {}}]}\n",
        2,
        "bid",
        "unknown key 'bid' (did you mean 'bid_cpm'? allowed: id, target, advertiser, description,"
        " bid_cpm, flight, exclude, min_duration_s, gap_s)",
        id="unknown-key-top",
    ),
    pytest.param(
        "id: bad\ntarget:\n  any:\n    - face: {}\n    - logo: {brand: acme, min_sore: 0.7}\n",
        5,
        "target.any[1].logo.min_sore",
        "unknown key 'min_sore' (did you mean 'min_score'? allowed: brand, min_score, min_area)",
        id="unknown-key-flow",
    ),
    pytest.param(
        "id: bad\nbid_cpm: cheap\ntarget: {any: [{face: {}}]}\n",
        2,
        "bid_cpm",
        "should be a valid number, got text 'cheap'",
        id="wrong-type",
    ),
    pytest.param(
        "id: bad\ntarget:\n  any:\n    - face: {}\n    - concept: {prompt: snow, threshold: 1.5}\n",
        5,
        "target.any[1].concept.threshold",
        "should be less than or equal to 1, got 1.5",
        id="out-of-range",
    ),
    pytest.param(
        "id: bad\ntarget:\n  all:\n    - face:\n        min_count: 3\n        max_count: 2\n",
        4,
        "target.all[0].face",
        "max_count 2 is below min_count 3",
        id="model-validator",
    ),
    pytest.param(
        "id: bad\ntarget:\n  any:\n    - logo: {brand: acme}\n      face: {}\n",
        4,
        "target.any[0]",
        "each target entry needs exactly one of concept, logo, face, iab, text (got logo, face)",
        id="clause-two-kinds",
    ),
    pytest.param(
        "# campaign\nid: bad\nadvertiser: Acme\n",
        2,
        "target",
        "missing required key 'target'",
        id="missing-top",
    ),
    pytest.param(
        "id: bad\ntarget:\n  any:\n    - logo:\n        min_score: 0.7\n",
        4,
        "target.any[0].logo.brand",
        "missing required key 'brand'",
        id="missing-nested",
    ),
    pytest.param(
        "id: bad\ntarget: a car\n",
        2,
        "target",
        "should be a mapping of keys (key: value), got text 'a car'",
        id="mapping-expected",
    ),
    pytest.param(
        "id: bad\ntarget: {any: [{face: {}}]}\nexclude:\n  safety: nudity\n",
        4,
        "exclude.safety",
        "should be a list (`- item` lines or [a, b]), got text 'nudity'",
        id="list-expected",
    ),
    pytest.param(
        "id: 123\ntarget: {any: [{face: {}}]}\n",
        1,
        "id",
        "should be a valid string, got 123 (put it in quotes)",
        id="id-number",
    ),
    pytest.param(
        "id: bad\ntarget: {any: [{face: {}}]}\nflight: {start: 2026-03-01, end: 2026-02-01}\n",
        3,
        "flight",
        "flight end 2026-02-01 is before start 2026-03-01",
        id="flight-order",
    ),
    pytest.param(
        "id: bad\ntarget:\n  any:\n    - face: {}\n  any:\n    - logo: {brand: acme}\n",
        5,
        "target.any",
        "key 'any' appears twice (first on line 3); keep one",
        id="duplicate-key",
    ),
    pytest.param(
        "id: bad\ntarget:\n  any:\n    - face: {}\n    - logo: {brand: acmee}\n",
        5,
        "target.any[1].logo.brand",
        "unknown brand 'acmee' (did you mean 'acme'? known: acme, rival;",
        id="unknown-brand-clause",
    ),
    pytest.param(
        "id: bad\ntarget: {any: [{face: {}}]}\n"
        "exclude:\n  logos:\n    - brand: acme\n    - brand: other\n",
        6,
        "exclude.logos[1].brand",
        "unknown brand 'other' (known: acme, rival; a brand is a folder brands/<brand>/",
        id="unknown-brand-exclude",
    ),
    pytest.param(
        "id: bad\ntarget:\n  any:\n    - iab: [210, 9999]\n",
        4,
        "target.any[0].iab[1]",
        "unknown IAB id '9999': ids are the 'Unique ID' column of the IAB Content Taxonomy 3.1",
        id="unknown-iab-short",
    ),
    pytest.param(
        "id: bad\ntarget:\n  any:\n    - iab:\n        ids:\n          - 422\n          - Cats\n",
        7,
        "target.any[0].iab.ids[1]",
        "unknown IAB id 'Cats' (did you mean 424, 'Pets > Cats'?)",
        id="unknown-iab-name",
    ),
    pytest.param(
        "id: bad\ntarget: {any: [{face: {}}]}\nexclude:\n  safety: [nudity, nudes]\n",
        4,
        "exclude.safety[1]",
        "unknown safety class 'nudes' (did you mean 'nudity'? known: nudity, violence, weapons,",
        id="unknown-safety",
    ),
    pytest.param(
        "id: bad\ntarget:\n  any:\n    - concept:\n"
        "        examples:\n          - shots/missing.jpg\n",
        6,
        "target.any[0].concept.examples[0]",
        "example image 'shots/missing.jpg' not found (paths are relative to",
        id="missing-example",
    ),
    pytest.param(
        "id: bad\ntarget:\n  any:\n    - concept: {examples: [/etc/hostname]}\n",
        4,
        "target.any[0].concept.examples[0]",
        "example '/etc/hostname' is absolute: write it relative to",
        id="absolute-example",
    ),
    pytest.param(
        "id: bad\ntarget:\n  any:\n    - concept: {examples: [brands/../../outside.png]}\n",
        4,
        "target.any[0].concept.examples[0]",
        "example 'brands/../../outside.png' points outside the rules directory",
        id="escaping-example",
    ),
    pytest.param(
        "id: bad\ntarget:\n  any:\n    - concept: {examples: [README.md]}\n",
        4,
        "target.any[0].concept.examples[0]",
        "example 'README.md' is not an image (.png, .jpg, .jpeg, .webp)",
        id="example-not-image-suffix",
    ),
]


@pytest.mark.parametrize("text, line, field, message", CASES)
def test_each_error_class(rules: Path, text: str, line: int, field: str, message: str) -> None:
    write(rules, "campaigns/zz-bad.yaml", text)
    problems = problems_of(rules)
    assert len(problems) == 1, [str(p) for p in problems]
    p = problems[0]
    assert (p.file, p.line, p.field) == ("campaigns/zz-bad.yaml", line, field)
    assert message in p.message
    where = f"campaigns/zz-bad.yaml:{line}:" + (f" {field}:" if field else "")
    assert str(p).startswith(where)


def test_example_with_image_suffix_but_not_image_bytes(rules: Path) -> None:
    write(rules, "shots/fake.jpg", b"<html>not a jpeg</html>")
    write(
        rules,
        "campaigns/zz-bad.yaml",
        "id: bad\ntarget:\n  any:\n    - concept: {examples: [shots/fake.jpg]}\n",
    )
    [p] = problems_of(rules)
    assert str(p) == (
        "campaigns/zz-bad.yaml:4: target.any[0].concept.examples[0]: "
        "shots/fake.jpg: not a PNG, JPEG or WebP image (by its first bytes)"
    )


def test_duplicate_ids_name_both_files(rules: Path) -> None:
    write(
        rules,
        "campaigns/zz-copy.yaml",
        "# copy of acme\n\n" + GOOD.replace("good", "acme-own-logo"),
    )
    [p] = problems_of(rules)
    assert (p.file, p.line, p.field) == ("campaigns/zz-copy.yaml", 3, "id")
    assert p.message == (
        "duplicate campaign id 'acme-own-logo': also at campaigns/acme-own-logo.yaml:8; "
        "ids must be unique"
    )


@pytest.mark.parametrize(
    "setup, expected",
    [
        pytest.param(
            lambda r: (r / "brands" / "empty").mkdir(),
            "brands/empty: brand 'empty' has no reference image (.png, .jpg, .jpeg, .webp)",
            id="brand-without-image",
        ),
        pytest.param(
            lambda r: write(
                r, "brands/Big Co/logo.png", (r / "brands/acme/logo2.png").read_bytes()
            ),
            "brands/Big Co: brand folder name 'Big Co' cannot be named in rules: use lowercase",
            id="brand-bad-name",
        ),
        pytest.param(
            lambda r: write(r, "brands/acme/broken.png", b"GIF89a...."),
            "brands/acme/broken.png: not a PNG, JPEG or WebP image (by its first bytes)",
            id="brand-image-not-image",
        ),
        pytest.param(
            lambda r: write(r, "brands/acme/logo.svg", "<svg/>"),
            "brands/acme/logo.svg: .svg reference logos are not supported; convert it to PNG",
            id="brand-unsupported-format",
        ),
        pytest.param(
            lambda r: shutil.rmtree(r / "brands"),
            "campaigns/acme-own-logo.yaml:LOGO: target.any[0].logo.brand: unknown brand 'acme': "
            "there are no brands yet; add reference images under brands/acme/",
            id="no-brands-dir",
        ),
        pytest.param(
            lambda r: [p.unlink() for p in (r / "campaigns").iterdir()],
            "campaigns: no campaign files (*.yaml, *.yml) in this folder",
            id="empty-campaigns",
        ),
        pytest.param(
            lambda r: shutil.rmtree(r / "campaigns"),
            "campaigns: no 'campaigns/' folder in",
            id="no-campaigns-dir",
        ),
        pytest.param(
            lambda r: write(r, "campaigns/zz.yaml", b"id: caf\xe9\n"),
            "campaigns/zz.yaml:1: not valid text: invalid UTF-8 at byte 7; save it as UTF-8",
            id="not-utf8",
        ),
    ],
)
def test_directory_problems(rules: Path, setup, expected: str) -> None:
    setup(rules)
    own = (EXAMPLES / "campaigns/acme-own-logo.yaml").read_text(encoding="utf-8").splitlines()
    expected = expected.replace(
        "LOGO", str(own.index("    - logo: {brand: acme, min_score: 0.5}") + 1)
    )
    problems = [str(p) for p in problems_of(rules)]
    assert any(p.startswith(expected) for p in problems), problems
    # Without brands/, the three campaigns that name a brand each get a problem.
    assert len(problems) == (3 if "no brands yet" in expected else 1), problems


def test_missing_root_is_one_problem(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="nowhere: rules directory does not exist"):
        load_rules(tmp_path / "nowhere")
    write(tmp_path, "file.txt", "x")
    with pytest.raises(RulesError, match="file.txt: rules directory is not a directory"):
        load_rules(tmp_path / "file.txt")


def test_alias_bomb_is_refused(rules: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 6)]
    write(rules, "campaigns/zz-bomb.yaml", "\n".join(lines) + "\nid: bomb\n")
    [p] = problems_of(rules)
    assert (
        str(p)
        == f"campaigns/zz-bomb.yaml: more than {MAX_YAML_NODES} YAML nodes (aliases expanded)"
    )


def test_deep_nesting_is_refused(rules: Path) -> None:
    write(rules, "campaigns/zz-deep.yaml", "id: deep\ntarget: " + "[" * 5000 + "]" * 5000 + "\n")
    [p] = problems_of(rules)
    assert (
        str(p) == "campaigns/zz-deep.yaml: YAML nested too deeply (a campaign needs a few levels)"
    )


def test_all_errors_across_files_come_together(rules: Path) -> None:
    write(rules, "campaigns/a.yaml", "id: a\ntarget:\n  any:\n    - logo: {brand: nobody}\n")
    write(rules, "campaigns/b.yaml", "id: b\ntarget: {any: [{face: {min_count: 0}}]}\ngap: 1\n")
    write(rules, "campaigns/c.yaml", "id: [c\n")
    (rules / "brands" / "hollow").mkdir()
    problems = problems_of(rules)
    assert [(p.file, p.line, p.field) for p in problems] == [
        ("brands/hollow", None, ""),
        ("campaigns/a.yaml", 4, "target.any[0].logo.brand"),
        ("campaigns/b.yaml", 2, "target.any[0].face.min_count"),
        ("campaigns/b.yaml", 3, "gap"),
        ("campaigns/c.yaml", 2, ""),
    ]
    with pytest.raises(RulesError, match=r"^5 problem\(s\) in rules\n  brands/hollow: "):
        load_rules(rules)


def test_schema_and_directory_errors_in_one_file_together(rules: Path) -> None:
    """A schema error does not hide the directory checks of the same file."""
    write(
        rules,
        "campaigns/zz.yaml",
        "id: zz\nbid_cpm: -1\ntarget:\n  any:\n    - logo: {brand: ghost}\n"
        "exclude: {safety: [gore, guns]}\n",
    )
    got = {(p.line, p.field) for p in problems_of(rules)}
    assert got == {(2, "bid_cpm"), (5, "target.any[0].logo.brand"), (6, "exclude.safety[1]")}


def test_line_numbers_deep_nesting_with_comments(rules: Path) -> None:
    text = """\
# Top comment
# another

id: deep   # trailing comment
target:
  all:
    # a comment inside a list
    - face:
        min_count: 1

        min_area: 2.5
  any:
    - concept:
        prompt: "a snowy road"
    - concept:
        examples:
          - brands/acme/logo2.png
          - brands/acme/nope.png
        threshold: -0.1
"""
    write(rules, "campaigns/zz.yaml", text)
    got = [(p.line, p.field) for p in problems_of(rules)]
    assert got == [
        (11, "target.all[0].face.min_area"),
        (18, "target.any[1].concept.examples[1]"),
        (19, "target.any[1].concept.threshold"),
    ]


# ------------------------------------------------------------ defect 9: text, links, no echoes

SECRET = "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"


@pytest.mark.parametrize(
    "data, expected",
    [
        pytest.param(
            b"id: a\ntarget:\x00\n",
            "campaigns/zz.yaml:2: not valid text: a NUL byte; save the file as plain UTF-8 text",
            id="nul",
        ),
        pytest.param(
            b"id: a\n\ntarget: \x07\n",
            "campaigns/zz.yaml:3: not valid text: control character U+0007; "
            "save the file as plain UTF-8 text",
            id="control-character",
        ),
        pytest.param(
            b"id: a\nadvertiser: \xff\xfe\n",
            "campaigns/zz.yaml:2: not valid text: invalid UTF-8 at byte 18; save it as UTF-8",
            id="invalid-utf8",
        ),
        pytest.param(
            "\ufeffid: a\ntarget: {any: [{logo: {brand: acme}}]}\x00".encode("utf-16"),
            "campaigns/zz.yaml:1: not valid text: invalid UTF-8 at byte 0; save it as UTF-8",
            id="utf16",
        ),
    ],
)
def test_not_valid_text_is_one_problem_at_its_line(rules: Path, data: bytes, expected: str) -> None:
    write(rules, "campaigns/zz.yaml", data)
    assert [str(p) for p in problems_of(rules)] == [expected]


LINK_OUT = (
    "is a link to outside the rules directory: refused, never read "
    "(a rules directory must be self-contained: copy the file in)"
)


def _outside(tmp_path: Path) -> Path:
    out = tmp_path / "outside"
    (out / "dir").mkdir(parents=True, exist_ok=True)
    (out / "passwd").write_text(SECRET, encoding="utf-8")
    (out / "dir" / "logo.png").write_bytes((EXAMPLES / "brands/acme/logo2.png").read_bytes())
    (out / "dir" / "x.yaml").write_text(SECRET, encoding="utf-8")
    return out


@pytest.mark.parametrize(
    "link, target, problem_file",
    [
        ("campaigns/passwd.yaml", "passwd", "campaigns/passwd.yaml"),
        ("brands/acme/passwd.png", "passwd", "brands/acme/passwd.png"),
        ("brands/evil", "dir", "brands/evil"),
        ("brands/acme/logo9.png", "dir/logo.png", "brands/acme/logo9.png"),
    ],
)
def test_links_out_of_the_rules_dir_are_refused_and_never_read(
    rules: Path, tmp_path: Path, link: str, target: str, problem_file: str
) -> None:
    out = _outside(tmp_path)
    (rules / link).symlink_to(out / target)
    problems = problems_of(rules)
    assert [str(p) for p in problems] == [f"{problem_file}: {LINK_OUT}"]
    assert not any("root" in str(p) or str(out) in str(p) for p in problems)


def test_linked_campaigns_and_brands_folders_out_of_the_dir_are_refused(
    rules: Path, tmp_path: Path
) -> None:
    out = _outside(tmp_path)
    shutil.rmtree(rules / "campaigns")
    (rules / "campaigns").symlink_to(out / "dir")
    assert [str(p) for p in problems_of(rules)] == [f"campaigns: {LINK_OUT}"]
    shutil.rmtree(rules / "brands")
    (rules / "brands").symlink_to(out / "dir")
    got = [str(p) for p in problems_of(rules)]
    assert f"brands: {LINK_OUT}" in got and not any("root" in p for p in got)


def test_links_inside_the_rules_dir_are_followed(rules: Path) -> None:
    (rules / "campaigns" / "alias.yaml").symlink_to(rules / "campaigns" / "acme-own-logo.yaml")
    with pytest.raises(RulesError, match="duplicate campaign id 'acme-own-logo'"):
        load_rules(rules)


def test_example_linked_out_of_the_dir_is_refused(rules: Path, tmp_path: Path) -> None:
    out = _outside(tmp_path)
    (rules / "shots").mkdir()
    (rules / "shots" / "x.png").symlink_to(out / "dir" / "logo.png")
    write(
        rules,
        "campaigns/zz.yaml",
        "id: zz\ntarget: {any: [{concept: {examples: [shots/x.png]}}]}\n",
    )
    [p] = problems_of(rules)
    assert (p.file, p.line, p.field) == (
        "campaigns/zz.yaml",
        2,
        "target.any[0].concept.examples[0]",
    )
    assert "points outside the rules directory" in p.message


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param(
            SECRET,
            "campaigns/zz.yaml:1: top level should be a mapping (id: ..., target: ...), got text",
            id="a-whole-file-of-text",
        ),
        pytest.param(
            "id: !root:x:0:0:root/bin/bash zz\n",
            "campaigns/zz.yaml:1: YAML syntax error (column 5): could not determine a "
            "constructor for the tag ...",
            id="tag",
        ),
        pytest.param(
            "id: zz\ntarget: *root:x:0:0\n",
            "campaigns/zz.yaml:2: YAML syntax error (column 9): found undefined alias ...",
            id="alias",
        ),
        pytest.param(
            "id: zz\ntarget:\n\t- root:x:0:0\n",
            "campaigns/zz.yaml:3: YAML syntax error (column 1): found character '\\t' that "
            "cannot start any token",
            id="tab",
        ),
    ],
)
def test_errors_never_echo_the_file(rules: Path, text: str, expected: str) -> None:
    write(rules, "campaigns/zz.yaml", text)
    assert [str(p) for p in problems_of(rules)] == [expected]


# ------------------------------------------- defect 3: what scan/serve refuse, rules check reports


BAD_REFERENCES = [
    pytest.param(
        png_bomb(),
        "100000x100000 pixels by its header, over the 50000000-pixel limit for images; "
        "save the logo smaller (a few hundred pixels across is plenty)",
        id="decompression-bomb",
    ),
    pytest.param(
        png(np.zeros((64, 64, 4), np.uint8)),
        "the image is transparent almost everywhere (under 64 visible pixels); "
        "nothing of the logo is left to match",
        id="transparent",
    ),
    pytest.param(
        png(np.full((200, 200, 3), 255, np.uint8)),
        "only 0 features found in brand 'acme''s reference logo (need 12); "
        "use a larger, more detailed image",
        id="featureless",
    ),
    pytest.param(
        b"\x89PNG\r\n\x1a\n not really a png",
        "cannot decode reference logo (truncated or corrupt PNG (no IHDR header))",
        id="corrupt",
    ),
]


@pytest.mark.parametrize("data, message", BAD_REFERENCES)
def test_rules_check_refuses_what_the_logo_matcher_refuses(
    rules: Path, data: bytes, message: str
) -> None:
    write(rules, "brands/acme/bad.png", data)
    assert [str(p) for p in problems_of(rules)] == [f"brands/acme/bad.png: {message}"]
    with pytest.raises(MediaError) as info:  # the same image, the same words, at start-up
        LogoMatcher.from_brands_dir(rules / "brands")
    assert str(info.value) == f"{rules / 'brands/acme/bad.png'}: {message}"


def test_example_image_bomb_is_reported_at_the_campaign_line(rules: Path) -> None:
    write(rules, "shots/bomb.png", png_bomb())
    write(
        rules,
        "campaigns/zz.yaml",
        "id: zz\ntarget:\n  any: [{concept: {examples: [shots/bomb.png]}}]\n",
    )
    [p] = problems_of(rules)
    assert str(p) == (
        "campaigns/zz.yaml:3: target.any[0].concept.examples[0]: shots/bomb.png: image is "
        "100000x100000 = 10000 MP, over the 50 MP limit"
    )


FACE_ONLY = "id: faces\ntarget:\n  all:\n    - face: {min_count: 1}\n"


@pytest.mark.parametrize("brands", ["missing", "empty"])
def test_face_only_rules_need_no_brands(tmp_path: Path, brands: str) -> None:
    write(tmp_path, "campaigns/faces.yaml", FACE_ONLY)
    if brands == "empty":
        (tmp_path / "brands").mkdir()
    got = load_rules(tmp_path)
    assert [c.id for c in got.campaigns] == ["faces"] and dict(got.brands) == {}
    assert got.brands_dir is None  # so scan/serve build no logo matcher
    assert load_rules(EXAMPLES).brands_dir == EXAMPLES.resolve() / "brands"


def test_one_brand_slug_pattern_for_schema_loader_and_brands() -> None:
    from targeting.rules_schema import Logo
    from vision.brands import BRAND_SLUG, BrandRefs

    pattern = next(m.pattern for m in Logo.model_fields["brand"].metadata if hasattr(m, "pattern"))
    assert pattern == BRAND_SLUG.pattern
    image = np.zeros((8, 8, 3), np.uint8)
    with pytest.raises(ValueError, match="brand must match"):  # `$` alone lets "acme\n" through
        BrandRefs(brand="acme\n", images=(image,), masks=(None,), paths=(Path("x.png"),))


# ------------------------------------------------ defect 10 (rules): numbers are never booleans

# (path to the number, campaign with the path's clause, an integer that is valid there, kind)
NUMBER_FIELDS = [
    ("bid_cpm", {}, 4, "number"),
    ("min_duration_s", {}, 2, "number"),
    ("gap_s", {}, 1, "number"),
    ("target.any[0].concept.threshold", {"concept": {"prompt": "snow"}}, 0, "number"),
    ("target.any[0].logo.min_score", {"logo": {"brand": "acme"}}, 1, "number"),
    ("target.any[0].logo.min_area", {"logo": {"brand": "acme"}}, 0, "number"),
    ("target.any[0].face.min_count", {"face": {}}, 2, "integer"),
    ("target.any[0].face.max_count", {"face": {}}, 3, "integer"),
    ("target.any[0].face.min_area", {"face": {}}, 0, "number"),
    ("target.any[0].face.min_score", {"face": {}}, 1, "number"),
    ("target.any[0].iab.top_k", {"iab": {"ids": ["1"]}}, 5, "integer"),
    ("target.any[0].iab.threshold", {"iab": {"ids": ["1"]}}, 0, "number"),
    ("target.any[0].text.min_score", {"text": {"any": ["acme"]}}, 1, "number"),
    ("exclude.concepts[0].threshold", {"exclude-concept": {"prompt": "crash"}}, 1, "number"),
    ("exclude.logos[0].min_score", {"exclude-logo": {"brand": "rival"}}, 1, "number"),
    ("exclude.logos[0].min_area", {"exclude-logo": {"brand": "rival"}}, 0, "number"),
]


def _with_number(clause: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    doc: dict[str, Any] = {"id": "zz", "target": {"any": [{"logo": {"brand": "acme"}}]}}
    leaf = path.rsplit(".", 1)[-1]
    if "exclude-concept" in clause:
        doc["exclude"] = {"concepts": [{**clause["exclude-concept"], leaf: value}]}
    elif "exclude-logo" in clause:
        doc["exclude"] = {"logos": [{**clause["exclude-logo"], leaf: value}]}
    elif clause:
        ((kind, body),) = clause.items()
        doc["target"] = {"any": [{kind: {**body, leaf: value}}]}
    else:
        doc[leaf] = value
    return doc


@pytest.mark.parametrize("path, clause, ok, kind", NUMBER_FIELDS, ids=[f[0] for f in NUMBER_FIELDS])
def test_every_number_refuses_booleans_and_quoted_numbers(
    rules: Path, path: str, clause: dict[str, Any], ok: int, kind: str
) -> None:
    file = write(rules, "campaigns/zz.yaml", yaml.safe_dump(_with_number(clause, path, True)))
    [p] = problems_of(rules)
    assert (p.field, p.message) == (
        path,
        f"should be a valid {kind}, got true/false (True): write the number itself",
    )
    file.write_text(yaml.safe_dump(_with_number(clause, path, str(ok))), encoding="utf-8")
    [p] = problems_of(rules)
    assert (p.field, p.message) == (
        path,
        f"should be a valid {kind}, got text '{ok}' (write it without quotes)",
    )
    file.write_text(yaml.safe_dump(_with_number(clause, path, ok)), encoding="utf-8")
    assert "zz" in [c.id for c in load_rules(rules).campaigns]  # an integer is a fine float


def test_the_table_above_names_every_number_in_the_schema() -> None:
    """A new numeric field must be strict (and belongs in NUMBER_FIELDS)."""
    from pydantic import BaseModel

    from targeting import rules_schema

    def numbers(model: type[BaseModel]) -> set[str]:
        out = set()
        for name, info in model.model_fields.items():
            metadata = list(info.metadata)
            types = set()
            for arg in typing.get_args(info.annotation) or (info.annotation,):
                if typing.get_origin(arg) is typing.Annotated:  # Score | None
                    arg, *extra = typing.get_args(arg)
                    metadata += [m for e in extra for m in getattr(e, "metadata", [e])]
                types.add(arg)
            if {float, int} & types:
                assert any(getattr(m, "strict", False) for m in metadata), (model, name)
                out.add(name)
        return out

    models = [
        m for m in vars(rules_schema).values() if isinstance(m, type) and issubclass(m, BaseModel)
    ]
    found = {f"{m.__name__}.{n}" for m in models for n in numbers(m)}
    listed = {
        "Campaign.bid_cpm",
        "Campaign.min_duration_s",
        "Campaign.gap_s",
        "Concept.threshold",
        "Logo.min_score",
        "Logo.min_area",
        "Face.min_count",
        "Face.max_count",
        "Face.min_area",
        "Face.min_score",
        "Iab.top_k",
        "Iab.threshold",
        "Text.min_score",
    }
    assert found == listed


# --------------------------------------------------------------- the text clause (issue 9 item 4)


def test_text_clause_and_exclusion_load(rules: Path) -> None:
    (rules / "campaigns" / "tyrehaus-winter-sale.yaml").unlink()  # the example's text campaign
    assert not load_rules(rules).uses_text
    write(
        rules,
        "campaigns/zz.yaml",
        "id: zz\ntarget:\n  any:\n    - text: {any: [acme, 'winter tyres'], min_score: 0.5}\n"
        "exclude: {text: [breaking news]}\n",
    )
    got = load_rules(rules)
    c = got.campaign("zz")
    [clause] = c.target.any
    assert clause.kind == "text" and clause.text is not None
    assert clause.text.any == ("acme", "winter tyres") and c.exclude.text == ("breaking news",)
    assert got.uses_text and load_rules(EXAMPLES).uses_text


@pytest.mark.parametrize(
    "clause, field, message",
    [
        ("{text: {any: []}}", "target.any[0].text.any", "should have at least 1 item"),
        (
            "{text: {any: [acme, '!!!']}}",
            "target.any[0].text.any",
            "phrase 2 has no letters or digits to look for on screen",
        ),
        (
            "{text: {any: [" + "x" * 101 + "]}}",
            "target.any[0].text.any",
            "phrase 1 has 101 characters, more than 100",
        ),
        (
            "{text: {any: [acme], phrases: [acme]}}",
            "target.any[0].text.phrases",
            "unknown key 'phrases' (allowed: any, min_score)",
        ),
        ("{text: acme}", "target.any[0].text", "should be a mapping of keys"),
        (
            "{text: {any: [acme]}, logo: {brand: acme}}",
            "target.any[0]",
            "each target entry needs exactly one of concept, logo, face, iab, text (got logo, text)",
        ),
    ],
)
def test_text_clause_mistakes_are_reported_at_their_line(
    rules: Path, clause: str, field: str, message: str
) -> None:
    write(rules, "campaigns/zz.yaml", f"id: zz\ntarget:\n  any:\n    - {clause}\n")
    [p] = problems_of(rules)
    assert (p.file, p.line, p.field) == ("campaigns/zz.yaml", 4, field)
    assert message in p.message


def test_text_exclusion_mistakes_are_reported(rules: Path) -> None:
    write(
        rules,
        "campaigns/zz.yaml",
        "id: zz\ntarget: {any: [{face: {}}]}\nexclude:\n  text: ['  ']\n",
    )
    [p] = problems_of(rules)
    assert (p.line, p.field) == (4, "exclude.text")
    assert p.message == "phrase 1 has no letters or digits to look for on screen"

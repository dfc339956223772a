"""targeting.yaml_lines: the line of every key and item, duplicates, node budget, field names."""

from __future__ import annotations

import pytest

from targeting.yaml_lines import MAX_YAML_NODES, LineLoader, YamlTooBig, format_field

DOC = """\
# comment
id: a
target:
  any:
    - logo: {brand: acme}

    - face:
        min_count: 2
id: b
"""


def test_lines_of_keys_and_items_and_duplicates() -> None:
    loader = LineLoader(DOC)
    try:
        data, lines, dups = loader.load_with_lines()
    finally:
        loader.dispose()
    assert data["id"] == "b"  # PyYAML keeps the last; the loader reports the repeat
    assert dups == [(("id",), 9, 2)]
    assert lines[()] == 2 and lines[("target", "any", 0)] == 5
    assert lines[("target", "any", 1, "face", "min_count")] == 8


def test_node_budget_counts_expanded_aliases() -> None:
    text = "a: &a [" + ", ".join(["x"] * 200) + "]\nb: [" + ", ".join(["*a"] * 200) + "]\n"
    assert MAX_YAML_NODES < 200 * 200
    loader = LineLoader(text)
    try:
        with pytest.raises(YamlTooBig):
            loader.load_with_lines()
    finally:
        loader.dispose()


@pytest.mark.parametrize(
    "path, text",
    [
        ((), ""),
        (("target",), "target"),
        (("target", "any", 0, "concept"), "target.any[0].concept"),
        (("a", 0, 1, "b"), "a[0][1].b"),
    ],
)
def test_format_field(path: tuple, text: str) -> None:
    assert format_field(path) == text

"""YAML composed with line numbers: where every key and list item of a campaign file starts.

PyYAML's ``safe_load`` throws positions away, so files are *composed* (node tree, which keeps
marks) with a ``SafeLoader`` subclass that records the 1-based line of every mapping key and
sequence item by path. A pydantic error ``loc`` is then looked up in that table
(``line_for``), falling back to the nearest parent that exists (a missing key is reported where
its parent mapping starts). The same walk finds duplicate keys (PyYAML would silently keep the
last one) and counts nodes with aliases expanded, so an alias bomb is refused before anything
expands it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import yaml
import yaml.reader

MAX_YAML_NODES = 20_000
"""Most YAML nodes (aliases expanded) in one campaign file: stops alias bombs before pydantic."""

YamlPath = tuple[str | int, ...]
"""A path into a YAML document: mapping keys (str) and sequence indexes (int)."""


class LineLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also returns where every key and item starts (1-based lines).

    Construction is exactly ``safe_load``'s (same tags, same types); the line table is built by
    walking the composed node tree, which also finds duplicate keys and counts nodes (aliases
    expanded) so that an alias bomb is refused before anything expands it.
    """

    def load_with_lines(self) -> tuple[Any, dict[YamlPath, int], list[tuple[YamlPath, int, int]]]:
        """Return ``(data, lines, duplicates)``; raises ``yaml.YAMLError`` or ``YamlTooBig``.

        ``lines[path]`` is the line of the key (mapping) or item (sequence) at ``path``;
        ``lines[()]`` is the line where the document starts. ``duplicates`` holds
        ``(path, line, first_line)`` for each repeated mapping key.
        """
        node = self.get_single_node()
        if node is None:
            return None, {}, []
        lines: dict[YamlPath, int] = {(): node.start_mark.line + 1}
        dups: list[tuple[YamlPath, int, int]] = []
        budget = [MAX_YAML_NODES]
        self._walk(node, (), lines, dups, budget)
        return self.construct_document(node), lines, dups

    def _walk(
        self,
        node: yaml.Node,
        path: YamlPath,
        lines: dict[YamlPath, int],
        dups: list[tuple[YamlPath, int, int]],
        budget: list[int],
    ) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise YamlTooBig
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = self._key(key_node)
                child = (*path, key)
                line = key_node.start_mark.line + 1
                if child in lines and key_node.tag != "tag:yaml.org,2002:merge":
                    dups.append((child, line, lines[child]))
                else:
                    lines[child] = line
                self._walk(value_node, child, lines, dups, budget)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                child = (*path, i)
                lines.setdefault(child, item.start_mark.line + 1)
                self._walk(item, child, lines, dups, budget)

    def _key(self, key_node: yaml.Node) -> str | int:
        if isinstance(key_node, yaml.ScalarNode):
            value = self.construct_object(key_node)
            if isinstance(value, str | int) and not isinstance(value, bool):
                return value
            return str(value)
        return f"<{key_node.id} key>"


class YamlTooBig(Exception):
    """A document with more nodes than ``MAX_YAML_NODES`` (aliases expanded)."""


def format_field(path: YamlPath) -> str:
    """``('target', 'any', 0, 'concept')`` -> ``'target.any[0].concept'``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def line_for(lines: Mapping[YamlPath, int], path: YamlPath) -> int | None:
    """Line of ``path``, or of its nearest parent that exists in the file."""
    for n in range(len(path), -1, -1):
        if path[:n] in lines:
            return lines[path[:n]]
    return None


_SAFE_QUOTED = re.compile(r"'(?:<[a-z ]+>|\\?.|\\x[0-9a-f]{2}|\\u[0-9a-f]{4})'")
"""Quoted parts of a PyYAML problem that may stay: a token name (``'<stream end>'``) or one
character (``'\\t'``). Anything longer (a tag, an anchor, a scalar) is text from the file."""
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _without_file_text(problem: str) -> str:
    """``problem`` with every quoted piece of the file's text replaced by ``...``."""

    def keep(m: re.Match[str]) -> str:
        return m.group(0) if _SAFE_QUOTED.fullmatch(m.group(0)) else "..."

    return _QUOTED.sub(keep, problem)


def describe_yaml_error(exc: yaml.MarkedYAMLError) -> tuple[int | None, str]:
    """``(line, message)`` for a YAML syntax error, naming line, column and the problem.

    Never PyYAML's own ``str(exc)``: it quotes the offending lines of the file, and a rules
    error must not echo file contents (the file may not be what its name says). Quoted pieces
    of the problem longer than one character (tags, anchors) are left out for the same reason.
    """
    mark = exc.problem_mark or exc.context_mark
    line: int | None = mark.line + 1 if mark else None
    what = _without_file_text(exc.problem or exc.context or "cannot parse")
    started = exc.context_mark.line + 1 if exc.context_mark is not None else line
    if exc.context and exc.problem and started != line:
        what += f" ({_without_file_text(exc.context)} started on line {started})"
    column = f" (column {mark.column + 1})" if mark else ""
    return line, f"YAML syntax error{column}: {what}"


def describe_reader_error(exc: yaml.reader.ReaderError, text: str) -> tuple[int, str]:
    """``(line, message)`` for a character YAML refuses (NUL, other control characters).

    The message names the character by its code point, never the text around it.
    """
    pos = exc.position if isinstance(exc.position, int) else 0
    line = text[:pos].count("\n") + 1
    ch = exc.character
    if isinstance(ch, str) and len(ch) == 1:
        code = ord(ch)
    elif isinstance(ch, int):
        code = ch
    else:
        code = -1
    if code == 0:
        what = "a NUL byte"
    elif code > 0:
        what = f"control character U+{code:04X}"
    else:
        what = "a character YAML does not allow"
    return line, f"not valid text: {what}; save the file as plain UTF-8 text"

"""Mutations of real files for fuzzing: what a damaged upload, a truncated transfer or a hostile
client produces is a real file with a few bytes changed, cut or spliced, not random noise (which
every parser refuses at its first byte). Hypothesis shrinks a failure to the fewest edits."""

from __future__ import annotations

from hypothesis import strategies as st


@st.composite
def mutated(draw: st.DrawFn, seed: bytes, max_edits: int = 6) -> bytes:
    """``seed`` with 1..``max_edits`` edits: byte flips, overwrites with boundary values,
    inserted or deleted runs, a truncation, a chunk duplicated elsewhere."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, max_edits))):
        n = len(data)
        op = draw(st.sampled_from(("flip", "set", "insert", "delete", "truncate", "splice")))
        pos = draw(st.integers(0, max(0, n - 1)))
        if op == "flip" and n:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and n:
            data[pos] = draw(st.sampled_from((0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF)))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif op == "delete" and n:
            del data[pos : pos + draw(st.integers(1, 64))]
        elif op == "truncate":
            del data[pos:]
        elif op == "splice" and n:
            start = draw(st.integers(0, max(0, n - 1)))
            data[pos:pos] = data[start : start + draw(st.integers(1, 256))]
    return bytes(data)


@st.composite
def mutated_text(draw: st.DrawFn, seed: str, max_edits: int = 4) -> str:
    """``seed`` with line-level and character-level edits: a line deleted, duplicated or
    moved, an indentation changed, a character replaced by YAML/JSON punctuation, a control
    character or a non-ASCII one."""
    lines = seed.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, max_edits))):
        if not lines:
            lines = ["\n"]
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.sampled_from(("delete", "duplicate", "indent", "dedent", "char", "move")))
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "indent":
            lines[i] = "  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i].lstrip(" ")
        elif op == "move":
            lines.insert(draw(st.integers(0, len(lines) - 1)), lines.pop(i))
        else:
            line = lines[i]
            j = draw(st.integers(0, max(0, len(line) - 1)))
            c = draw(
                st.sampled_from(
                    list(":-[]{},#&*!|>'\"%@`\t\x00\x1b") + ["é", "\u202e", "1e309", "-1", "null"]
                )
            )
            lines[i] = line[:j] + c + line[j + 1 :]
    return "".join(lines)

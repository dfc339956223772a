"""bandit over the packages: every finding is fixed or justified in bandit_justified.toml, and
every justification still matches a finding (the file cannot rot)."""

from __future__ import annotations

import fnmatch
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import REPO

JUSTIFIED = Path(__file__).with_name("bandit_justified.toml")


def _findings() -> list[dict]:
    if subprocess.run(
        [sys.executable, "-m", "bandit", "--version"], capture_output=True
    ).returncode:
        pytest.fail("bandit is not installed: it is a dev dependency (make install)")
    out = subprocess.run(
        [sys.executable, "-m", "bandit", "-q", "-r", "vision", "targeting", "serving",
         "-x", "serving/_proto", "-f", "json"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert out.stdout, out.stderr
    report = json.loads(out.stdout)
    assert not report["errors"], report["errors"]
    return report["results"]


def test_every_bandit_finding_is_justified_and_every_justification_used() -> None:
    entries = tomllib.loads(JUSTIFIED.read_text(encoding="utf-8"))["finding"]
    assert all(e["why"].strip() for e in entries)
    used = [False] * len(entries)
    unjustified = []
    for f in _findings():
        path = str(Path(f["filename"]).as_posix())
        hits = [
            i for i, e in enumerate(entries)
            if e["test"] == f["test_id"] and fnmatch.fnmatch(path, e["file"])
        ]  # fmt: skip
        if not hits:
            unjustified.append(f"{path}:{f['line_number']} {f['test_id']} {f['issue_text']}")
        for i in hits:
            used[i] = True
    assert unjustified == []
    assert [e for e, u in zip(entries, used, strict=True) if not u] == []


def test_no_high_severity_finding() -> None:
    assert [f for f in _findings() if f["issue_severity"] == "HIGH"] == []

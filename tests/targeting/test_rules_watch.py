"""targeting.rules_watch: last good rules survive a bad edit; good edits are picked up live."""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

import pytest

from targeting.rules_loader import RuleSet
from targeting.rules_watch import ReloadResult, RulesHolder
from tests.targeting.images import png_bomb
from vision.errors import RulesError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "rules"
WAIT_S = 15.0
"""Upper bound for the live watcher to notice a change (normally well under a second)."""

NEW_CAMPAIGN = "id: new-one\ntarget:\n  any:\n    - logo: {brand: rival}\n"
BAD_CAMPAIGN = "id: new-one\ntarget:\n  any:\n    - logo: {brand: rival, min_score: 7}\n"


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    root = tmp_path / "rules"
    shutil.copytree(EXAMPLES, root)
    return root


def wait_for(predicate, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def ids(rules: RuleSet) -> list[str]:
    return [c.id for c in rules.campaigns]


def test_bad_rules_at_start_up_raise(rules: Path) -> None:
    (rules / "campaigns" / "new.yaml").write_text(BAD_CAMPAIGN, encoding="utf-8")
    with pytest.raises(
        RulesError, match=r"campaigns/new\.yaml:4: target\.any\[0\]\.logo\.min_score"
    ):
        RulesHolder(rules)


def test_reload_keeps_last_good_and_picks_up_good_edit(
    rules: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[str] = []
    holder = RulesHolder(rules, on_change=lambda r: seen.append(r.version))
    first = holder.current
    assert seen == [first.version]  # the first load goes through on_change too

    assert holder.reload() == ReloadResult(
        changed=False, ok=True, problems=(), version=first.version
    )

    new_file = rules / "campaigns" / "new.yaml"
    new_file.write_text(BAD_CAMPAIGN, encoding="utf-8")
    with caplog.at_level(logging.ERROR, logger="targeting.rules_watch"):
        bad = holder.reload()
    assert (bad.ok, bad.changed, bad.version) == (False, False, first.version)
    assert [str(p) for p in bad.problems] == [
        "campaigns/new.yaml:4: target.any[0].logo.min_score: "
        "should be less than or equal to 1, got 7"
    ]
    assert holder.current is first
    assert holder.last_result == bad
    logged = [r.getMessage() for r in caplog.records]
    assert "still serving version " + first.version[:12] in logged[0]
    assert logged[1].strip() == str(bad.problems[0])
    assert seen == [first.version]

    new_file.write_text(NEW_CAMPAIGN, encoding="utf-8")
    good = holder.reload()
    assert (good.ok, good.changed) == (True, True)
    assert good.version == holder.current.version != first.version
    assert "new-one" in ids(holder.current) and "new-one" not in ids(first)
    assert seen == [first.version, good.version]


def test_on_reload_hears_every_change_and_every_rejection_but_not_no_ops(rules: Path) -> None:
    heard: list[ReloadResult] = []
    holder = RulesHolder(rules, on_reload=heard.append)
    assert heard == []  # the first load is not a reload
    holder.reload()  # nothing changed: not reported
    new_file = rules / "campaigns" / "new.yaml"
    new_file.write_text(BAD_CAMPAIGN, encoding="utf-8")
    bad = holder.reload()
    new_file.write_text(NEW_CAMPAIGN, encoding="utf-8")
    good = holder.reload()
    assert heard == [bad, good]
    assert [(r.ok, r.changed) for r in heard] == [(False, False), (True, True)]


def test_a_nul_byte_on_reload_is_a_rejected_reload(rules: Path) -> None:
    heard: list[ReloadResult] = []
    holder = RulesHolder(rules, on_reload=heard.append)
    good = holder.current
    (rules / "campaigns" / "new.yaml").write_bytes(
        NEW_CAMPAIGN.encode().replace(b"\n", b"\x00\n", 1)
    )
    result = holder.reload()
    assert not result.ok and not result.changed and result.version == good.version
    assert [str(p) for p in result.problems] == [
        "campaigns/new.yaml:1: not valid text: a NUL byte; save the file as plain UTF-8 text"
    ]
    assert heard == [result] and holder.current is good


def test_a_brand_image_bomb_on_reload_is_a_rejected_reload(rules: Path) -> None:
    holder = RulesHolder(rules)
    good = holder.current
    (rules / "brands" / "acme" / "huge.png").write_bytes(png_bomb())
    result = holder.reload()
    assert not result.ok and holder.current is good
    assert [str(p) for p in result.problems] == [
        "brands/acme/huge.png: 100000x100000 pixels by its header, over the 50000000-pixel "
        "limit for images; save the logo smaller (a few hundred pixels across is plenty)"
    ]


def test_on_change_error_vetoes_the_swap(rules: Path) -> None:
    calls = []

    def hook(r: RuleSet) -> None:
        calls.append(r.version)
        if len(calls) > 1:
            raise ValueError("example image failed to embed")

    holder = RulesHolder(rules, on_change=hook)
    first = holder.current
    (rules / "campaigns" / "new.yaml").write_text(NEW_CAMPAIGN, encoding="utf-8")
    result = holder.reload()
    assert (result.ok, result.changed, result.version) == (False, False, first.version)
    assert (
        "new rules could not be applied: example image failed to embed"
        in result.problems[0].message
    )
    assert holder.current is first


def test_readers_always_see_a_whole_ruleset_during_reloads(rules: Path) -> None:
    holder = RulesHolder(rules)
    versions = {holder.current.version}
    whole = (len(holder.current.campaigns), len(holder.current.campaigns) + 1)
    stop = threading.Event()
    bad_reads: list[object] = []

    def reader() -> None:
        while not stop.is_set():
            r = holder.current
            if not isinstance(r, RuleSet) or len(r.campaigns) not in whole:
                bad_reads.append(r)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    new_file = rules / "campaigns" / "new.yaml"
    for i in range(6):
        if i % 2:
            new_file.unlink()
        else:
            new_file.write_text(NEW_CAMPAIGN, encoding="utf-8")
        versions.add(holder.reload().version)
    stop.set()
    for t in threads:
        t.join(5)
    assert not bad_reads
    assert len(versions) == 2  # toggling the file back gives back the same content version


def test_live_watch_keeps_good_on_bad_edit_then_picks_up_fix(rules: Path) -> None:
    changed = threading.Event()
    holder = RulesHolder(rules, on_change=lambda r: changed.set())
    changed.clear()
    first = holder.current
    watcher = holder.start_watching(debounce_ms=100)
    try:
        assert watcher.ready.wait(WAIT_S), "watcher did not start"
        new_file = rules / "campaigns" / "new.yaml"
        new_file.write_text(BAD_CAMPAIGN, encoding="utf-8")
        assert wait_for(lambda: not holder.last_result.ok), "bad edit not noticed"
        assert holder.current is first
        assert holder.last_result.problems[0].file == "campaigns/new.yaml"

        new_file.write_text(NEW_CAMPAIGN, encoding="utf-8")
        assert changed.wait(WAIT_S), "good edit not picked up"
        assert wait_for(lambda: "new-one" in ids(holder.current))
        assert holder.last_result.ok
    finally:
        watcher.stop()
    assert not watcher.thread.is_alive()


def test_live_watch_sees_brand_image_changes(rules: Path) -> None:
    holder = RulesHolder(rules)
    before = holder.current.version
    watcher = holder.start_watching(debounce_ms=100)
    try:
        assert watcher.ready.wait(WAIT_S)
        shutil.copy(
            rules / "brands" / "acme" / "logo2.png", rules / "brands" / "acme" / "logo2-dark.png"
        )
        assert wait_for(lambda: holder.current.version != before), "new logo not picked up"
        assert [p.name for p in holder.current.brands["acme"]] == ["logo2-dark.png", "logo2.png"]
    finally:
        watcher.stop()

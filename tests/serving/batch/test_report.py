"""``onscreen report``: results -> one static page, checked as text and in a real browser.

The browser tests drive Debian's ``chromium`` with playwright (its own browser download is not
used): they load the page from a file, with every network access of the page refused by its
CSP, and assert what a person would see. They are skipped only when chromium or playwright is
absent, with the reason saying what to install. Screenshots go to the test's tmp dir and to
``out/test_report/`` (gitignored) for a person to look at.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from serving.batch import report as report_mod
from serving.batch.report import MAX_THUMBNAILS_PER_MEDIA, MAX_TIMELINE_ROWS, build_report
from serving.batch.report_assets import JS_CSP_HASH
from serving.batch.results_reader import Keyframe, ResultsReader, blocked_segments, read_results
from serving.batch.thumbnails import (
    THUMBNAIL_JPEG_QUALITY,
    THUMBNAIL_WIDTH_PX,
    media_duration_s,
    thumbnails_at,
)
from serving.commands import report as report_cmd
from tests.conftest import REPO
from tests.serving.batch.report_fixture import (
    EXPECTED_BLOCKED,
    SCENE_KEYFRAMES,
    XSS_MEDIA,
    XSS_PAYLOADS,
    write_contract_results,
)
from tests.vision.videos import SCENE_DURATION_S, standard_scene_video
from vision.errors import MediaError, OnscreenError

CHROMIUM = os.environ.get("ONSCREEN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SHOTS = REPO / "out" / "test_report"
"""Screenshots kept for people (CI artifacts); gitignored."""


@pytest.fixture(scope="module")
def media_root(tmp_path_factory, real_images) -> Path:
    root = tmp_path_factory.mktemp("media")
    shutil.copy(standard_scene_video(tmp_path_factory, real_images), root / "scene.mp4")
    shutil.copy(real_images["bus"], root / "pin.jpg")
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    return root


@pytest.fixture
def results(tmp_path) -> tuple[Path, list[dict]]:
    path = tmp_path / "results.jsonl"
    return path, write_contract_results(path)


# ------------------------------------------------------------------------------ thumbnails


def test_thumbnails_are_the_frames_at_the_requested_times(media_root) -> None:
    import cv2

    from vision.video_decode import iter_video_frames

    def jpeg(rgb: np.ndarray) -> bytes:  # the frame as the report encodes it
        small = cv2.resize(rgb, (THUMBNAIL_WIDTH_PX, 180), interpolation=cv2.INTER_AREA)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, THUMBNAIL_JPEG_QUALITY])[
            1
        ].tobytes()

    times = [0.0, 3.0, 7.3, 9.5]
    thumbs = thumbnails_at(media_root / "scene.mp4", [9.5, 0.0, 7.3, 3.0])
    assert [t.t for t in thumbs] == times
    assert [t.frame_t for t in thumbs] == pytest.approx(times, abs=1e-6)
    full = {round(t, 3): rgb for t, rgb in iter_video_frames(media_root / "scene.mp4")}
    for th in thumbs:
        assert (th.width, th.height) == (THUMBNAIL_WIDTH_PX, 180)
        assert th.data_uri == "data:image/jpeg;base64," + base64.b64encode(th.jpeg).decode()
        # exactly the frame a full decode gives at that time (seeking lands on it), not a
        # neighbour (every frame differs: the scenes zoom and carry noise)
        assert th.jpeg == jpeg(full[th.t])
        assert th.jpeg != jpeg(full[round(th.t + 0.1, 3)] if th.t < 9.5 else full[9.4])


def test_thumbnails_past_the_end_give_none_and_stills_give_one_per_time(media_root) -> None:
    assert [t.t for t in thumbnails_at(media_root / "scene.mp4", [9.9, 30.0])] == [9.9]
    still = thumbnails_at(media_root / "pin.jpg", [0.0, 1.0])
    assert [(t.t, t.frame_t) for t in still] == [(0.0, 0.0), (1.0, 0.0)]
    assert still[0].width == THUMBNAIL_WIDTH_PX and still[0].height > THUMBNAIL_WIDTH_PX
    assert media_duration_s(media_root / "pin.jpg") == 0.0
    assert media_duration_s(media_root / "scene.mp4") == pytest.approx(SCENE_DURATION_S, abs=0.2)


@pytest.mark.parametrize(
    "name, message",
    [
        ("missing.mp4", "{p}: no such file"),
        ("broken.mp4", "{p}: not a video, or a corrupt or truncated one"),
        (".", "{p}: not a file"),
    ],
)
def test_thumbnails_of_bad_files_raise_media_error_naming_them(media_root, name, message) -> None:
    p = media_root / name
    with pytest.raises(MediaError) as exc:
        thumbnails_at(p, [0.0])
    assert str(exc.value).startswith(message.format(p=p))


# ------------------------------------------------------------------------------- reading


def test_read_results_groups_lines_per_media_and_counts_unknown_shapes(results) -> None:
    path, lines = results
    media = read_results(path)
    assert [m.media for m in media] == ["broken.mp4", "scene.mp4", "pin.jpg", XSS_MEDIA]
    broken, scene, pin, xss = media
    assert broken.errors and not broken.placements
    assert [p["campaign"] for p in scene.placements] == [
        "acme-logo",
        "presenter",
        "presenter",
        "beer-brand",
    ]
    assert tuple(k.t for k in scene.keyframes) == SCENE_KEYFRAMES
    assert len(pin.placements) == len(pin.keyframes) == 1
    assert xss.placements[0]["media"] == XSS_MEDIA
    reader = ResultsReader(path)
    list(reader.media())
    assert reader.ignored_lines == 1


def test_blocked_segments_are_runs_of_blocked_keyframes(results) -> None:
    path, _ = results
    scene = read_results(path)[1]
    segs = blocked_segments(scene.keyframes, SCENE_DURATION_S)
    assert {s.campaign: (s.start_s, s.end_s) for s in segs} == EXPECTED_BLOCKED
    beer = next(s for s in segs if s.campaign == "beer-brand")
    assert (beer.keyframes, beer.targeted) == (5, 5)
    assert [(r["category"], r["score"]) for r in beer.blocked_by] == [("alcohol", 0.71)]
    # two runs for one campaign stay two segments; the last one ends at the media's end
    kfs = [
        Keyframe(t, {}, ({"campaign": "c", "blocked": b, "target": False, "blocked_by": []},))
        for t, b in [(0.0, True), (1.0, False), (2.0, True), (3.0, True)]
    ]
    assert [(s.start_s, s.end_s, s.keyframes) for s in blocked_segments(kfs, 4.5)] == [
        (0.0, 1.0, 1),
        (2.0, 4.5, 2),
    ]


VALID = '{"media": "a.mp4", "error": "x"}\n'


@pytest.mark.parametrize(
    "text, message",
    [
        ("not json\n", "{p}:1: not a JSON line (Expecting value: line 1 column 1 (char 0))"),
        (VALID + '{"media": "a.mp4", "campaign": "c", "start_s"', "{p}:2: not a JSON line"),
        ("[1, 2]\n", "{p}:1: expected a JSON object, got list"),
        ('{"campaign": "c"}\n', "{p}:1: 'media' must be a non-empty string"),
        ('{"media": 7, "error": "x"}\n', "{p}:1: 'media' must be a non-empty string"),
        (
            '{"media": "a", "campaign": 3, "start_s": 0, "end_s": 1, "score": 1}\n',
            "{p}:1: 'campaign' must be a string, got 3",
        ),
        (
            '{"media": "a", "campaign": "c", "start_s": "6", "end_s": 7, "score": 1}\n',
            "{p}:1: 'start_s' must be a finite number, got '6'",
        ),
        (
            '{"media": "a", "campaign": "c", "start_s": 5, "end_s": 4, "score": 1}\n',
            "{p}:1: segment 5..4 s is not 0 <= start_s <= end_s",
        ),
        (
            '{"media": "a", "campaign": "c", "start_s": 0, "end_s": 1, "score": NaN}\n',
            "{p}:1: 'score' must be a finite number, got nan",
        ),
        (
            '{"media": "a", "campaign": "c", "start_s": 0, "end_s": 1, "score": 1, '
            '"reasons": {"kind": "logo"}}\n',
            "{p}:1: 'reasons' must be a list of objects",
        ),
        ('{"media": "a", "t": -1, "facts": {}}\n', "{p}:1: 't' must be >= 0, got -1"),
        ('{"media": "a", "t": 1, "facts": []}\n', "{p}:1: 'facts' must be an object"),
        (
            '{"media": "a", "t": 1, "facts": {}, "decisions": [{"placed": true}]}\n',
            "{p}:1: every decision needs a string 'campaign'",
        ),
        ("\n\n", "{p}: no result lines (is this `onscreen scan` output?)"),
    ],
)
def test_malformed_results_name_file_and_line(tmp_path, text, message) -> None:
    p = tmp_path / "r.jsonl"
    p.write_text(text)
    with pytest.raises(OnscreenError) as exc:
        build_report(p)
    assert str(exc.value).startswith(message.format(p=p))


def test_missing_or_directory_results_are_named(tmp_path) -> None:
    with pytest.raises(OnscreenError, match=re.escape(f"{tmp_path / 'no.jsonl'}: no such file")):
        build_report(tmp_path / "no.jsonl")
    with pytest.raises(OnscreenError, match="is a directory, not a results file"):
        build_report(tmp_path)


# --------------------------------------------------------------------------------- the page


def test_page_is_escaped_self_contained_and_allows_only_its_own_script(results, media_root) -> None:
    path, _ = results
    page, stats = build_report(path, media_root=media_root, title="Q4 <b>report</b>")
    for payload in XSS_PAYLOADS:
        assert payload not in page
    assert "<title>Q4 &lt;b&gt;report&lt;/b&gt;</title>" in page
    # a campaign never placed says why (the decisions' why_not), escaped like the rest
    assert "<b>ghost</b>: no &#x27;ghost&#x27; logo on screen" in page
    assert page.count("<script") == 1
    (script,) = re.findall(r"<script>(.*?)</script>", page, re.S)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"sha256-{digest}" == JS_CSP_HASH and f"script-src '{JS_CSP_HASH}'" in page
    assert "default-src 'none'" in page
    # nothing is loaded from anywhere: every src/href is inline data or an anchor
    refs = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert refs and all(r.startswith(("data:image/jpeg;base64,", "#")) for r in refs)
    assert "@import" not in page and "url(" not in page
    assert (stats.media, stats.failed, stats.placements, stats.blocked) == (4, 1, 6, 2)
    assert stats.explain and stats.ignored_lines == 1
    # scene.mp4: MAX_THUMBNAILS_PER_MEDIA of its keyframes, pin.jpg its one frame
    assert stats.thumbnails == min(len(SCENE_KEYFRAMES), MAX_THUMBNAILS_PER_MEDIA) + 1
    assert page.count("data-thumb") == stats.thumbnails


def test_without_explain_the_page_says_what_it_cannot_show(tmp_path, media_root) -> None:
    path = tmp_path / "plain.jsonl"
    write_contract_results(path, explain=False)
    page, stats = build_report(path, media_root=media_root)
    assert not stats.explain and stats.blocked == 0
    assert "written without <code>--explain</code>" in page
    assert page.count("data-no-explain") == 1 + 3  # the page, and each media scanned
    # frames of the reasons that have boxes: acme at 5.0 and 6.0, faces at 0.5 and 3.0 s
    assert stats.thumbnails == 4 + 1


def test_no_media_root_no_thumbnails_and_ids_cannot_escape_the_root(tmp_path, media_root) -> None:
    path = tmp_path / "r.jsonl"
    write_contract_results(path)
    page, stats = build_report(path)
    assert stats.thumbnails == 0 and "no --media-root given" in page
    outside = tmp_path / "outside.jpg"
    shutil.copy(media_root / "pin.jpg", outside)
    sneaky = tmp_path / "s.jsonl"
    root = tmp_path / "root"
    root.mkdir()
    sneaky.write_text(
        json.dumps(
            {
                "media": "../outside.jpg",
                "campaign": "c",
                "start_s": 0,
                "end_s": 0,
                "score": 1,
                "reasons": [
                    {"kind": "face", "label": "f", "score": 1, "t": 0, "box": [0, 0, 1, 1]}
                ],
            }
        )
        + "\n"
    )
    page, stats = build_report(sneaky, media_root=root)
    assert stats.thumbnails == 0
    assert "the media id does not name a file inside --media-root" in page


def test_thumbnail_budget_and_row_caps_bound_the_page(tmp_path, media_root, monkeypatch) -> None:
    path = tmp_path / "r.jsonl"
    write_contract_results(path)
    page, _ = build_report(path)
    # a tick per keyframe (scene.mp4: 21, the hostile one: 1; a still image has no timeline)
    assert page.count('class="kfmark') == len(SCENE_KEYFRAMES) + 1
    monkeypatch.setattr(report_mod, "MAX_KEYFRAME_MARKS", 5)
    monkeypatch.setattr(report_mod, "MAX_THUMBNAILS_PER_MEDIA", 3)
    page, _ = build_report(path)
    assert page.count('class="kfmark') == 5 + 1  # the 3 thumbnailed ones are among the 5
    assert page.count('class="kfmark shown"') == 3 + 1
    monkeypatch.setattr(report_mod, "MAX_THUMBNAIL_BYTES_TOTAL", 20_000)
    page, stats = build_report(path, media_root=media_root)
    assert 0 < stats.thumbnails < 3 and stats.thumbnail_bytes <= 20_000
    assert "Thumbnails stop after" in page
    many = tmp_path / "many.jsonl"
    n = MAX_TIMELINE_ROWS + 5
    many.write_text(
        "".join(
            json.dumps(
                {
                    "media": "m.mp4",
                    "campaign": f"c{i:02d}",
                    "start_s": i,
                    "end_s": i + 1,
                    "score": 1,
                }
            )
            + "\n"
            for i in range(n)
        )
    )
    page, stats = build_report(many)
    assert stats.placements == n
    assert page.count('<div class=row data-campaign="') == MAX_TIMELINE_ROWS
    assert "5 more campaign(s) not drawn" in page
    assert page.count("data-row>") == n  # the table lists every placement


def test_media_past_the_detailed_cap_get_one_row_of_counts(results, monkeypatch) -> None:
    path, _ = results
    monkeypatch.setattr(report_mod, "MAX_MEDIA_DETAILED", 2)
    page, stats = build_report(path)
    assert (stats.media, stats.placements, stats.blocked) == (4, 6, 2)  # all counted
    assert page.count("<section class=media ") == 2
    assert page.count("data-compact>") == 2 and "2 more media" in page
    assert "<span id=shown>2</span> of 4 media shown" in page
    assert XSS_MEDIA not in page


def test_progress_lines_report_counts(results) -> None:
    path, _ = results
    seen: list[str] = []
    build_report(path, progress=seen.append)
    assert seen[-1] == "report: 4 media, 6 placements, 2 blocked segments, 0 thumbnails"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="onscreen")
    report_cmd.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_command_writes_the_page_and_refuses_a_media_root_that_is_no_directory(
    results, media_root, tmp_path, capsys
) -> None:
    path, _ = results
    out = tmp_path / "sub" / "report.html"
    args = _parse(["report", str(path), "--out", str(out), "--media-root", str(media_root)])
    assert args.func(args) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert not out.with_name("report.html.tmp").exists()
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(
        f"report: 4 media (1 with errors), 6 placements, 2 blocked segments -> {out} ("
    )
    args = _parse(["report", str(path), "--out", str(out), "--media-root", str(path)])
    with pytest.raises(OnscreenError, match=re.escape(f"--media-root {path}: not a directory")):
        args.func(args)


# ------------------------------------------------------------------------------ the browser


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright not installed (pip install playwright)"
    )
    if not Path(CHROMIUM).exists():
        pytest.skip(
            f"no chromium at {CHROMIUM} (apt-get install chromium, or set ONSCREEN_CHROMIUM)"
        )
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def _open(browser, html_path: Path):
    """A page with the report loaded; ``problems`` collects console errors and page errors."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page.on(
        "console",
        lambda m: (
            problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "warning")
            else None
        ),
    )
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url}"))
    page.goto(html_path.as_uri())
    page.wait_for_load_state("load")
    return page, problems


def _shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    SHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, SHOTS / path.name)
    print(f"screenshot: {path} (copy: {SHOTS / path.name})")
    return path


def test_report_in_a_real_browser(browser, results, media_root, tmp_path) -> None:
    path, lines = results
    out = tmp_path / "report.html"
    args = _parse(
        ["report", str(path), "--out", str(out), "--media-root", str(media_root), "--quiet"]
    )
    assert args.func(args) == 0
    page, problems = _open(browser, out)
    try:
        n_placements = sum("campaign" in x for x in lines)
        assert page.locator("[data-placement]").count() == n_placements == 6
        assert page.locator("[data-row]").count() == n_placements
        assert page.locator("[data-blocked]").count() == len(EXPECTED_BLOCKED)
        blocked_rows = page.locator("[data-blocked-row]").all_inner_texts()
        assert len(blocked_rows) == 2
        assert any("beer-brand" in r and "alcohol" in r for r in blocked_rows)
        assert any("presenter" in r and "violence" in r for r in blocked_rows)
        assert page.locator("[data-error]").count() == 1
        # hostile strings are shown as text, and none of them ran
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert XSS_MEDIA in page.locator("section.media h2").all_inner_texts()
        # segments are drawn to scale: acme-logo 5.0-7.3 s of a 10 s video
        seg = page.locator('[data-campaign="acme-logo"] [data-placement]').bounding_box()
        track = page.locator('[data-campaign="acme-logo"] .track').bounding_box()
        assert (seg["x"] - track["x"]) / track["width"] == pytest.approx(0.5, abs=0.01)
        assert seg["width"] / track["width"] == pytest.approx(0.23, abs=0.01)
        # thumbnails decoded, with boxes over them
        thumbs = page.locator("img[data-thumb]")
        assert thumbs.count() == min(len(SCENE_KEYFRAMES), MAX_THUMBNAILS_PER_MEDIA) + 1
        assert page.evaluate(
            "[...document.querySelectorAll('img[data-thumb]')].every(i => i.complete && i.naturalWidth > 0)"
        )
        for kind in ("face", "logo", "text", "safety"):
            assert page.locator(f"[data-box={kind}]").count() > 0, kind
        # hover shows score, rank, bid and reasons; a click pins them beside the timeline
        page.locator('[data-campaign="acme-logo"] [data-placement]').hover()
        tip = page.locator("#tip")
        assert tip.is_visible()
        text = tip.inner_text()
        assert (
            "score 0.93" in text and "rank 1" in text and "bid CPM 3.0" in text and "acme" in text
        )
        page.locator('[data-campaign="beer-brand"] [data-blocked]').click()
        pinned = page.locator("section.media .pinned:visible")
        assert "alcohol" in pinned.inner_text()
        page.mouse.move(0, 0)
        assert not tip.is_visible()
        _shot(page, tmp_path, "report-fixture")
        # the filter hides media that do not match
        page.fill("#filter", "pin.jpg")
        assert page.locator("section.media:visible").count() == 1
        assert page.inner_text("#shown") == "1"
        assert problems == []
    finally:
        page.close()


@pytest.mark.slow
def test_report_of_a_real_explain_scan_in_a_real_browser(browser, tmp_path) -> None:
    """A real `onscreen scan --explain` (real video from photos, the acme logo pasted 6-12 s,
    real detectors) -> report -> browser: what the scan wrote is what the page shows."""
    from examples.build_media import OVERLAYS, RULES, SCENES, build_video
    from serving.commands.cli import main

    rules = tmp_path / "rules"
    (rules / "campaigns").mkdir(parents=True)
    (rules / "campaigns" / "acme.yaml").write_text(
        "id: acme-logo\nbid_cpm: 3\ntarget:\n  any:\n    - logo: {brand: acme}\n"
    )
    (rules / "campaigns" / "presenter.yaml").write_text(
        "id: presenter-no-acme\ntarget:\n  any:\n    - face: {min_count: 1, min_area: 0.01}\n"
        "exclude:\n  logos:\n    - brand: acme\n"
    )
    shutil.copytree(RULES / "brands" / "acme", rules / "brands" / "acme")
    media = tmp_path / "media"
    media.mkdir()
    scenes = SCENES[:3]  # grace hopper, bus, astronaut: 13 s, acme on screen 6-12 s
    build_video(media / "demo.mp4", scenes, tuple(o for o in OVERLAYS if o.brand == "acme"))
    results = tmp_path / "results.jsonl"
    code = main(
        ["scan", str(media), "--rules", str(rules), "--out", str(results), "--explain", "--quiet"]
    )
    assert code == 0
    lines = [json.loads(x) for x in results.read_text().splitlines()]
    placements = [x for x in lines if "campaign" in x]
    assert any(p["campaign"] == "acme-logo" for p in placements)
    out = tmp_path / "report.html"
    args = _parse(
        ["report", str(results), "--out", str(out), "--media-root", str(media), "--quiet"]
    )
    assert args.func(args) == 0
    page, problems = _open(browser, out)
    try:
        assert page.locator("[data-placement]").count() == len(placements)
        blocked = page.locator("[data-blocked-row]").all_inner_texts()
        assert blocked and all("presenter-no-acme" in r and "logo:acme" in r for r in blocked)
        assert page.locator("[data-box=logo]").count() > 0
        assert page.locator("img[data-thumb]").count() == MAX_THUMBNAILS_PER_MEDIA
        _shot(page, tmp_path, "report-real-scan")
        assert problems == []
    finally:
        page.close()

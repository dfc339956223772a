"""The demo, end to end, with the real default models (lite semantics, PP-OCR, the NudeNet
detector, the logo matcher; no random weights anywhere): every example campaign places where
the built media's truth says it should, and nowhere a benign scene is blocked by mistake."""

from __future__ import annotations

import json

import pytest

from serving.commands.cli import main

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> dict[tuple[str, str], list[tuple[float, float]]]:
    from examples.build_media import RULES, build_pin, build_video

    media = tmp_path_factory.mktemp("demo")
    build_video(media / "demo.mp4")
    build_pin(media / "pin-coffee.jpg")
    out = media / "placements.jsonl"
    assert main(["scan", str(media), "--rules", str(RULES), "--out", str(out), "--quiet"]) == 0
    got: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for line in out.read_text().splitlines():
        p = json.loads(line)
        got.setdefault((p["media"], p["campaign"]), []).append((p["start_s"], p["end_s"]))
    return got


def test_every_example_campaign_places_where_its_content_is(demo) -> None:
    assert demo[("demo.mp4", "acme-own-logo")] == [(6.0, 12.0)]
    assert demo[("demo.mp4", "acme-rival-conquest")] == [(17.0, 20.0)]
    # the coffee scene (13-17 s) and the coffee pin: IAB Food & Drink and the prompt, from lite
    assert demo[("demo.mp4", "beanery-coffee-break")] == [(13.0, 17.0)]
    assert ("pin-coffee.jpg", "beanery-coffee-break") in demo
    # the text banner over the bus (4-9 s), read by OCR, and nowhere else
    assert demo[("demo.mp4", "tyrehaus-winter-sale")] == [(4.0, 9.0)]
    assert ("pin-coffee.jpg", "tyrehaus-winter-sale") not in demo
    assert (0.0, 4.0) in demo[("demo.mp4", "speakeasy-presenter")]

"""The typed client and `onscreen target`/`onscreen health` against a real server on loopback."""

from __future__ import annotations

import json
import socket

import grpc
import pytest

from serving.client import ClientError, OnscreenClient
from serving.commands.cli import main
from targeting.types import Placement
from tests.conftest import REPO, read_rgb
from tests.serving.rpc.grpc_fixtures import ServerThread, jpeg, local_config, with_logo, write_rules


@pytest.fixture(scope="module")
def served(tmp_path_factory, real_images):
    from examples.build_media import Scene, build_video
    from vision.pipeline import PipelineConfig, build_pipeline

    root = tmp_path_factory.mktemp("client")
    rules = write_rules(root / "rules")
    media = root / "media"
    media.mkdir()
    build_video(media / "clip.mp4", (Scene("grace_hopper", 0.0, 3.0),), (), fps=5)
    pipeline = build_pipeline(PipelineConfig(brands_dir=rules / "brands", semantic="off"))
    loop = ServerThread()
    cfg = local_config(rules, media_root=media, store=root / "store.db", max_wait_ms=5)
    server = loop.start(cfg, pipeline)
    pin, _ = with_logo(read_rgb(real_images["bus"]), "rival")
    (root / "pin.jpg").write_bytes(jpeg(pin))
    yield {"address": server.address, "root": root, "media": media}
    loop.stop(server)
    loop.close()


@pytest.fixture
def client(served):
    with OnscreenClient(served["address"], timeout_s=30) as c:
        yield c


def test_health_and_target_image_give_domain_placements(client, served) -> None:
    assert client.health() == "SERVING"
    result = client.target_image((served["root"] / "pin.jpg").read_bytes(), media_id="pin-1")
    assert result.rules_version
    assert [p.campaign for p in result.placements][:1] == ["rival-conquest"]
    best = result.placements[0]
    assert isinstance(best, Placement) and best.media == "pin-1" and best.rank == 1
    assert best.reasons[0].kind == "logo" and best.reasons[0].what == "rival"


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda c: c.target_image(b""), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda c: c.target_image(b"\x89PNG\r\n\x1a\nnope"), grpc.StatusCode.INVALID_ARGUMENT),
        (lambda c: c.lookup("never-scanned.mp4"), grpc.StatusCode.NOT_FOUND),
        (lambda c: list(c.scan_path("../etc/passwd")), grpc.StatusCode.INVALID_ARGUMENT),
    ],
    ids=["empty", "bad-png", "unknown-media", "path-escape"],
)
def test_failures_are_client_errors_with_codes(client, call, code) -> None:
    with pytest.raises(ClientError) as info:
        call(client)
    assert info.value.code == code
    assert code.name in str(info.value)


def test_upload_scan_stores_and_lookup_finds(client, served) -> None:
    events = list(client.scan_upload(served["media"] / "clip.mp4", media_id="up.mp4", store=True))
    placements = [e.placement for e in events if e.placement]
    summary = [e.summary for e in events if e.summary]
    assert len(summary) == 1 and summary[0].stored and summary[0].keyframes >= 6
    assert "presenter" in {p.campaign for p in placements}
    stored = client.lookup("up.mp4")
    assert [(p.campaign, p.start_s) for p in stored] == [
        (p.campaign, p.start_s) for p in placements
    ]
    assert {p.campaign for p in client.lookup("up.mp4", t_s=1.0)} == {"presenter"}


def test_target_and_health_commands(served, capsys) -> None:
    assert main(["health", "--server", served["address"]]) == 0
    assert capsys.readouterr().out.strip() == "SERVING"
    pin = served["root"] / "pin.jpg"
    assert (
        main(["target", str(pin), "--server", served["address"], "--json", "--timeout", "30"]) == 0
    )
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines[0]["campaign"] == "rival-conquest" and lines[0]["media"] == "pin.jpg"


def test_health_of_a_server_that_is_not_there_is_a_one_line_error(capsys) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["health", "--server", f"127.0.0.1:{port}", "--timeout", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "UNAVAILABLE" in err[0]


def test_defaults_need_no_ids(client, served) -> None:
    import hashlib

    from serving.scan_events import ScanEvent, ScanProgress, ScanSummary

    data = (served["root"] / "pin.jpg").read_bytes()
    result = client.target_image(data)  # no media_id: reported under the image's sha256
    assert result.placements
    assert {p.media for p in result.placements} == {hashlib.sha256(data).hexdigest()}
    events = list(client.scan_path("clip.mp4"))  # no media_id: the path names the media
    assert all(isinstance(e, ScanEvent) for e in events)
    assert isinstance(events[-1].summary, ScanSummary) and events[-1].summary.keyframes >= 6
    assert any(isinstance(e.progress, ScanProgress) for e in events)
    assert {e.placement.media for e in events if e.placement} == {"clip.mp4"}


def test_scan_event_carries_exactly_one_thing() -> None:
    from serving.scan_events import ScanEvent, ScanProgress, ScanSummary

    with pytest.raises(ValueError, match="exactly one thing, got 0"):
        ScanEvent()
    progress = ScanProgress(1.0, 2.0, 3)
    assert ScanEvent(progress=progress).progress is progress
    with pytest.raises(ValueError, match="exactly one thing, got 2"):
        ScanEvent(progress=progress, summary=ScanSummary(1.0, 1, 0, False, 0.1, "v"))


def test_the_example_client_deadline_fits_a_cpu_host(served, capsys) -> None:
    """examples/ad_server_client.py as written: its deadline must not always expire here."""
    import runpy
    import sys

    argv = sys.argv
    sys.argv = [
        "ad_server_client.py",
        str(served["root"] / "pin.jpg"),
        "--server",
        served["address"],
    ]
    try:
        with pytest.raises(SystemExit) as info:
            runpy.run_path(str(REPO / "examples" / "ad_server_client.py"), run_name="__main__")
    finally:
        sys.argv = argv
    assert info.value.code == 0
    out = capsys.readouterr()
    assert "DEADLINE_EXCEEDED" not in out.err
    assert "pin.jpg: rival-conquest" in out.out

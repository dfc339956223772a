"""``onscreen serve`` end to end: real server on 127.0.0.1, real gRPC calls, real models.

Models: the NudeNet face/safety detector and reference-logo matching, loaded once for the
module; the rules (logo and face campaigns) need no CLIP, so none is loaded. Media: real photos
with the example brands' logos pasted at known places, and a small video built from them.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from serving._proto.onscreen.v1 import (
    targeting_pb2,
    targeting_pb2_grpc,
    vision_pb2,
    vision_pb2_grpc,
    visual_search_pb2,
    visual_search_pb2_grpc,
)
from serving.rpc.config import MAX_IMAGE_MESSAGE_BYTES
from serving.rpc.handlers import resolve_media_path
from serving.rpc.server import SERVICE_NAMES
from tests.conftest import REPO, read_rgb
from tests.serving.rpc.grpc_fixtures import (
    code_of,
    jpeg,
    local_config,
    start_serve,
    with_logo,
    write_rules,
)
from vision.errors import FailedPrecondition, NotFound
from vision.types import box_iou

TARGETING = "onscreen.v1.Targeting"
OK = grpc.StatusCode.OK


# --- module fixtures: one pipeline, one server ------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory, real_images):
    from examples.build_media import OVERLAYS, Scene, build_video

    root = tmp_path_factory.mktemp("serve")
    rules = write_rules(root / "rules")
    media = root / "media"
    media.mkdir()
    # 6 s: bus 0-3 s, zidane 3-6 s with the rival logo from 3 s to the end
    rival = next(o for o in OVERLAYS if o.brand == "rival")
    scenes = (Scene("bus", 0.0, 3.0), Scene("zidane", 3.0, 6.0))
    overlay = type(rival)("rival", 3.0, 6.0, rival.center, rival.scale)
    truth = build_video(media / "clip.mp4", scenes, (overlay,), fps=5)
    (root / "outside.mp4").write_bytes((media / "clip.mp4").read_bytes())
    (media / "escape.mp4").symlink_to(root / "outside.mp4")
    bus = read_rgb(real_images["bus"])
    pin, box = with_logo(bus, "rival")
    return {
        "root": root,
        "rules": rules,
        "media": media,
        "truth": truth,
        "bus": bus,
        "pin": jpeg(pin),
        "pin_box": box,
    }


@pytest.fixture(scope="module")
def pipeline(world):
    from vision.pipeline import PipelineConfig, build_pipeline

    return build_pipeline(PipelineConfig(brands_dir=world["rules"] / "brands", semantic="off"))


@pytest.fixture(scope="module")
def server(world, pipeline, loop):
    cfg = local_config(
        world["rules"],
        media_root=world["media"],
        store=world["root"] / "store.db",
        metrics_port=0,
        max_wait_ms=5,
    )
    running = loop.start(cfg, pipeline)
    yield running
    loop.stop(running)


@pytest.fixture(scope="module")
def channel(server):
    with grpc.insecure_channel(server.address) as ch:
        yield ch


@pytest.fixture(scope="module")
def targeting(channel):
    return targeting_pb2_grpc.TargetingStub(channel)


def health_status(channel, service: str = "") -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    return stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5).status


# --- health, reflection, metrics --------------------------------------------------------------


def test_health_goes_from_not_serving_to_serving_after_load(world, pipeline, loop) -> None:
    gate = threading.Event()

    def slow_factory():
        assert gate.wait(30)
        return pipeline

    running = loop.start(local_config(world["rules"]), slow_factory, wait_ready=False)
    try:
        with grpc.insecure_channel(running.address) as ch:
            assert health_status(ch) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert health_status(ch, TARGETING) == health_pb2.HealthCheckResponse.NOT_SERVING
            stub = targeting_pb2_grpc.TargetingStub(ch)
            req = targeting_pb2.TargetImageRequest(image=world["pin"], media_id="pin")
            code, details = code_of(lambda: stub.TargetImage(req, timeout=10))
            assert code == grpc.StatusCode.UNAVAILABLE and "still loading" in details
            gate.set()
            loop.run(running.wait_ready(60))
            for name in ("", *SERVICE_NAMES):
                assert health_status(ch, name) == health_pb2.HealthCheckResponse.SERVING
            assert stub.TargetImage(req, timeout=30).placements
    finally:
        gate.set()
        loop.stop(running)


def test_reflection_lists_every_service(channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    (resp,) = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10
    )
    names = {s.name for s in resp.list_services_response.service}
    assert {*SERVICE_NAMES, "grpc.health.v1.Health"} <= names
    # grpcurl's next step: the file describing a service
    (resp,) = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(file_containing_symbol=TARGETING)]),
        timeout=10,
    )
    assert resp.file_descriptor_response.file_descriptor_proto


# --- targeting --------------------------------------------------------------------------------


def test_target_image_with_a_pasted_logo_returns_that_brands_campaign(world, targeting) -> None:
    req = targeting_pb2.TargetImageRequest(image=world["pin"], media_id="pin-1", include_facts=True)
    resp = targeting.TargetImage(req, timeout=30)
    by_campaign = {p.campaign_id: p for p in resp.placements}
    assert "rival-conquest" in by_campaign and "acme-own" not in by_campaign
    p = by_campaign["rival-conquest"]
    assert p.media_id == "pin-1" and p.start_s == p.end_s == 0 and p.advertiser == "Acme Analytics"
    assert p.reasons and all(r.kind == 3 and r.what == "rival" for r in p.reasons)  # LOGO
    box = (p.reasons[0].box.x0, p.reasons[0].box.y0, p.reasons[0].box.x1, p.reasons[0].box.y1)
    assert box_iou(box, world["pin_box"]) > 0.6
    assert [m.brand for m in resp.facts.logos] == ["rival"]
    assert (resp.facts.width_px, resp.facts.height_px) == (810, 1080)
    assert len(resp.rules_version) == 64

    # campaign filter and max_placements
    def only(ids: list[str]) -> list[str]:
        req = targeting_pb2.TargetImageRequest(
            image=world["pin"], media_id="pin-1", campaign_ids=ids, max_placements=1
        )
        resp = targeting.TargetImage(req, timeout=30)
        assert not resp.HasField("facts")
        return [p.campaign_id for p in resp.placements]

    assert only(["acme-own", "presenter"]) == []
    assert only(["rival-conquest"]) == ["rival-conquest"]


def test_analyze_returns_facts_and_models(world, channel) -> None:
    stub = vision_pb2_grpc.VisionStub(channel)
    resp = stub.Analyze(vision_pb2.AnalyzeRequest(image=world["pin"]), timeout=30)
    assert resp.facts.reason == 3 and resp.facts.t_s == 0  # KEYFRAME_REASON_IMAGE
    assert [m.brand for m in resp.facts.logos] == ["rival"]
    assert any(d.kind == 1 for d in resp.facts.detections)  # bus.jpg has faces
    assert resp.models == ["detector:nudenet-320n", "logos:reference-features"]
    assert not resp.facts.embedding  # no CLIP loaded


def _scan(targeting, start: targeting_pb2.ScanVideoStart, chunks=()) -> list:
    def requests():
        yield targeting_pb2.ScanVideoRequest(start=start)
        for c in chunks:
            yield targeting_pb2.ScanVideoRequest(chunk=c)

    return list(targeting.ScanVideo(requests(), timeout=120))


def _check_scan(events: list, truth: dict, media_id: str) -> list:
    kinds = [e.WhichOneof("event") for e in events]
    assert kinds[-1] == "summary" and "progress" in kinds and kinds.count("summary") == 1
    placements = [e.placement for e in events if e.WhichOneof("event") == "placement"]
    rival = [p for p in placements if p.campaign_id == "rival-conquest"]
    assert len(rival) == 1, placements
    assert rival[0].media_id == media_id
    assert abs(rival[0].start_s - 3.0) <= 0.5 and rival[0].end_s >= 5.0
    truth_box = next(o["box"] for o in truth["logos"] if o["brand"] == "rival")
    r = rival[0].reasons[0]
    assert r.what == "rival" and box_iou((r.box.x0, r.box.y0, r.box.x1, r.box.y1), truth_box) > 0.6
    summary = events[-1].summary
    assert summary.placements == len(placements) and summary.keyframes >= 10
    assert abs(summary.duration_s - 6.0) < 0.3
    return placements


def test_scan_video_by_path_streams_placements_and_stores_them(world, targeting) -> None:
    start = targeting_pb2.ScanVideoStart(
        media_id="clip-by-path", media_root_path="clip.mp4", store=True
    )
    events = _scan(targeting, start)
    placements = _check_scan(events, world["truth"], "clip-by-path")
    assert events[-1].summary.stored
    looked = targeting.LookupPlacements(
        targeting_pb2.LookupPlacementsRequest(media_id="clip-by-path"), timeout=5
    )
    assert [p.campaign_id for p in looked.placements] == [p.campaign_id for p in placements]
    assert looked.scanned_at.seconds > time.time() - 600
    at = targeting.LookupPlacements(
        targeting_pb2.LookupPlacementsRequest(media_id="clip-by-path", t_s=4.0), timeout=5
    )
    assert "rival-conquest" in {p.campaign_id for p in at.placements}
    assert all(p.start_s <= 4.0 <= p.end_s for p in at.placements)


def test_scan_video_chunked_upload(world, targeting) -> None:
    import hashlib

    data = (world["media"] / "clip.mp4").read_bytes()
    upload = targeting_pb2.ScanVideoUpload(
        size_bytes=len(data), filename="clip.mp4", sha256=hashlib.sha256(data).hexdigest()
    )
    start = targeting_pb2.ScanVideoStart(media_id="clip-upload", upload=upload)
    chunks = [data[i : i + 64 * 1024] for i in range(0, len(data), 64 * 1024)]
    events = _scan(targeting, start, chunks)
    _check_scan(events, world["truth"], "clip-upload")
    assert not events[-1].summary.stored
    progress = [e.progress for e in events if e.WhichOneof("event") == "progress"]
    assert progress[-1].received_bytes == len(data)
    # a lying size is refused, and nothing of it lingers
    bad = targeting_pb2.ScanVideoUpload(size_bytes=len(data) + 1)
    code, details = code_of(
        lambda: _scan(targeting, targeting_pb2.ScanVideoStart(media_id="x", upload=bad), chunks)
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "size_bytes said" in details


@pytest.mark.parametrize(
    "rel, code, message",
    [
        ("../outside.mp4", grpc.StatusCode.INVALID_ARGUMENT, "contains '..'"),
        ("/etc/passwd", grpc.StatusCode.INVALID_ARGUMENT, "is absolute"),
        ("escape.mp4", grpc.StatusCode.INVALID_ARGUMENT, "outside the media root"),
        ("", grpc.StatusCode.INVALID_ARGUMENT, "media_root_path is empty"),
        ("missing.mp4", grpc.StatusCode.NOT_FOUND, "no such file under the media root"),
        # found by tests/fuzz: a NUL byte made pathlib raise ValueError (INTERNAL)
        ("clip\x00.mp4", grpc.StatusCode.INVALID_ARGUMENT, "holds a control character"),
    ],
)
def test_scan_video_paths_stay_under_the_media_root(targeting, rel, code, message) -> None:
    start = targeting_pb2.ScanVideoStart(media_id="m", media_root_path=rel)
    got, details = code_of(lambda: _scan(targeting, start))
    assert got == code and message in details


def test_media_root_resolution_without_a_root_or_store() -> None:
    with pytest.raises(FailedPrecondition, match="no media root: start it with --media-root"):
        resolve_media_path(None, "a.mp4")
    with pytest.raises(NotFound, match="no such file"):
        resolve_media_path(Path("/"), "definitely/not/here.mp4")


def test_target_stream_emits_placements_as_segments_close(world, targeting, real_images) -> None:
    base = read_rgb(real_images["zidane"])  # a presenter-sized face throughout
    logo_frame, _ = with_logo(base, "rival")
    times = [i * 0.5 for i in range(11)]  # 0..5 s; the rival logo on screen from 1.0 to 2.5 s

    def requests():
        for t in times:
            img = logo_frame if 1.0 <= t <= 2.5 else base
            yield targeting_pb2.TargetStreamRequest(stream_id="live-1", t_s=t, jpeg=jpeg(img, 80))
        yield targeting_pb2.TargetStreamRequest(stream_id="live-1", end_of_stream=True)

    responses = list(targeting.TargetStream(requests(), timeout=120))
    assert all(r.stream_id == "live-1" for r in responses)
    # the rival segment closed (no logo for more than its 1 s gap) before the stream ended
    early = [p for r in responses[:-1] for p in r.placements if p.campaign_id == "rival-conquest"]
    assert len(early) == 1, responses
    # a segment ends where its last matching keyframe's interval ends (2.5 + 0.5 s)
    assert early[0].start_s == 1.0 and 2.5 <= early[0].end_s <= 3.0
    assert early[0].media_id == "live-1"
    assert early[0].reasons[0].what == "rival"
    assert responses[-1].decided_until_s == 5.0
    decided = [r.decided_until_s for r in responses]
    assert decided == sorted(decided)
    every = [p for r in responses for p in r.placements]
    assert [p.campaign_id for p in every].count("rival-conquest") == 1  # never reported twice
    # the face is on screen throughout: its segment stays open until end_of_stream closes it
    (presenter,) = [p for p in every if p.campaign_id == "presenter"]
    assert presenter in responses[-1].placements and presenter.start_s == 0.0


def test_target_stream_refuses_time_going_backwards(world, targeting) -> None:
    frame = jpeg(world["bus"], 70)

    def requests():
        yield targeting_pb2.TargetStreamRequest(stream_id="s", t_s=2.0, jpeg=frame)
        yield targeting_pb2.TargetStreamRequest(stream_id="s", t_s=1.0, jpeg=frame)

    code, details = code_of(lambda: list(targeting.TargetStream(requests(), timeout=60)))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "frame times must increase" in details


# --- bad input: exact codes, and the server keeps answering -----------------------------------


def _png_header(width: int, height: int) -> bytes:
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    return (
        b"\x89PNG\r\n\x1a\n"
        + struct.pack(">I", len(ihdr))
        + chunk
        + struct.pack(">I", zlib.crc32(chunk))
        + b"\x00" * 64
    )


def _bad_requests(world) -> list:
    pin = world["pin"]
    rng = np.random.default_rng(0)
    T = targeting_pb2.TargetImageRequest
    return [
        ("empty bytes", T(image=b"", media_id="a"), "INVALID_ARGUMENT", "empty (0 bytes)"),
        ("random bytes", T(image=rng.bytes(5000), media_id="a"), "INVALID_ARGUMENT", "unknown format"),
        ("truncated jpeg", T(image=pin[: len(pin) // 2], media_id="a"), "INVALID_ARGUMENT", "truncated"),
        ("huge header", T(image=_png_header(100_000, 100_000), media_id="a"), "INVALID_ARGUMENT",
         "100000x100000 = 10000 MP, over the 50 MP limit"),
        ("gif", T(image=b"GIF89a" + b"\x00" * 100, media_id="a"), "INVALID_ARGUMENT", "GIF images are not accepted"),
        ("over 20 MiB", T(image=b"\xff\xd8\xff" + b"\x00" * (20 * 2**20 + 10), media_id="a"),
         "INVALID_ARGUMENT", "over the 20971520-byte limit"),
        ("over the message limit", T(image=b"\x00" * (MAX_IMAGE_MESSAGE_BYTES + 10), media_id="a"),
         "RESOURCE_EXHAUSTED", "larger than max"),
        ("media id too long", T(image=pin, media_id="x" * 1025), "INVALID_ARGUMENT",
         "media_id is 1025 characters, over the 1024 limit"),
        ("unknown campaign", T(image=pin, media_id="a", campaign_ids=["nope"]), "INVALID_ARGUMENT",
         "unknown campaign id(s) nope"),
        ("max placements", T(image=pin, media_id="a", max_placements=-1), "INVALID_ARGUMENT",
         "max_placements must be in 0..1000"),
        ("negative similar items", T(image=pin, similar_items_count=-1), "INVALID_ARGUMENT",
         "similar_items_count must be >= 0, got -1"),
        # checked before the image is decoded: garbage bytes do not hide it
        ("similar items", T(image=b"junk", similar_items_count=3), "UNIMPLEMENTED",
         "similar_items_count needs the visual search catalog, and this server has none: start the "
         "server with --catalog DIR"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(12))
def test_bad_images_get_their_exact_code_and_the_server_goes_on(world, targeting, case) -> None:
    name, req, code, message = _bad_requests(world)[case]
    got, details = code_of(lambda: targeting.TargetImage(req, timeout=30))
    assert (got.name, name) == (code, name)
    assert message in details, details
    ok = targeting.TargetImage(
        targeting_pb2.TargetImageRequest(image=world["pin"], media_id="after"), timeout=30
    )
    assert "rival-conquest" in {p.campaign_id for p in ok.placements}


@pytest.mark.parametrize(
    "call, code, message",
    [
        (lambda t, v: t.LookupPlacements(targeting_pb2.LookupPlacementsRequest(media_id="never")),
         "NOT_FOUND", "'never' was never scanned into the placement store"),
        (lambda t, v: t.LookupPlacements(targeting_pb2.LookupPlacementsRequest()),
         "INVALID_ARGUMENT", "media_id is required"),
        (lambda t, v: v.SimilarItems(visual_search_pb2.SimilarItemsRequest(item_id="x")),
         "UNIMPLEMENTED", "start the server with --catalog DIR"),
        (lambda t, v: v.UpsertItems(visual_search_pb2.UpsertItemsRequest()),
         "UNIMPLEMENTED", "start the server with --catalog DIR"),
        (lambda t, v: v.DeleteItems(visual_search_pb2.DeleteItemsRequest(ids=["x"])),
         "UNIMPLEMENTED", "start the server with --catalog DIR"),
    ],
)  # fmt: skip
def test_other_status_codes(channel, targeting, call, code, message) -> None:
    search = visual_search_pb2_grpc.VisualSearchStub(channel)
    got, details = code_of(lambda: call(targeting, search))
    assert got.name == code and message in details


def test_lookup_without_a_store_is_failed_precondition(world, pipeline, loop) -> None:
    running = loop.start(local_config(world["rules"], warmup=False), pipeline)
    try:
        with grpc.insecure_channel(running.address) as ch:
            stub = targeting_pb2_grpc.TargetingStub(ch)
            code, details = code_of(
                lambda: stub.LookupPlacements(targeting_pb2.LookupPlacementsRequest(media_id="m"))
            )
            assert code == grpc.StatusCode.FAILED_PRECONDITION and "--store PATH" in details
    finally:
        loop.stop(running)


def test_a_1ms_deadline_is_deadline_exceeded(world, targeting) -> None:
    req = targeting_pb2.TargetImageRequest(image=world["pin"], media_id="rush")
    code, _ = code_of(lambda: targeting.TargetImage(req, timeout=0.001))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert targeting.TargetImage(req, timeout=30).placements  # and the server goes on


def test_overload_refuses_some_and_answers_the_rest_correctly(world, pipeline, loop) -> None:
    cfg = local_config(world["rules"], max_batch=1, max_wait_ms=0, max_queue=2, warmup=False)
    running = loop.start(cfg, pipeline)
    try:
        with grpc.insecure_channel(running.address) as ch:
            stub = targeting_pb2_grpc.TargetingStub(ch)
            futures = [
                stub.TargetImage.future(
                    targeting_pb2.TargetImageRequest(image=world["pin"], media_id=f"flood-{i}"),
                    timeout=60,
                )
                for i in range(24)
            ]
            codes, answered = [], 0
            for i, f in enumerate(futures):
                try:
                    resp = f.result()
                except grpc.RpcError as e:
                    codes.append(e.code())
                    assert "back off and retry" in e.details()
                    continue
                answered += 1
                p = next(p for p in resp.placements if p.campaign_id == "rival-conquest")
                assert p.media_id == f"flood-{i}" and p.reasons[0].what == "rival"
            assert codes and set(codes) == {grpc.StatusCode.RESOURCE_EXHAUSTED}
            assert answered >= 2
            assert running.engine.batcher.depth == 0
            # still healthy and answering
            assert health_status(ch) == health_pb2.HealthCheckResponse.SERVING
            assert stub.TargetImage(
                targeting_pb2.TargetImageRequest(image=world["pin"], media_id="after"), timeout=30
            ).placements
    finally:
        loop.stop(running)


def test_metrics_count_requests_by_code_and_batches(world, server, targeting) -> None:
    targeting.TargetImage(targeting_pb2.TargetImageRequest(image=world["pin"], media_id="m1"))
    code_of(
        lambda: targeting.TargetImage(targeting_pb2.TargetImageRequest(image=b"", media_id="m"))
    )
    url = f"http://127.0.0.1:{server.metrics.port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as r:
        text = r.read().decode()
    assert 'onscreen_requests_total{code="OK",method="TargetImage"}' in text
    assert 'onscreen_requests_total{code="INVALID_ARGUMENT",method="TargetImage"}' in text
    assert "onscreen_batch_size_count" in text and "onscreen_queue_depth 0.0" in text
    assert "onscreen_ready 1.0" in text


# --- auth, TLS --------------------------------------------------------------------------------


def test_api_key_is_required_except_for_health(world, pipeline, loop) -> None:
    running = loop.start(local_config(world["rules"], api_key="s3cret", warmup=False), pipeline)
    try:
        with grpc.insecure_channel(running.address) as ch:
            stub = targeting_pb2_grpc.TargetingStub(ch)
            req = targeting_pb2.TargetImageRequest(image=world["pin"], media_id="k")
            for metadata, want in [
                ((), "missing API key"),
                ((("x-api-key", "wrong"),), "wrong API key"),
            ]:
                code, details = code_of(lambda md=metadata: stub.TargetImage(req, metadata=md))
                assert code == grpc.StatusCode.UNAUTHENTICATED and want in details
            stream = stub.TargetStream(iter([]), metadata=())
            code, _ = code_of(lambda: list(stream))
            assert code == grpc.StatusCode.UNAUTHENTICATED
            assert stub.TargetImage(req, metadata=(("x-api-key", "s3cret"),), timeout=30).placements
            assert health_status(ch) == health_pb2.HealthCheckResponse.SERVING  # exempt
    finally:
        loop.stop(running)


def test_tls(world, pipeline, loop, tmp_path) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )  # fmt: skip
    running = loop.start(
        local_config(world["rules"], tls_cert=cert, tls_key=key, warmup=False), pipeline
    )
    try:
        creds = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
        with grpc.secure_channel(running.address, creds) as ch:
            assert health_status(ch) == health_pb2.HealthCheckResponse.SERVING
        with grpc.insecure_channel(running.address) as ch:  # plaintext is not served
            code, _ = code_of(lambda: health_status(ch))
            assert code == grpc.StatusCode.UNAVAILABLE
    finally:
        loop.stop(running)


# --- rules hot reload -------------------------------------------------------------------------


def test_rules_hot_reload_takes_good_edits_and_keeps_serving_through_bad_ones(
    world, pipeline, loop, tmp_path
) -> None:
    rules = write_rules(tmp_path / "rules")
    running = loop.start(local_config(rules, watch_rules=True, warmup=False), pipeline)
    try:
        assert running.engine.watcher.ready.wait(10)
        with grpc.insecure_channel(running.address) as ch:
            stub = targeting_pb2_grpc.TargetingStub(ch)
            req = targeting_pb2.TargetImageRequest(image=world["pin"], media_id="r")
            first = stub.TargetImage(req, timeout=30)
            (rules / "campaigns" / "rival-too.yaml").write_text(
                "id: rival-too\nbid_cpm: 9\ntarget:\n  any:\n    - logo: {brand: rival}\n"
            )
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                resp = stub.TargetImage(req, timeout=30)
                if resp.rules_version != first.rules_version:
                    break
                time.sleep(0.1)
            assert "rival-too" in {p.campaign_id for p in resp.placements}
            (rules / "campaigns" / "broken.yaml").write_text(
                "id: broken\ntarget: {any: [{logo: {brand: nobody}}]}\n"
            )
            time.sleep(1.5)  # > debounce + a reload
            assert not running.engine.holder.last_result.ok
            after = stub.TargetImage(req, timeout=30)
            assert after.rules_version == resp.rules_version  # the last good rules keep serving
            assert "rival-too" in {p.campaign_id for p in after.placements}
            sample = running.metrics.registry.get_sample_value
            assert sample("onscreen_rules_reloads_total", {"result": "applied"}) >= 1
            assert sample("onscreen_rules_reloads_total", {"result": "rejected"}) >= 1
    finally:
        loop.stop(running)


# --- the command: SIGTERM drains in-flight calls and exits 0 ----------------------------------


def test_serve_command_drains_in_flight_calls_on_sigterm(world) -> None:
    server = start_serve(
        "--rules", str(world["rules"]), "--port", "0", "--max-batch", "64", "--max-wait-ms",
        "1500", "--grace", "20", "--no-watch",
    )  # fmt: skip
    proc, address, lines, reader = server.proc, server.address, server.lines, server.reader
    try:
        with grpc.insecure_channel(address) as ch:
            stub = targeting_pb2_grpc.TargetingStub(ch)
            futures = [
                stub.TargetImage.future(
                    targeting_pb2.TargetImageRequest(image=world["pin"], media_id=f"drain-{i}"),
                    timeout=60,
                )
                for i in range(4)
            ]
            time.sleep(0.5)  # the calls now wait in the batcher (max wait 1.5 s)
            assert not any(f.done() for f in futures)
            proc.send_signal(signal.SIGTERM)
            for f in futures:
                assert "rival-conquest" in {p.campaign_id for p in f.result().placements}
        assert proc.wait(60) == 0, "".join(lines)
        reader.join(10)  # the rest of stderr
        text = "".join(lines)
        assert "shutting down" in text and "stopped" in text
    finally:
        server.stop()


def test_serve_command_refuses_bad_rules_before_loading_models(tmp_path) -> None:
    (tmp_path / "campaigns").mkdir()
    (tmp_path / "campaigns" / "x.yaml").write_text(
        "id: x\ntarget: {any: [{logo: {brand: nobody}}]}\n"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "serving.commands.cli", "serve", "--rules", str(tmp_path), "--port", "0"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "x.yaml" in proc.stderr and "nobody" in proc.stderr


# --- malformed messages, default ids, client-facing messages, deadline metrics ----------------


def _varint(n: int) -> bytes:
    out = b""
    while True:
        b, n = n & 0x7F, n >> 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def _bad_utf8(desc) -> bytes | None:  # noqa: ANN001
    """A message of type ``desc`` whose first reachable string field holds invalid UTF-8."""
    from google.protobuf.descriptor import FieldDescriptor as FD

    for f in desc.fields:
        if f.type == FD.TYPE_STRING:
            return _varint(f.number << 3 | 2) + _varint(2) + b"\xff\xfe"
        if f.type == FD.TYPE_MESSAGE:
            inner = _bad_utf8(f.message_type)
            if inner is not None:
                return _varint(f.number << 3 | 2) + _varint(len(inner)) + inner
    return None


def _truncated(desc) -> bytes:  # noqa: ANN001
    """A length-delimited field that claims 100 bytes and carries 10."""
    from google.protobuf.descriptor import FieldDescriptor as FD

    f = next(f for f in desc.fields if f.type in (FD.TYPE_STRING, FD.TYPE_BYTES, FD.TYPE_MESSAGE))
    return _varint(f.number << 3 | 2) + _varint(100) + b"x" * 10


ALL_METHODS = [
    (service, m)
    for pb in (targeting_pb2, vision_pb2, visual_search_pb2)
    for service in pb.DESCRIPTOR.services_by_name.values()
    for m in service.methods
]


@pytest.mark.parametrize("kind", ["garbage", "truncated", "bad utf-8"])
@pytest.mark.parametrize("service, method", ALL_METHODS, ids=lambda x: getattr(x, "name", ""))
def test_malformed_messages_are_invalid_argument_with_one_log_line(
    channel, service, method, kind, caplog
) -> None:
    desc = method.input_type
    raw = {
        "garbage": b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
        "truncated": _truncated(desc),
        "bad utf-8": _bad_utf8(desc),
    }[kind]
    assert raw is not None
    path = f"/{service.full_name}/{method.name}"
    if method.client_streaming:
        call = channel.stream_stream(path)
        run = lambda: list(call(iter([raw]), timeout=10))  # noqa: E731
    else:
        unary = channel.unary_unary(path)
        run = lambda: unary(raw, timeout=10)  # noqa: E731
    caplog.clear()
    code, details = code_of(run)
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert f"not a valid {desc.full_name} message" in details
    mine = [r for r in caplog.records if desc.full_name in r.getMessage()]
    assert len(mine) == 1 and mine[0].exc_info is None
    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"
    assert health_status(channel) == health_pb2.HealthCheckResponse.SERVING


def test_target_image_without_a_media_id_reports_under_the_images_sha256(world, targeting) -> None:
    import hashlib

    resp = targeting.TargetImage(targeting_pb2.TargetImageRequest(image=world["pin"]), timeout=30)
    digest = hashlib.sha256(world["pin"]).hexdigest()
    assert resp.placements and {p.media_id for p in resp.placements} == {digest}


def test_scan_errors_name_the_requests_path_never_a_server_path(world, targeting) -> None:
    (world["media"] / "sub").mkdir(exist_ok=True)
    (world["media"] / "sub" / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 999)
    start = targeting_pb2.ScanVideoStart(media_id="b", media_root_path="sub/broken.mp4")
    code, details = code_of(lambda: _scan(targeting, start))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert "sub/broken.mp4" in details
    assert str(world["media"]) not in details and str(world["root"]) not in details
    data = b"not a video at all" * 100
    upload = targeting_pb2.ScanVideoUpload(size_bytes=len(data), filename="mine.mp4")
    start = targeting_pb2.ScanVideoStart(media_id="u", upload=upload)
    code, details = code_of(lambda: _scan(targeting, start, [data]))
    assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
    assert "mine.mp4" in details
    assert "onscreen-upload-" not in details and "/tmp" not in details, details


def test_a_deadline_that_fires_mid_call_is_counted_as_deadline_exceeded(
    world, server, targeting
) -> None:
    sample = server.metrics.registry.get_sample_value
    labels = {"method": "ScanVideo", "code": "DEADLINE_EXCEEDED"}
    before = sample("onscreen_requests_total", labels) or 0.0
    start = targeting_pb2.ScanVideoStart(media_id="slow", media_root_path="clip.mp4")
    req = iter([targeting_pb2.ScanVideoRequest(start=start)])
    code, _ = code_of(lambda: list(targeting.ScanVideo(req, timeout=0.3)))
    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    deadline = time.monotonic() + 10
    while (sample("onscreen_requests_total", labels) or 0.0) <= before:
        assert time.monotonic() < deadline, "the call was not counted as DEADLINE_EXCEEDED"
        time.sleep(0.05)
    assert not sample("onscreen_requests_total", {"method": "ScanVideo", "code": "CANCELLED"})


# --- the README's grpcurl lines, as grpcurl runs them: JSON -> reflection -> the wire ---------


def _readme_grpcurl(method: str) -> str:
    lines = [
        line for line in (REPO / "README.md").read_text().splitlines()
        if "grpcurl" in line and line.rstrip().endswith(method)
    ]  # fmt: skip
    assert len(lines) == 1, lines
    return lines[0]


def _grpcurl(channel, method: str, payload: str) -> dict:  # noqa: ANN001
    """What ``grpcurl -d PAYLOAD ADDRESS METHOD`` does: look the types up by reflection, parse
    the JSON into the request type, send it, print the response as JSON."""
    from google.protobuf import descriptor_pool, json_format, message_factory
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
    service, name = method.rsplit("/", 1)
    m = pool.FindServiceByName(service).FindMethodByName(name)
    req_cls = message_factory.GetMessageClass(m.input_type)
    resp_cls = message_factory.GetMessageClass(m.output_type)
    request = json_format.Parse(payload, req_cls())
    call = channel.unary_unary(
        f"/{service}/{name}",
        request_serializer=lambda r: r.SerializeToString(),
        response_deserializer=resp_cls.FromString,
    )
    return json_format.MessageToDict(call(request, timeout=30))


def test_readme_grpcurl_target_image_works_as_written(world, channel, tmp_path) -> None:
    line = _readme_grpcurl("onscreen.v1.Targeting/TargetImage")
    producer, _, consumer = line.partition("| grpcurl")
    assert "-d @" in consumer and "media_id" not in line  # JSON on stdin, no id needed
    (tmp_path / "examples" / "media").mkdir(parents=True)
    (tmp_path / "examples" / "media" / "pin-coffee.jpg").write_bytes(world["pin"])
    payload = subprocess.run(
        ["bash", "-c", producer], cwd=tmp_path, capture_output=True, text=True, check=True
    ).stdout
    assert len(payload) > 128 * 1024  # over what one argv string may hold (MAX_ARG_STRLEN)
    out = _grpcurl(channel, "onscreen.v1.Targeting/TargetImage", payload)
    assert "rival-conquest" in {p["campaignId"] for p in out["placements"]}
    assert out["rulesVersion"]


def test_readme_grpcurl_lookup_payload_parses(world, channel, targeting) -> None:
    line = _readme_grpcurl("onscreen.v1.Targeting/LookupPlacements")
    payload = line.split("-d '", 1)[1].split("'", 1)[0]
    start = targeting_pb2.ScanVideoStart(
        media_id="demo.mp4", media_root_path="clip.mp4", store=True
    )
    _scan(targeting, start)
    out = _grpcurl(channel, "onscreen.v1.Targeting/LookupPlacements", payload)
    assert "scannedAt" in out  # found (t_s 7 is after this 6 s clip: no placement covers it)
    assert {p["mediaId"] for p in out.get("placements", [])} <= {"demo.mp4"}

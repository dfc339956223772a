"""Every RPC on mutated real requests, over loopback against a real server: whatever bytes
arrive, the answer is a status a client can act on (INVALID_ARGUMENT, NOT_FOUND, ...), never
UNKNOWN or INTERNAL (a bug on our side), and the server keeps answering."""

from __future__ import annotations

import cv2
import grpc
import pytest
from hypothesis import given, settings

from serving._proto.onscreen.v1 import targeting_pb2, vision_pb2, visual_search_pb2
from tests.conftest import read_rgb
from tests.fuzz.conftest import examples
from tests.fuzz.mutations import mutated
from tests.serving.rpc.grpc_fixtures import ServerThread, jpeg, local_config, with_logo, write_rules

ACCEPTABLE = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.OUT_OF_RANGE,
}


@pytest.fixture(scope="module")
def server_address(tmp_path_factory, real_images):
    from vision.pipeline import PipelineConfig, build_pipeline

    root = tmp_path_factory.mktemp("fuzz-rpc")
    rules = write_rules(root / "rules")
    media = root / "media"
    media.mkdir()
    pipeline = build_pipeline(PipelineConfig(brands_dir=rules / "brands", semantic="off"))
    loop = ServerThread()
    cfg = local_config(rules, media_root=media, store=root / "store.db", max_wait_ms=1)
    running = loop.start(cfg, pipeline)
    yield running.address
    loop.stop(running)
    loop.close()


@pytest.fixture(scope="module")
def pin(real_images) -> bytes:
    img, _ = with_logo(read_rgb(real_images["bus"]), "rival")
    return jpeg(cv2.resize(img, (160, 200)), 80)


def _seeds(pin: bytes) -> dict[str, tuple[str, bytes]]:
    """method path -> (kind, a valid serialized request)."""
    t, v, s = targeting_pb2, vision_pb2, visual_search_pb2
    return {
        "/onscreen.v1.Targeting/TargetImage": (
            "unary",
            t.TargetImageRequest(image=pin, media_id="pin-1", max_placements=3, include_facts=True).SerializeToString(),
        ),
        "/onscreen.v1.Targeting/LookupPlacements": (
            "unary",
            t.LookupPlacementsRequest(media_id="demo.mp4", t_s=7.0).SerializeToString(),
        ),
        "/onscreen.v1.Vision/Analyze": (
            "unary",
            v.AnalyzeRequest(image=pin, media_id="pin-2").SerializeToString(),
        ),
        "/onscreen.v1.Targeting/ScanVideo": (
            "stream",
            t.ScanVideoRequest(start=t.ScanVideoStart(media_id="clip", media_root_path="clip.mp4")).SerializeToString(),
        ),
        "/onscreen.v1.Targeting/TargetStream": (
            "stream",
            t.TargetStreamRequest(stream_id="s1", t_s=0.5, jpeg=pin).SerializeToString(),
        ),
        "/onscreen.v1.VisualSearch/SimilarItems": (
            "unary",
            s.SimilarItemsRequest(item_id="sku-1", k=5).SerializeToString(),
        ),
        "/onscreen.v1.VisualSearch/UpsertItems": (
            "unary",
            s.UpsertItemsRequest(items=[s.CatalogItem(id="sku-1", image_bytes=pin, metadata={"price": "9.5"})]).SerializeToString(),
        ),
        "/onscreen.v1.VisualSearch/DeleteItems": (
            "unary",
            s.DeleteItemsRequest(ids=["sku-1", "sku-2"]).SerializeToString(),
        ),
    }  # fmt: skip


def _call(channel: grpc.Channel, method: str, kind: str, data: bytes) -> grpc.StatusCode:
    try:
        if kind == "unary":
            channel.unary_unary(method)(data, timeout=30)
        else:
            for _ in channel.stream_stream(method)(iter([data]), timeout=30):
                pass
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize("method", sorted(_seeds(b"x")))
def test_mutated_requests_get_an_actionable_status(server_address, pin, method: str) -> None:
    kind, seed = _seeds(pin)[method]
    with grpc.insecure_channel(server_address) as channel:
        assert _call(channel, method, kind, seed) in ACCEPTABLE  # the seed itself

        @settings(max_examples=examples(60))
        @given(data=mutated(seed))
        def check(data: bytes) -> None:
            code = _call(channel, method, kind, data)
            assert code in ACCEPTABLE, f"{method}: {code} for {len(data)} bytes"

        check()
        # and the server still answers a valid request afterwards
        assert _call(channel, method, kind, seed) in ACCEPTABLE

"""Cookie-free by construction: no request field, log line, metric label or store column
carries a user id, cookie, IP address or device id, asserted over a real scan into the store
and a real server answering over loopback at DEBUG logging. Faces are counted and measured,
never identified: no face embedding or identity leaves the detector."""

from __future__ import annotations

import logging
import re
import sqlite3

import grpc
import pytest
from google.protobuf.descriptor import Descriptor

from serving._proto.onscreen.v1 import (
    common_pb2,
    targeting_pb2,
    targeting_pb2_grpc,
    vision_pb2,
    visual_search_pb2,
)
from serving.commands.cli import main
from tests.conftest import read_rgb
from tests.serving.rpc.grpc_fixtures import ServerThread, jpeg, local_config, with_logo, write_rules

PERSONAL = re.compile(
    r"(^|_)(user|uid|cookie|ip|ip_address|device|device_id|idfa|gaid|ifa|email|phone|"
    r"session|visitor|client_ip|remote_addr|geo|lat|lon|person|identity|face_id)(_|$)",
    re.IGNORECASE,
)
IP_IN_TEXT = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b|ipv[46]:|\[::1\]")


def _all_messages(module) -> list[Descriptor]:  # noqa: ANN001
    out: list[Descriptor] = []
    stack = list(module.DESCRIPTOR.message_types_by_name.values())
    while stack:
        d = stack.pop()
        out.append(d)
        stack.extend(d.nested_types)
    return out


def test_no_message_of_the_contract_has_a_personal_field() -> None:
    fields = [
        f"{d.full_name}.{f.name}"
        for m in (common_pb2, targeting_pb2, vision_pb2, visual_search_pb2)
        for d in _all_messages(m)
        for f in d.fields
    ]
    assert len(fields) > 50
    assert [f for f in fields if PERSONAL.search(f.rsplit(".", 1)[1])] == []


@pytest.fixture(scope="module")
def served(tmp_path_factory, real_images):
    """A scan into the store, then a server over it: both at DEBUG, every record kept."""
    from examples.build_media import Scene, build_video
    from vision.pipeline import PipelineConfig, build_pipeline

    root = tmp_path_factory.mktemp("privacy")
    rules = write_rules(root / "rules")
    media = root / "media"
    media.mkdir()
    build_video(media / "clip.mp4", (Scene("zidane", 0.0, 3.0),), (), fps=5)
    store = root / "store.db"
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep(level=logging.DEBUG)
    logging.getLogger().addHandler(handler)
    old = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        code = main(["scan", str(media), "--rules", str(rules), "--out", str(root / "p.jsonl"),
                     "--store", str(store), "--quiet", "--semantic", "off"])  # fmt: skip
        assert code == 0
        pipeline = build_pipeline(PipelineConfig(brands_dir=rules / "brands", semantic="off"))
        loop = ServerThread()
        running = loop.start(local_config(rules, media_root=media, store=store), pipeline)
        pin, _ = with_logo(read_rgb(real_images["zidane"]), "rival")
        with grpc.insecure_channel(running.address) as ch:
            stub = targeting_pb2_grpc.TargetingStub(ch)
            stub.TargetImage(targeting_pb2.TargetImageRequest(image=jpeg(pin)), timeout=60)
            stub.LookupPlacements(
                targeting_pb2.LookupPlacementsRequest(media_id="clip.mp4"), timeout=30
            )
            with pytest.raises(grpc.RpcError):  # a malformed call is logged: not its peer
                ch.unary_unary("/onscreen.v1.Targeting/TargetImage")(b"\xff\x00junk", timeout=30)
            with pytest.raises(grpc.RpcError):
                stub.LookupPlacements(
                    targeting_pb2.LookupPlacementsRequest(media_id="nope"), timeout=30
                )
        registry = running.metrics.registry
        loop.stop(running)
        loop.close()
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(old)
    return {"records": records, "store": store, "registry": registry, "own": running.address}


def test_no_log_line_names_a_peer_address(served) -> None:
    """The server's own listening address ("serving on 127.0.0.1:PORT") is not a person's;
    every other address in a log line is."""
    texts = [r.getMessage().replace(served["own"], "<own address>") for r in served["records"]]
    assert any("TargetImage" in t for t in texts)  # the malformed call was logged
    leaking = [t for t in texts if IP_IN_TEXT.search(t)]
    assert leaking == []


def test_no_metric_label_and_no_store_column_is_personal(served) -> None:
    labels = {
        name
        for family in served["registry"].collect()
        for sample in family.samples
        for name in sample.labels
    }
    assert labels and not [n for n in labels if PERSONAL.search(n)]
    with sqlite3.connect(served["store"]) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        columns = [f"{t}.{c[1]}" for t in tables for c in db.execute(f"PRAGMA table_info({t})")]
    assert "placements.media_id" in columns
    assert not [c for c in columns if PERSONAL.search(c.split(".", 1)[1])]

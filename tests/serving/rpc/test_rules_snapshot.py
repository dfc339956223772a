"""One rules snapshot: the logo matcher is rebuilt from the rules' brands on every reload, a
reload whose brands cannot be used is rejected whole, and a request keeps the snapshot it took.

Real server on 127.0.0.1 with the rules watcher on; real NudeNet detector and reference-logo
matching; a real photo with the example ``rival`` logo pasted on it.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import grpc
import pytest

from serving._proto.onscreen.v1 import targeting_pb2, targeting_pb2_grpc
from serving.targeter import Targeter
from targeting.rules_loader import load_rules
from tests.conftest import read_rgb
from tests.serving.rpc.grpc_fixtures import jpeg, local_config, with_logo, write_rules
from vision.errors import RulesError
from vision.types import Frame

RELOAD_WAIT_S = 15.0
"""How long a test waits for the watcher to apply (or reject) an edit, seconds."""


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    from vision.pipeline import PipelineConfig, build_pipeline

    return build_pipeline(PipelineConfig(semantic="off"))  # no brands: logos come from the rules


@pytest.fixture(scope="module")
def pin(real_images) -> tuple[bytes, Frame]:
    image, _ = with_logo(read_rgb(real_images["bus"]), "rival")
    return jpeg(image), Frame("pin", 0.0, image, reason="image")


def _png_header(width: int, height: int) -> bytes:
    """A well-formed PNG whose IHDR claims ``width`` x ``height`` (a decompression bomb)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _wait_for(pred, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + RELOAD_WAIT_S
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_reload_rebuilds_the_logo_matcher_and_rejects_unusable_brands_whole(
    pipeline, pin, loop, tmp_path
) -> None:
    rules = write_rules(tmp_path / "rules")
    running = loop.start(local_config(rules, watch_rules=True, warmup=False), pipeline)
    sample = running.metrics.registry.get_sample_value
    try:
        assert running.engine.watcher.ready.wait(10)
        with grpc.insecure_channel(running.address) as ch:
            stub = targeting_pb2_grpc.TargetingStub(ch)
            req = targeting_pb2.TargetImageRequest(image=pin[0], media_id="pin")

            def placed() -> tuple[set[str], str]:
                resp = stub.TargetImage(req, timeout=30)
                return {p.campaign_id for p in resp.placements}, resp.rules_version

            first, v0 = placed()
            assert "rival-conquest" in first and "acme-own" not in first

            # 1. a new brand folder + a campaign for it: places once the reload is applied
            shutil.copytree(rules / "brands" / "rival", rules / "brands" / "newbrand")
            (rules / "campaigns" / "newbrand.yaml").write_text(
                "id: newbrand-camp\ntarget:\n  any:\n    - logo: {brand: newbrand}\n"
            )
            version = lambda: running.engine.targeter.snapshot.version  # noqa: E731
            _wait_for(lambda: version() != v0, "the newbrand reload")
            got, v1 = placed()
            assert "newbrand-camp" in got, got

            # 2. swapping acme's logo file for rival's: acme now matches the pin
            for f in (rules / "brands" / "acme").iterdir():
                f.unlink()
            shutil.copy(
                rules / "brands" / "rival" / "logo.png", rules / "brands" / "acme" / "l.png"
            )
            _wait_for(lambda: version() != v1, "the swapped acme logo")
            got, v2 = placed()
            assert "acme-own" in got, got
            assert running.engine.targeter.snapshot.version == v2

            # 3. a brand image whose header says 100000x100000: the reload is rejected whole
            rejected = sample("onscreen_rules_reloads_total", {"result": "rejected"}) or 0.0
            (rules / "brands" / "bomb").mkdir()
            (rules / "brands" / "bomb" / "logo.png").write_bytes(_png_header(100_000, 100_000))
            _wait_for(
                lambda: (
                    (sample("onscreen_rules_reloads_total", {"result": "rejected"}) or 0) > rejected
                ),
                "the bomb reload to be rejected",
            )
            assert not running.engine.holder.last_result.ok
            assert "100000x100000" in str(running.engine.holder.last_result.problems[0])
            got, v3 = placed()
            assert v3 == v2 and {"acme-own", "newbrand-camp", "rival-conquest"} <= got
            assert "bomb" not in running.engine.targeter.snapshot.rules.brands
    finally:
        loop.stop(running)


def test_a_request_keeps_the_snapshot_it_took_across_a_swap(pipeline, pin, tmp_path) -> None:
    rules = write_rules(tmp_path / "rules")
    targeter = Targeter(pipeline, load_rules(rules))
    before = targeter.snapshot
    shutil.rmtree(rules / "brands" / "rival")
    (rules / "campaigns" / "rival-conquest.yaml").unlink()
    after = targeter.swap(load_rules(rules))
    assert targeter.snapshot is after and after.version != before.version
    [old] = targeter.analyze_batch([pin[1]], before)
    [new] = targeter.analyze_batch([pin[1]])
    assert "rival" in {m.brand for m in old.logos}  # the frame was submitted with `before`
    assert "rival" not in {m.brand for m in new.logos}
    assert {p.campaign for p in targeter.place([old], media="pin", snapshot=before)} >= {
        "rival-conquest"
    }
    assert "rival-conquest" not in {p.campaign for p in targeter.place([old], media="pin")}


def test_a_snapshot_refuses_a_brand_image_over_the_pixel_limit(pipeline, tmp_path) -> None:
    rules = write_rules(tmp_path / "rules")
    (rules / "brands" / "rival" / "bomb.png").write_bytes(_png_header(100_000, 100_000))
    targeter = Targeter(pipeline, load_rules(write_rules(tmp_path / "good")))
    # the loader refuses it before anything is built; the snapshot that serves stays
    with pytest.raises(RulesError, match=r"bomb.png: 100000x100000 pixels by its header"):
        targeter.swap(load_rules(rules))
    assert targeter.snapshot.rules.root == (tmp_path / "good").resolve()


def test_serve_parses_the_rules_once(tmp_path, monkeypatch) -> None:
    import argparse

    import targeting.rules_loader as loader
    import targeting.rules_watch as watch
    from serving.commands import serve

    rules = write_rules(tmp_path / "rules")
    calls: list[Path] = []
    real = loader.load_rules

    def counting(path):  # noqa: ANN001, ANN202
        calls.append(Path(path))
        return real(path)

    monkeypatch.setattr(loader, "load_rules", counting)
    monkeypatch.setattr(watch, "load_rules", counting)
    parser = argparse.ArgumentParser()
    serve.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--rules", str(rules), "--port", "0"])
    config = serve.config_from_args(args)
    assert config.rules is not None and config.pipeline.brands_dir is None
    watch.RulesHolder(rules, initial=config.rules)
    assert calls == [rules]

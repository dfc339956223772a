"""Fault injection against real processes: the server killed with SIGKILL in the middle of
catalog upserts loses nothing it acknowledged and reopens cleanly; a model file corrupted in
place on disk (size and mtime kept, so only its bytes tell) is refused at start by its sha256.
(Rules edited into garbage and back while serving: tests/targeting/test_rules_watch.py; a
SIGKILLed catalog writer at random points: tests/vision/catalog/test_durability.py.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from serving._proto.onscreen.v1 import visual_search_pb2, visual_search_pb2_grpc
from tests.conftest import REPO, read_rgb
from tests.serving.rpc.grpc_fixtures import jpeg, start_serve, write_rules

pytestmark = pytest.mark.slow


def _catalog(root: Path, real_images) -> Path:
    from examples.catalog import write_catalog
    from serving.commands.cli import main

    feed = write_catalog(root / "feed")
    assert (
        main(["catalog", "build", str(feed), "--out", str(root / "catalog"), "--no-progress"]) == 0
    )
    return root / "catalog"


def test_sigkill_during_upserts_loses_nothing_acknowledged(tmp_path, real_images) -> None:
    rules = write_rules(tmp_path / "rules")
    catalog = _catalog(tmp_path, real_images)
    base = cv2.resize(read_rgb(real_images["coffee"]), (160, 120))
    acked: list[str] = []
    stop = threading.Event()

    def writer(address: str) -> None:
        with grpc.insecure_channel(address) as ch:
            stub = visual_search_pb2_grpc.VisualSearchStub(ch)
            for i in range(10_000):
                if stop.is_set():
                    return
                img = np.roll(base, i * 7, axis=1)
                item = visual_search_pb2.CatalogItem(
                    id=f"kill-{i}", image_bytes=jpeg(img, 80), metadata={"price": str(i)}
                )
                try:
                    resp = stub.UpsertItems(
                        visual_search_pb2.UpsertItemsRequest(items=[item]), timeout=30
                    )
                except grpc.RpcError:
                    return  # the server died under the call: not acknowledged
                assert not resp.errors
                acked.append(item.id)

    server = start_serve("--rules", str(rules), "--port", "0", "--no-watch", "--catalog",
                         str(catalog), "--catalog-save-interval", "1")  # fmt: skip
    try:
        t = threading.Thread(target=writer, args=(server.address,), daemon=True)
        t.start()
        deadline = time.monotonic() + 120
        while len(acked) < 12 and time.monotonic() < deadline:  # past a periodic snapshot too
            time.sleep(0.05)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(30)
        stop.set()
        t.join(30)
    finally:
        server.stop()
    assert len(acked) >= 12, "the writer did not get going"
    again = start_serve("--rules", str(rules), "--port", "0", "--no-watch", "--catalog",
                        str(catalog))  # fmt: skip
    try:
        with grpc.insecure_channel(again.address) as ch:
            stub = visual_search_pb2_grpc.VisualSearchStub(ch)
            for item_id in acked:  # every acknowledged item is there (NOT_FOUND otherwise)
                stub.SimilarItems(
                    visual_search_pb2.SimilarItemsRequest(item_id=item_id, k=1), timeout=30
                )
    finally:
        again.stop()


def test_a_model_file_corrupted_in_place_is_refused_at_start(tmp_path, real_images) -> None:
    from vision.weights import Manifest, resolve

    rules = write_rules(tmp_path / "rules")  # faces: the detector must load
    weights = tmp_path / "weights"
    weights.mkdir()
    spec = Manifest.load().get("nudenet-320n")
    good = resolve("nudenet-320n")
    shutil.copy2(good, weights / spec.file)
    env = {**os.environ, "ONSCREEN_WEIGHTS_DIR": str(weights), "PYTHONUNBUFFERED": "1"}
    # a first start verifies the file and leaves its sidecar (size + mtime + sha256)
    ok = subprocess.run([sys.executable, "-m", "serving.commands.cli", "weights", "list"],
                        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0 and (weights / f".{spec.file}.verified").exists(), (
        ok.stdout + ok.stderr
    )
    target = weights / spec.file
    st = target.stat()
    with target.open("r+b") as f:  # one bit flipped in the middle, size and mtime kept
        f.seek(st.st_size // 2)
        byte = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([byte[0] ^ 0x10]))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    proc = subprocess.run(
        [sys.executable, "-m", "serving.commands.cli", "serve", "--rules", str(rules),
         "--port", "0", "--no-watch"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert "nudenet-320n" in last and "does not match its sha256" in last
    assert "onscreen weights fetch nudenet-320n" in last

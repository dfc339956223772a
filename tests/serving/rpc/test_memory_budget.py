"""Memory bounded in bytes: images are priced from their header before decoding, refused at
once (RESOURCE_EXHAUSTED) over the decode budget or the queue, shrunk before they wait for the
model, and the server's RSS stays bounded under a burst of small-on-the-wire, huge-decoded PNGs.

The burst test runs ``onscreen serve`` in a subprocess and reads its peak RSS (``VmHWM``) from
/proc, so nothing of the test process is counted.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest

from serving._proto.onscreen.v1 import targeting_pb2, targeting_pb2_grpc
from serving.rpc.pixel_budget import (
    DECODE_BYTES_PER_PIXEL,
    MIN_DECODE_BUDGET_BYTES,
    MODEL_MAX_SIDE_PX,
    PixelBudget,
    decode_cost_bytes,
    decode_for_models,
    jpeg_reduce_for,
)
from tests.conftest import read_rgb
from tests.serving.rpc.grpc_fixtures import jpeg, start_serve, with_logo, write_rules
from vision.errors import Overloaded

BIG_SIDE_PX = 7000
"""Side of the burst's PNG: 147 MB decoded, ~0.2 MB on the wire."""
BURST = 40
"""Concurrent calls in a burst."""
MAX_RSS_GROWTH_BYTES = 3 * 2**30
"""Peak RSS growth allowed under the burst (the 1 GiB decode budget, the working frames, gRPC
buffers and the models' own scratch); the old server grew by ~8 GB."""
REFUSED_WITHIN_S = 1.5
"""A refused call must come back this fast after it was sent, seconds."""
JPEG_BURST = 20
"""Concurrent ~19 MiB JPEGs against --max-queue 8 (the old server answered its first
RESOURCE_EXHAUSTED to 100 of them only after 25 s: it decoded them all first)."""


def _status(pid: int) -> dict[str, int]:
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out[key] = int(value.split()[0]) * 1024
    return out


@pytest.fixture(scope="module")
def big_png() -> bytes:
    img = np.zeros((BIG_SIDE_PX, BIG_SIDE_PX, 3), np.uint8)
    for x in range(0, BIG_SIDE_PX, 350):
        cv2.circle(img, (x, BIG_SIDE_PX // 2), 300, (x % 255, 100, 200), -1)
    ok, buf = cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def big_pin(real_images) -> tuple[bytes, tuple[int, int]]:
    """The rival pin upscaled 4x: a large JPEG that must still place rival-conquest."""
    pin, _ = with_logo(read_rgb(real_images["bus"]), "rival")
    h, w = pin.shape[:2]
    big = cv2.resize(pin, (w * 4, h * 4), interpolation=cv2.INTER_CUBIC)
    return jpeg(big, 90), (w * 4, h * 4)


# --- units ------------------------------------------------------------------------------------


def test_the_budget_refuses_at_once_and_releases_after() -> None:
    budget = PixelBudget(MIN_DECODE_BUDGET_BYTES)
    with budget.reserve(MIN_DECODE_BUDGET_BYTES - 10):
        t0 = time.perf_counter()
        with pytest.raises(Overloaded, match="decode budget"), budget.reserve(11):
            pass
        assert time.perf_counter() - t0 < 0.01
        with budget.reserve(10):
            assert budget.used_bytes == MIN_DECODE_BUDGET_BYTES
    assert budget.used_bytes == 0
    with pytest.raises(ValueError, match="decode budget must be in"):
        PixelBudget(MIN_DECODE_BUDGET_BYTES - 1)


def test_big_jpegs_are_priced_and_decoded_reduced(big_pin) -> None:
    data, (w, h) = big_pin
    r = jpeg_reduce_for(w, h)
    assert r == 2 and max(w, h) // r >= MODEL_MAX_SIDE_PX
    assert decode_cost_bytes(data, "pin") == -(-w // r) * -(-h // r) * DECODE_BYTES_PER_PIXEL
    image, size = decode_for_models(data, "pin")
    assert size == (w, h)
    assert max(image.shape[:2]) == MODEL_MAX_SIDE_PX and image.dtype == np.uint8
    assert decode_cost_bytes(b"junk", "x") == 0  # the decoder refuses it with its own message


# --- a burst against a real server in a subprocess --------------------------------------------


def _burst(stub, image: bytes, n: int) -> list[tuple[grpc.StatusCode, float]]:  # noqa: ANN001
    """``n`` concurrent TargetImage calls: (code, seconds from send to answer) each."""
    results: list[tuple[grpc.StatusCode, float]] = []
    lock = threading.Lock()
    done = threading.Event()

    def call(i: int) -> None:
        t0 = time.monotonic()
        fut = stub.TargetImage.future(
            targeting_pb2.TargetImageRequest(image=image, media_id=f"b{i}"), timeout=300
        )

        def finished(f) -> None:  # noqa: ANN001
            err = f.exception()
            with lock:
                results.append((err.code() if err else grpc.StatusCode.OK, time.monotonic() - t0))
                if len(results) == n:
                    done.set()

        fut.add_done_callback(finished)

    for i in range(n):
        call(i)
    assert done.wait(300)
    return results


def test_a_burst_of_huge_pngs_is_refused_fast_and_rss_stays_bounded(
    tmp_path, big_png, big_pin
) -> None:
    rules = write_rules(tmp_path / "rules")
    server = start_serve("--rules", str(rules), "--port", "0", "--no-watch", "--max-queue", "8")
    proc, address = server.proc, server.address
    try:
        with grpc.insecure_channel(
            address, options=[("grpc.max_send_message_length", 64 * 2**20)]
        ) as ch:
            stub = targeting_pb2_grpc.TargetingStub(ch)
            before = _status(proc.pid)
            results = _burst(stub, big_png, BURST)
            after = _status(proc.pid)
            refused = [t for c, t in results if c == grpc.StatusCode.RESOURCE_EXHAUSTED]
            ok = [t for c, t in results if c == grpc.StatusCode.OK]
            growth = after["VmHWM"] - before["VmRSS"]
            print(
                f"\nburst of {BURST} {BIG_SIDE_PX}x{BIG_SIDE_PX} PNGs ({len(big_png)} bytes): "
                f"{len(ok)} ok, {len(refused)} refused, slowest refusal {max(refused):.2f} s; "
                f"RSS {before['VmRSS'] / 2**30:.2f} GiB -> peak {after['VmHWM'] / 2**30:.2f} "
                f"GiB, {after['VmRSS'] / 2**30:.2f} GiB after"
            )
            assert {c for c, _ in results} <= {
                grpc.StatusCode.OK,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
            }
            assert ok and refused
            assert max(refused) < REFUSED_WITHIN_S
            assert growth < MAX_RSS_GROWTH_BYTES, f"peak RSS grew by {growth / 2**30:.2f} GiB"
            # accepted work is still right: a large JPEG is decoded reduced and still places
            data, (w, h) = big_pin
            resp = stub.TargetImage(
                targeting_pb2.TargetImageRequest(image=data, include_facts=True), timeout=60
            )
            assert "rival-conquest" in {p.campaign_id for p in resp.placements}
            assert (resp.facts.width_px, resp.facts.height_px) == (w, h)
            # near-limit JPEGs: refused at once by the queue slots, not after decoding them all
            noise = np.random.default_rng(0).integers(0, 255, (3800, 3800, 3), np.uint8)
            big = jpeg(noise, 97)
            assert 15 * 2**20 < len(big) <= 20 * 2**20
            results = _burst(stub, big, JPEG_BURST)
            refused = [t for c, t in results if c == grpc.StatusCode.RESOURCE_EXHAUSTED]
            ok = [t for c, t in results if c == grpc.StatusCode.OK]
            print(
                f"burst of {JPEG_BURST} {len(big) / 2**20:.1f} MiB JPEGs: {len(ok)} ok (first "
                f"after {min(ok):.2f} s), {len(refused)} refused (first after {min(refused):.2f}"
                f" s, last {max(refused):.2f} s; the wire takes most of it), RSS after "
                f"{_status(proc.pid)['VmRSS'] / 2**30:.2f} GiB"
            )
            # refused on arrival, not after waiting behind the admitted work: the first refusal
            # comes before the admitted ones are all answered (uploads of 20 MiB each overlap
            # with the first answers, so "before the first answer" depends on the machine's load)
            assert ok and refused and min(refused) < max(ok)
    finally:
        proc.terminate()
        proc.wait(60)
        server.stop()

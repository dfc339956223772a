"""The short CI version of bench/bench_load.py: a real `onscreen serve` (example rules, a
store, the example catalog, real models) under a mix of TargetImage, SimilarItems and
LookupPlacements, then 4x overload, then normal load again. Shedding must be immediate, the
cheap calls must not queue behind the model, the server must recover at once and not grow."""

from __future__ import annotations

import pytest

from bench.bench_load import prepare, rss_mb, run_load
from tests.serving.rpc.grpc_fixtures import start_serve

pytestmark = pytest.mark.slow

ALLOWED = {"OK", "RESOURCE_EXHAUSTED"}


def test_load_overload_and_recovery(tmp_path) -> None:
    rules, store, catalog, pin, items = prepare(tmp_path, video=False)
    server = start_serve(
        "--rules", str(rules), "--port", "0", "--no-watch", "--store", str(store),
        "--catalog", str(catalog), "--max-queue", "4", "--max-wait-ms", "20",
    )  # fmt: skip
    try:
        steady, overload, recovery = run_load(
            server.address, server.proc.pid, clients=8, seconds=6, overload=4, pin=pin,
            item_ids=items, media_ids=["pin-coffee.jpg"],
        )  # fmt: skip
        assert server.proc.poll() is None, "".join(server.lines)
        final_rss = rss_mb(server.proc.pid)
    finally:
        server.stop()
    for phase in (steady, overload, recovery):
        assert {k.split(":")[1] for k in phase.codes} <= ALLOWED, phase.codes
        for cheap in ("SimilarItems", "LookupPlacements"):  # never behind the model's queue
            lat = phase.ok_latency_ms.get(cheap, [])
            assert lat and phase.pct(lat, 0.99) < 1500, (phase.name, cheap, phase.pct(lat, 0.99))
        assert phase.ok_latency_ms.get("TargetImage"), phase.codes  # the model still answers
    refused = overload.refused_latency_ms
    assert refused, overload.codes  # 32 callers against a queue of 4: shedding happens
    assert overload.pct(refused, 0.99) < 1000  # at once, not after waiting for the queue
    assert recovery.recovery_s() is not None and recovery.recovery_s() <= 2
    assert final_rss - steady.rss_after_mb < 400, (steady.rss_after_mb, final_rss)

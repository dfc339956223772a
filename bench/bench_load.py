"""Load, soak and overload against a real `onscreen serve` on loopback.

    .venv/bin/python bench/bench_load.py [--clients 64] [--seconds 60] [--overload 4]

The server runs in its own process (`onscreen serve` with the example rules, a store filled by
a scan and the example catalog, the real default models); the load generator is an asyncio
gRPC client in this process with ``--clients`` concurrent callers, each sending back to back a
mix of TargetImage (a 640 px pin, 50%), SimilarItems (by item id, 25%) and LookupPlacements
(25%). Three phases, one run:

1. **steady**: ``--clients`` callers for ``--seconds``;
2. **overload**: ``--overload`` x as many callers (fresh ones) for ``--seconds / 2``: the server
   must shed with RESOURCE_EXHAUSTED at once (refusals answered in milliseconds) and keep the
   p99 of accepted calls bounded;
3. **recovery**: back to ``--clients``; reported: the time from the start of the phase to the
   first second with no refusal (how long the queue takes to drain).

Per phase: calls/s, p50/p99 latency of accepted calls, p99 of refusals, counts by status code;
and the server's RSS at start, after each phase, and its peak. ``run_load`` is also what the
short CI test (tests/serving/rpc/test_load.py) runs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MIX = (("TargetImage", 0.5), ("SimilarItems", 0.25), ("LookupPlacements", 0.25))


@dataclass
class PhaseResult:
    name: str
    clients: int
    seconds: float
    codes: Counter = field(default_factory=Counter)
    ok_latency_ms: dict[str, list[float]] = field(default_factory=dict)
    refused_latency_ms: list[float] = field(default_factory=list)
    per_second_refused: Counter = field(default_factory=Counter)
    rss_after_mb: float = 0.0

    @property
    def calls(self) -> int:
        return sum(self.codes.values())

    def pct(self, values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        values = sorted(values)
        return values[min(len(values) - 1, int(q * len(values)))]

    def recovery_s(self) -> float | None:
        """Seconds from the phase start to the first whole second without a refusal."""
        for s in range(int(self.seconds) + 1):
            if self.per_second_refused.get(s, 0) == 0:
                return float(s)
        return None

    def row(self) -> dict[str, object]:
        out: dict[str, object] = {
            "phase": self.name,
            "clients": self.clients,
            "calls/s": round(self.calls / self.seconds, 1),
            "refused": sum(v for k, v in self.codes.items() if k.endswith("RESOURCE_EXHAUSTED")),
            "refused p99 ms": round(self.pct(self.refused_latency_ms, 0.99), 1),
            "codes": dict(sorted((k, v) for k, v in self.codes.items())),
            "server RSS MB": round(self.rss_after_mb),
        }
        for method, _ in MIX:
            lat = self.ok_latency_ms.get(method, [])
            out[f"{method} p50 ms"] = round(self.pct(lat, 0.5), 1)
            out[f"{method} p99 ms"] = round(self.pct(lat, 0.99), 1)
        return out


def rss_mb(pid: int, key: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def _phase(
    address: str, name: str, clients: int, seconds: float, pin: bytes, item_ids: list[str],
    media_ids: list[str], pid: int, seed: int,
) -> PhaseResult:  # fmt: skip
    import grpc

    from serving._proto.onscreen.v1 import (
        targeting_pb2,
        targeting_pb2_grpc,
        visual_search_pb2,
        visual_search_pb2_grpc,
    )

    result = PhaseResult(name, clients, seconds)
    t_start = time.monotonic()
    stop = t_start + seconds
    async with grpc.aio.insecure_channel(address) as ch:
        targeting = targeting_pb2_grpc.TargetingStub(ch)
        search = visual_search_pb2_grpc.VisualSearchStub(ch)

        async def caller(i: int) -> None:
            rng = random.Random(seed * 1000 + i)
            methods, weights = zip(*MIX, strict=True)
            while time.monotonic() < stop:
                method = rng.choices(methods, weights)[0]
                t0 = time.monotonic()
                try:
                    if method == "TargetImage":
                        await targeting.TargetImage(
                            targeting_pb2.TargetImageRequest(image=pin), timeout=30
                        )
                    elif method == "SimilarItems":
                        await search.SimilarItems(
                            visual_search_pb2.SimilarItemsRequest(
                                item_id=rng.choice(item_ids), k=5
                            ),
                            timeout=30,
                        )
                    else:
                        await targeting.LookupPlacements(
                            targeting_pb2.LookupPlacementsRequest(
                                media_id=rng.choice(media_ids), t_s=rng.uniform(0, 20)
                            ),
                            timeout=30,
                        )
                    code = "OK"
                except grpc.aio.AioRpcError as exc:
                    code = exc.code().name
                ms = (time.monotonic() - t0) * 1000
                result.codes[f"{method}:{code}"] += 1
                if code == "OK":
                    result.ok_latency_ms.setdefault(method, []).append(ms)
                elif code == "RESOURCE_EXHAUSTED":
                    result.refused_latency_ms.append(ms)
                    result.per_second_refused[int(t0 - t_start)] += 1
                    await asyncio.sleep(0.01)  # a client backs off a little, as told to

        await asyncio.gather(*(caller(i) for i in range(clients)))
    result.rss_after_mb = rss_mb(pid)
    return result


def run_load(
    address: str, pid: int, *, clients: int, seconds: float, overload: int, pin: bytes,
    item_ids: list[str], media_ids: list[str],
) -> list[PhaseResult]:  # fmt: skip
    """The three phases against a running server (``pid`` for its RSS)."""

    async def go() -> list[PhaseResult]:
        args = (pin, item_ids, media_ids, pid)
        return [
            await _phase(address, "steady", clients, seconds, *args, seed=1),
            await _phase(address, "overload", clients * overload, seconds / 2, *args, seed=2),
            await _phase(address, "recovery", clients, seconds / 2, *args, seed=3),
        ]

    return asyncio.run(go())


def prepare(root: Path, *, video: bool = True) -> tuple[Path, Path, Path, bytes, list[str]]:
    """Example media scanned into a store (the demo video too unless ``video`` is False), the
    example catalog built: (rules, store, catalog, the pin's JPEG at 640 px, the item ids)."""
    import cv2

    from examples.build_media import RULES, build_pin, build_video
    from examples.catalog import ITEMS, write_catalog
    from serving.commands.cli import main as cli

    media = root / "media"
    media.mkdir()
    if video:
        build_video(media / "demo.mp4")
    build_pin(media / "pin-coffee.jpg")
    store = root / "store.db"
    assert cli(["scan", str(media), "--rules", str(RULES), "--out", str(root / "p.jsonl"),
                "--store", str(store), "--quiet"]) == 0  # fmt: skip
    feed = write_catalog(root / "feed")
    assert (
        cli(["catalog", "build", str(feed), "--out", str(root / "catalog"), "--no-progress"]) == 0
    )
    img = cv2.imread(str(media / "pin-coffee.jpg"))
    ok, buf = cv2.imencode(".jpg", cv2.resize(img, (640, 480)), [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return RULES, store, root / "catalog", buf.tobytes(), [it.id for it in ITEMS]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--overload", type=int, default=4)
    ap.add_argument("--max-queue", type=int, default=16, help="the server's --max-queue")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from tests.serving.rpc.grpc_fixtures import start_serve

    with tempfile.TemporaryDirectory() as tmp:
        rules, store, catalog, pin, items = prepare(Path(tmp))
        server = start_serve(
            "--rules", str(rules), "--port", "0", "--no-watch", "--store", str(store),
            "--catalog", str(catalog), "--max-queue", str(args.max_queue), "--max-wait-ms", "50",
        )  # fmt: skip
        try:
            start_rss = rss_mb(server.proc.pid)
            phases = run_load(
                server.address, server.proc.pid, clients=args.clients, seconds=args.seconds,
                overload=args.overload, pin=pin, item_ids=items,
                media_ids=["demo.mp4", "pin-coffee.jpg"],
            )  # fmt: skip
            peak = rss_mb(server.proc.pid, "VmHWM")
        finally:
            server.stop()
    rows = [p.row() for p in phases]
    if args.json:
        print(json.dumps({"start_rss_mb": start_rss, "peak_rss_mb": peak, "phases": rows}))
        return 0
    print(f"command: .venv/bin/python bench/bench_load.py --clients {args.clients} "
          f"--seconds {args.seconds:g} --overload {args.overload} --max-queue {args.max_queue}")  # fmt: skip
    print(f"server RSS at start {start_rss:.0f} MB, peak {peak:.0f} MB")
    cols = ["phase", "clients", "calls/s", "refused", "refused p99 ms"]
    cols += [f"{m} {q} ms" for m, _ in MIX for q in ("p50", "p99")] + ["server RSS MB"]
    print("| " + " | ".join(cols) + " |")
    print("|---" * len(cols) + "|")
    for r in rows:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    for p in phases:
        print(f"{p.name}: {dict(sorted(p.codes.items()))}")
    rec = phases[2].recovery_s()
    print(f"recovery: first second without a refusal after overload: "
          f"{'never' if rec is None else f'{rec:.0f} s'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())

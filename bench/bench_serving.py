"""Served throughput vs raw in-process throughput, and micro-batching vs batch size 1.

    .venv/bin/python bench/bench_serving.py [--clients 16] [--seconds 10] [--clip off|random]

One run measures, side by side on the same pipeline and the same JPEG (bus.jpg with a logo):

1. raw: ``analyzer.analyze_batch`` on 16 pre-decoded frames in-process (model only), and
   decode + analyze (what one request really costs the server's CPU);
2. served: ``onscreen serve`` in this process (the real ``start_server``: gRPC, decode thread,
   micro-batcher, matching) under N concurrent TargetImage clients running in a *separate
   process* (so the load generator does not share this process's GIL), at max_batch 16 and 1.

Prints the ratios the issue asks for: served / raw and batched / unbatched.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("YOLO_OFFLINE", "1")


def _load(address: str, data: bytes, clients: int, seconds: float, out: mp.Queue) -> None:
    """Child process: N threads each sending TargetImage back to back for ``seconds``."""
    import grpc

    from serving._proto.onscreen.v1 import targeting_pb2, targeting_pb2_grpc

    with grpc.insecure_channel(address) as ch:
        stub = targeting_pb2_grpc.TargetingStub(ch)
        req = targeting_pb2.TargetImageRequest(image=data, media_id="bench")
        stub.TargetImage(req, timeout=120)  # connection + first call outside the clock
        counts = [0] * clients
        errors = [0] * clients
        stop = time.perf_counter() + seconds

        def worker(i: int) -> None:
            while time.perf_counter() < stop:
                try:
                    stub.TargetImage(req, timeout=120)
                    counts[i] += 1
                except grpc.RpcError:
                    errors[i] += 1

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        out.put((sum(counts) / (time.perf_counter() - t0), sum(errors)))


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--semantic", choices=("off", "random"), default="off")
    ap.add_argument("--max-wait-ms", type=float, default=50.0)
    args = ap.parse_args()

    import torch

    from examples.build_media import package_image
    from tests.serving.rpc.grpc_fixtures import (
        ServerThread,
        jpeg,
        local_config,
        with_logo,
        write_rules,
    )
    from vision.image_decode import decode_image, read_image_file
    from vision.pipeline import PipelineConfig, build_pipeline
    from vision.types import Frame

    root = Path(tempfile.mkdtemp(prefix="onscreen-bench-"))
    rules = write_rules(root / "rules")
    pipe = build_pipeline(
        PipelineConfig(brands_dir=rules / "brands", semantic=args.semantic, iab=False)
    )
    img, _ = with_logo(read_image_file(package_image("ultralytics", "assets", "bus.jpg")))
    data = jpeg(img)
    frames = [Frame("raw", 0.0, decode_image(data), reason="image") for _ in range(16)]

    def rate(fn, per_call: int) -> float:
        fn()
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            fn()
            n += per_call
        return n / (time.perf_counter() - t0)

    raw = rate(lambda: pipe.analyzer.analyze_batch(frames), 16)
    raw_decode = rate(
        lambda: pipe.analyzer.analyze_batch(
            [Frame("raw", 0.0, decode_image(data), reason="image") for _ in range(16)]
        ),
        16,
    )
    served: dict[int, tuple[float, int, int]] = {}
    loop = ServerThread()
    ctx = mp.get_context("spawn")
    for max_batch in (16, 1):
        cfg = local_config(
            rules, max_batch=max_batch, max_wait_ms=args.max_wait_ms, max_queue=4 * args.clients
        )
        server = loop.start(cfg, pipe)
        q: mp.Queue = ctx.Queue()
        p = ctx.Process(target=_load, args=(server.address, data, args.clients, args.seconds, q))
        p.start()
        rps, errors = q.get(timeout=args.seconds + 300)
        p.join()
        served[max_batch] = (rps, errors, server.engine.batcher.batches)
        loop.stop(server)
    loop.close()

    print(
        f"serving throughput, TargetImage of a {len(data) // 1024} KiB JPEG (810x1080), "
        f"semantic={args.semantic}, {args.clients} clients in a separate process, {args.seconds:g} s each, "
        f"torch {torch.__version__}, {os.cpu_count()} cpus, {platform.machine()}"
    )
    print(
        f"command: .venv/bin/python bench/bench_serving.py --clients {args.clients} "
        f"--seconds {args.seconds:g} --semantic {args.semantic} --max-wait-ms {args.max_wait_ms:g}"
    )
    print(f"raw analyze_batch(16), pre-decoded      {raw:8.1f} frames/s")
    print(f"raw decode + analyze_batch(16)          {raw_decode:8.1f} frames/s")
    for mb, (rps, errors, batches) in served.items():
        print(
            f"served, max_batch {mb:<2}                    {rps:8.1f} req/s  ({errors} errors, {batches} batches)"
        )
    b16, b1 = served[16][0], served[1][0]
    print(f"ratio served(16) / raw (model only)     {b16 / raw:8.2f}")
    print(f"ratio served(16) / raw (decode+model)   {b16 / raw_decode:8.2f}")
    print(f"ratio batched / unbatched (16 vs 1)     {b16 / b1:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Nothing acknowledged is lost: SIGKILL a writer at random moments, reopen, compare.

A fork server (``crash_writer.py``) runs writers that upsert, delete and snapshot forever,
logging ``begin``/``ack`` around every change. After each kill the catalog is reopened and must
hold exactly the acknowledged history, plus *all or nothing* of the one change in flight.
The same directory is reused across kills, so recovering from a crash that hit a recovery, a
log replay or a snapshot is tested too.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from tests.vision.catalog.crash_writer import DIM, SPACE
from tests.vision.catalog.vectors import vector_for
from vision.catalog import Catalog

KILLS = 24
SEED = 20261202


def _apply(state: dict[str, float], op: dict) -> dict[str, float]:
    state = dict(state)
    if op["op"] == "upsert":
        for i in op["ids"]:
            state[i] = float(op["price"])
    elif op["op"] == "delete":
        for i in op["ids"]:
            state.pop(i, None)
    return state


def _wait_for_ack(log: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if log.exists() and b"\nack " in b"\n" + log.read_bytes():
            return
        time.sleep(0.005)
    raise AssertionError(f"the writer acknowledged nothing in {timeout_s} s")


def _read_state(directory: Path) -> dict[str, float]:
    # create=True: a kill before the first manifest was written leaves an empty directory
    with Catalog.open(directory, space_id=SPACE, dim=DIM, create=True) as cat:
        state = {}
        for item_id in cat.ids():
            item = cat.get(item_id)
            assert item is not None and item.price is not None
            state[item_id] = item.price
            np.testing.assert_allclose(cat.vector(item_id), vector_for(item_id, DIM), atol=1e-6)
        # the index agrees with the item map: every item finds itself first
        for item_id in list(state)[:20]:
            top = cat.search(vector_for(item_id, DIM), 1)[0]
            assert top[0].item.id == item_id
    return state


def test_sigkill_at_random_points_loses_nothing_acknowledged(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    directory = tmp_path / "cat"
    server = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("crash_writer.py"))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    state: dict[str, float] = {}
    in_flight_seen = acked_total = 0
    try:
        for kill in range(KILLS):
            log = tmp_path / f"log-{kill}.txt"
            server.stdin.write(f"{directory} {SEED + kill} {log}\n")
            server.stdin.flush()
            pid = int(server.stdout.readline())
            if rng.random() < 0.25:  # anywhere, opening and log replay included
                time.sleep(rng.uniform(0.0, 0.3))
            else:  # while writing: wait (load-independent) for the first ack, then a bit
                _wait_for_ack(log)
                time.sleep(rng.uniform(0.0, 0.15))
            os.kill(pid, signal.SIGKILL)
            assert server.stdout.readline().strip() == "done"

            lines = log.read_text().splitlines() if log.exists() else []
            begun = None
            for line in lines:
                kind, op = line.split(" ", 1)
                if kind == "begin":
                    begun = json.loads(op)
                else:
                    assert json.loads(op) == begun
                    state = _apply(state, begun)
                    acked_total += 1
                    begun = None
            actual = _read_state(directory)
            if begun is not None and actual != state:
                # the change in flight was durable but its ack never printed: all of it, then
                state = _apply(state, begun)
                in_flight_seen += 1
            assert actual == state, f"after kill {kill}: catalog differs from acknowledged history"
    finally:
        server.stdin.close()
        server.wait(timeout=10)
        server.stdout.close()
    assert acked_total >= KILLS  # the writers really got work done between kills
    print(f"{KILLS} kills, {acked_total} acknowledged changes, {in_flight_seen} in-flight durable")

"""A fork server for the crash-kill test (run as a script, not collected by pytest).

It imports the catalog once, then for each stdin line ``DIR SEED LOGFILE`` forks a writer that
opens ``DIR`` and changes it forever (upserts, deletes, snapshots), appending to ``LOGFILE``
``begin <op>`` before each change and ``ack <op>`` after it returned. It prints the writer's pid;
the test SIGKILLs that pid at a random moment, and this server prints ``done`` once reaped.
Forking saves the ~1 s interpreter + FAISS start per kill that would blow the CI time budget.
"""

from __future__ import annotations

import json
import os
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from tests.vision.catalog.vectors import vectors_for  # noqa: E402
from vision.catalog import Catalog, CatalogItem, IndexConfig  # noqa: E402

DIM = 32
SPACE = "crash-test"


def writer(directory: Path, seed: int, log_path: Path) -> None:
    rng = random.Random(seed)
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def note(kind: str, op: dict[str, object]) -> None:
        os.write(log, f"{kind} {json.dumps(op)}\n".encode())

    cat = Catalog.open(
        directory, space_id=SPACE, dim=DIM, create=True, config=IndexConfig(hnsw_min_items=40)
    )
    n = 0
    while True:
        n += 1
        roll = rng.random()
        if roll < 0.6 or len(cat) < 5:
            ids = [f"s{seed}-{n}-{j}" for j in range(rng.randint(1, 6))]
            if len(cat) and rng.random() < 0.3:
                ids.append(rng.choice(cat.ids()))  # replace an existing item
            op = {"op": "upsert", "ids": ids, "price": n}
            note("begin", op)
            items = [CatalogItem(id=i, category="c", price=float(n)) for i in ids]
            cat.upsert(items, vectors_for(ids, DIM) * (1.0 + (n % 3)))
        elif roll < 0.9:
            ids = rng.sample(cat.ids(), min(len(cat), rng.randint(1, 4)))
            op = {"op": "delete", "ids": ids}
            note("begin", op)
            cat.delete(ids)
        else:
            op = {"op": "save"}
            note("begin", op)
            cat.save()
        note("ack", op)


def main() -> None:
    for line in sys.stdin:
        directory, seed, log_path = line.split()
        pid = os.fork()
        if pid == 0:
            try:
                writer(Path(directory), int(seed), Path(log_path))
            finally:
                os._exit(1)
        print(pid, flush=True)
        os.waitpid(pid, 0)
        print("done", flush=True)


if __name__ == "__main__":
    main()

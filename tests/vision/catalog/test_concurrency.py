"""Readers during writes: searches running on threads while a writer upserts, deletes and
snapshots always see a consistent catalog (every stable item finds itself first, every hit's
metadata belongs to its vector) and never fail."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np

from tests.vision.catalog.vectors import vector_for, vectors_for
from vision.catalog import Catalog, CatalogItem, IndexConfig

DIM = 32
READERS = 3
WRITE_ROUNDS = 60


def test_readers_stay_consistent_while_a_writer_upserts_and_deletes(tmp_path: Path) -> None:
    cat = Catalog.open(
        tmp_path / "c", space_id="s", dim=DIM, create=True, config=IndexConfig(hnsw_min_items=100)
    )
    stable = [f"stable-{j}" for j in range(50)]
    cat.upsert([CatalogItem(id=i, title=i) for i in stable], vectors_for(stable, DIM))
    stop = threading.Event()
    errors: list[BaseException] = []
    searches = [0] * READERS

    def reader(r: int) -> None:
        rng = np.random.default_rng(r)
        try:
            while not stop.is_set():
                target = stable[int(rng.integers(len(stable)))]
                hits = cat.search(vector_for(target, DIM), 5)[0]
                assert hits[0].item.id == target and abs(hits[0].score - 1.0) < 1e-4
                for h in hits:  # the title written with the vector is the id of that vector
                    assert h.item.title == h.item.id
                    assert (
                        abs(float(vector_for(h.item.id, DIM) @ vector_for(target, DIM)) - h.score)
                        < 1e-4
                    )
                searches[r] += 1
        except BaseException as e:  # reported by the main thread
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(r,)) for r in range(READERS)]
    for t in threads:
        t.start()
    try:
        for n in range(WRITE_ROUNDS):
            ids = [f"churn-{n}-{j}" for j in range(5)]
            cat.upsert([CatalogItem(id=i, title=i) for i in ids], vectors_for(ids, DIM))
            if n >= 2:
                cat.delete([f"churn-{n - 2}-{j}" for j in range(5)])
            if n % 20 == 19:
                cat.save(compact=True)
            time.sleep(0.001)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    cat.close()
    assert not errors, errors[0]
    assert min(searches) > 10  # the readers really ran during the writes
    assert all(not t.is_alive() for t in threads)

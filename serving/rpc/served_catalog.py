"""The catalog a server answers VisualSearch from: the open ``vision.catalog.Catalog``, the
micro-batcher of its visual features, and the periodic snapshot.

Why a batcher of its own: visual features are another model call than the targeting models'
(``SemanticModel.visual_features``, not ``analyze_batch``), so they cannot share a batch; but
the models are not thread-safe, so the features batcher borrows the targeting batcher's ONE
worker thread (``MicroBatcher(executor=...)``): the two kinds of batches take turns on it, and a
model never runs on two threads at once.

Why snapshots: every acknowledged write is a write-ahead-log record that each open replays; a
server that only appends would take longer to start each day. So unsaved writes are snapshotted
(``Catalog.save``: a new generation, an empty log) every ``save_interval_s`` when there were
any, and once more on a graceful shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from serving.rpc.batcher import MicroBatcher

if TYPE_CHECKING:  # FAISS loads only on a server that opens a catalog
    from vision.catalog import Catalog, VisualModel

log = logging.getLogger(__name__)


def features_isolating(
    model: VisualModel, images: Sequence[np.ndarray]
) -> list[np.ndarray | Exception]:
    """``model.visual_features`` over a batch, one (dim,) row per image; when the batch fails
    each image is retried alone so one bad image fails only its own request."""
    try:
        return list(_features(model, images))
    except Exception:
        if len(images) == 1:
            raise
        log.warning("a batch of %d catalog images failed; retrying them one by one", len(images))
    out: list[np.ndarray | Exception] = []
    for image in images:
        try:
            out.extend(_features(model, [image]))
        except Exception as exc:
            out.append(exc)
    return out


def _features(model: VisualModel, images: Sequence[np.ndarray]) -> list[np.ndarray]:
    vectors = np.asarray(model.visual_features(list(images)), dtype=np.float32)
    if vectors.shape != (len(images), model.dim):
        raise RuntimeError(
            f"visual features of {len(images)} images came back as {vectors.shape}, "
            f"not ({len(images)}, {model.dim})"
        )
    return list(vectors)


class ServedCatalog:
    """An open catalog with its features batcher and snapshot task; ``close`` saves and
    releases it. Create it on the server's event loop (the snapshot task runs there)."""

    def __init__(
        self,
        catalog: Catalog,
        model: VisualModel,
        features: MicroBatcher[np.ndarray, np.ndarray],
        save_interval_s: float,
    ) -> None:
        self.catalog = catalog
        self.model = model
        self.features = features
        self.save_interval_s = save_interval_s
        self._unsaved = catalog.stats().log_records  # a log left by the last run counts too
        self._save_lock = asyncio.Lock()
        self._saver: asyncio.Task[None] | None = None

    @property
    def unsaved_writes(self) -> int:
        """Writes acknowledged since the last snapshot (what the next open would replay)."""
        return self._unsaved

    def wrote(self) -> None:
        """Count one acknowledged write (an upsert or delete batch) towards the next snapshot."""
        self._unsaved += 1

    def start(self) -> None:
        """Start the periodic snapshot task."""
        if self._saver is None:
            self._saver = asyncio.get_running_loop().create_task(
                self._save_periodically(), name="onscreen-catalog-save"
            )

    async def save_if_changed(self) -> bool:
        """Snapshot the catalog when writes were acknowledged since the last one; True if it
        saved. Runs ``Catalog.save`` on a thread: searches and writes go on meanwhile."""
        async with self._save_lock:
            pending = self._unsaved
            if not pending:
                return False
            await asyncio.to_thread(self.catalog.save)
            self._unsaved -= pending
            log.info("catalog snapshot saved (%d write(s) since the last)", pending)
            return True

    async def _save_periodically(self) -> None:
        while True:
            await asyncio.sleep(self.save_interval_s)
            try:
                await self.save_if_changed()
            except Exception as exc:  # the log still holds every write: retry next interval
                log.error("catalog snapshot failed (the log keeps the writes): %s", exc)

    async def close(self, timeout_s: float | None = None) -> None:
        """Stop the snapshot task, finish the features batcher, save unsaved writes, release
        the catalog (its directory lock)."""
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
            self._saver = None
        await self.features.close(timeout_s=timeout_s)
        try:
            await self.save_if_changed()
        except Exception as exc:
            log.error("catalog snapshot on shutdown failed (the log keeps the writes): %s", exc)
        finally:
            self.catalog.close()

"""The catalog: items + vectors + filters, durable (write-ahead log + snapshots), safe to read
while it is written.

A change is **acknowledged only when durable**: ``upsert`` and ``delete`` append one log record
(fsynced) *before* touching memory and return only after both; a batch is one record, so after
a crash it is either wholly present or wholly absent. ``open`` loads the snapshot named by the
manifest (checked file by file) and replays the log on top. ``save`` writes a new snapshot
generation (rebuilding the index without tombstones when they are many, and switching flat /
HNSW by size) and starts a new, empty log.

Threads: searches share a readers-writer lock; writes are serialized by a mutex and take the
exclusive side only for the in-memory apply (the fsync happens before, while readers go on).
Processes: one writer per directory (an exclusive ``flock`` on ``LOCK``); a read-only open takes
no lock and sees the directory as it was when opened.
"""

from __future__ import annotations

import fcntl
import json
import os
import struct
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from vision.catalog.filters import CatalogFilter, MetadataColumns
from vision.catalog.index import KINDS, IndexConfig, IndexKind, VectorIndex, normalized
from vision.catalog.items import CatalogItem, check_item_id
from vision.catalog.limits import (
    DEDUP_FETCH_FACTOR,
    DEFAULT_COMPACT_FRACTION,
    MAX_K,
    MAX_QUERY_BATCH,
)
from vision.catalog.locks import ReadWriteLock
from vision.catalog.query import SearchHit, collapse_near_duplicates
from vision.catalog.snapshot import (
    FileEntry,
    Manifest,
    read_checked,
    read_manifest,
    sha256_hex,
    write_durably,
    write_manifest,
)
from vision.catalog.wal import WriteAheadLog, fsync_dir, read_log
from vision.errors import CatalogError, InvalidArgument, NotFound

if TYPE_CHECKING:
    from vision.semantic import SemanticModel

_OP_UPSERT = b"U"
_OP_DELETE = b"D"
_U32 = struct.Struct("<I")


class VisualModel(Protocol):
    """What the catalog needs from a model: its space and ``visual_features``.

    ``visual_features(images)``: a list of (H, W, 3) uint8 RGB arrays -> (N, dim) float32,
    L2-normalized rows. ``space_id`` names the vector space (model + weights + preprocessing):
    vectors of two spaces are not comparable, so an index remembers the space it was built in.
    """

    @property
    def space_id(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def visual_features(self, images: Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class VisualFeatures:
    """A semantic model's appearance features as a ``VisualModel``: the space is the model's
    own id plus ``/visual`` (its semantic vectors are another space), the width its
    ``visual_dim``. Every catalog made by onscreen's commands and server goes through this."""

    model: SemanticModel

    @property
    def space_id(self) -> str:
        return f"{self.model.model_id}/visual"

    @property
    def dim(self) -> int:
        return self.model.visual_dim

    def visual_features(self, images: Sequence[np.ndarray]) -> np.ndarray:
        return self.model.visual_features(images)


@dataclass(frozen=True)
class CatalogStats:
    """What ``onscreen catalog stats`` prints."""

    path: str
    space_id: str
    dim: int
    kind: str
    compression: str
    items: int
    tombstones: int
    generation: int
    log_records: int
    """Changes acknowledged since the last snapshot (replayed on the next open)."""
    disk_bytes: int

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _names(generation: int) -> tuple[str, str, str]:
    g = f"{generation:06d}"
    return f"index-{g}.faiss", f"items-{g}.jsonl", f"wal-{g}.log"


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise InvalidArgument(f"k must be an integer from 1 to {MAX_K}, got {k!r}")
    return k


class Catalog:
    """An open catalog directory. Use ``Catalog.open`` (or ``Catalog.for_model``)."""

    # -- opening ----------------------------------------------------------------------------

    @classmethod
    def for_model(
        cls, path: Path, model: VisualModel, *, readonly: bool = False, create: bool = False
    ) -> Catalog:
        """``open`` with the model's space id and dimension."""
        return cls.open(
            path, space_id=model.space_id, dim=model.dim, readonly=readonly, create=create
        )

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        space_id: str,
        dim: int,
        readonly: bool = False,
        create: bool = False,
        config: IndexConfig | None = None,
    ) -> Catalog:
        """Same as ``Catalog(path, ...)``: open (or with ``create``, create) a catalog."""
        return cls(
            path, space_id=space_id, dim=dim, readonly=readonly, create=create, config=config
        )

    def __init__(
        self,
        path: Path,
        *,
        space_id: str,
        dim: int,
        readonly: bool = False,
        create: bool = False,
        config: IndexConfig | None = None,
    ) -> None:
        """Open (or with ``create``, create) the catalog in directory ``path``.

        ``space_id`` and ``dim`` must be those the catalog was built with: vectors of another
        model are meaningless against it, so a mismatch is a ``CatalogError``. ``config`` applies
        to a new catalog; an existing one keeps the config in its manifest.
        """
        if not space_id or not isinstance(space_id, str):
            raise CatalogError(f"space_id must be a non-empty string, got {space_id!r}")
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise CatalogError(f"dim must be a positive integer, got {dim!r}")
        self.path = Path(path)
        self.readonly = readonly
        self._rw = ReadWriteLock()
        self._write_mutex = threading.Lock()
        self._lock_fd = -1
        self._wal: WriteAheadLog | None = None
        if not self.path.is_dir():
            if not create:
                raise CatalogError(f"no catalog at {self.path} (not a directory)")
            if readonly:
                raise CatalogError(f"cannot create catalog {self.path} read-only")
            self.path.mkdir(parents=True)
            fsync_dir(self.path.parent)
        try:
            if not readonly:
                self._take_lock()
            manifest = read_manifest(self.path)
            if manifest is None:
                if not create:
                    raise CatalogError(f"{self.path} is not a catalog (no MANIFEST.json)")
                if readonly:
                    raise CatalogError(f"cannot create catalog {self.path} read-only")
                leftovers = [
                    p.name
                    for p in self.path.iterdir()
                    if p.name.startswith(("index-", "items-"))
                    or (p.name.startswith("wal-") and p.stat().st_size > 0)
                ]
                if leftovers:  # data without its manifest is damage, not an empty catalog
                    raise CatalogError(
                        f"{self.path} holds catalog files ({', '.join(sorted(leftovers))}) but no "
                        "MANIFEST.json: restore the directory rather than start over"
                    )
                manifest = self._initial_manifest(space_id, dim, config or IndexConfig())
            if manifest.space_id != space_id or manifest.dim != dim:
                raise CatalogError(
                    f"catalog {self.path} was built with model space {manifest.space_id!r} "
                    f"(dim {manifest.dim}), not {space_id!r} (dim {dim}): its vectors are not "
                    "comparable; rebuild the catalog with this model or open it with the other"
                )
            self._load(manifest)
        except BaseException:
            self.close()
            raise

    def _take_lock(self) -> None:
        lock = self.path / "LOCK"
        self._lock_fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = -1
            raise CatalogError(
                f"catalog {self.path} is open for writing by another process "
                "(open it read-only, or stop the other writer)"
            ) from None

    def _initial_manifest(self, space_id: str, dim: int, config: IndexConfig) -> Manifest:
        wal = _names(0)[2]
        manifest = Manifest(
            space_id=space_id, dim=dim, generation=0, kind="flat", config=config.to_json(),
            items=0, stored=0, next_iid=0, files=(), wal=wal,
        )  # fmt: skip
        write_manifest(self.path, manifest)
        return manifest

    def _load(self, manifest: Manifest) -> None:
        try:
            config = IndexConfig(**manifest.config)
        except (TypeError, ValueError) as e:
            raise CatalogError(f"{self.path}: manifest config is invalid: {e}") from e
        if manifest.kind not in KINDS:
            raise CatalogError(f"{self.path}: manifest index kind {manifest.kind!r} is unknown")
        kind: IndexKind = "hnsw" if manifest.kind == "hnsw" else "flat"
        self.space_id = manifest.space_id
        self.dim = manifest.dim
        self.config = config
        self._generation = manifest.generation
        self._next_iid = manifest.next_iid
        self._items: dict[int, CatalogItem] = {}
        self._iid_of: dict[str, int] = {}
        self._columns = MetadataColumns()
        index_entry, items_entry = manifest.file("index-"), manifest.file("items-")
        if (index_entry is None) != (items_entry is None):
            raise CatalogError(f"{self.path}: manifest names only one of the index and items files")
        if index_entry is None or items_entry is None:
            self._index = VectorIndex(self.dim, kind, config)
        else:
            items_data = read_checked(self.path, items_entry)
            index_data = read_checked(self.path, index_entry)
            for n, line in enumerate(items_data.decode().splitlines(), 1):
                try:
                    obj = json.loads(line)
                    iid = int(obj.pop("iid"))
                    self._put(iid, CatalogItem.from_json(obj))
                except (ValueError, KeyError, TypeError) as e:
                    raise CatalogError(f"{self.path / items_entry.name}:{n}: bad item: {e}") from e
            live = np.fromiter(self._items, dtype=np.int64, count=len(self._items))
            try:
                self._index = VectorIndex.from_bytes(index_data, self.dim, kind, config, live)
            except (ValueError, RuntimeError) as e:
                raise CatalogError(f"{self.path / index_entry.name}: unusable index: {e}") from e
            if len(self._items) != manifest.items or self._index.n_stored != manifest.stored:
                raise CatalogError(
                    f"{self.path}: snapshot holds {len(self._items)} items / "
                    f"{self._index.n_stored} vectors, the manifest says {manifest.items} / "
                    f"{manifest.stored}"
                )
        self._wal_path = self.path / manifest.wal
        replay = read_log(self._wal_path)
        for record in replay.records:
            self._apply(record)
        self._log_records = len(replay.records)
        self._manifest = manifest
        if not self.readonly:
            self._wal = WriteAheadLog(self._wal_path, replay.good_bytes)
            self._remove_stray_files(manifest)

    def _remove_stray_files(self, manifest: Manifest) -> None:
        """Files of an unfinished snapshot (a crash before its manifest) or of a replaced one."""
        keep = {f.name for f in manifest.files} | {manifest.wal, "MANIFEST.json", "LOCK"}
        for p in self.path.iterdir():
            stray = p.name.startswith(("index-", "items-", "wal-", ".")) and ".tmp-" in p.name
            old = p.name.split("-")[0] in ("index", "items", "wal") and p.name not in keep
            if (stray or old) and p.is_file():
                p.unlink()

    # -- applying changes (log replay and live writes share this) ---------------------------

    def _put(self, iid: int, item: CatalogItem) -> None:
        self._items[iid] = item
        self._iid_of[item.id] = iid
        self._columns.set(iid, item)

    def _drop(self, item_id: str) -> int | None:
        iid = self._iid_of.pop(item_id, None)
        if iid is not None:
            del self._items[iid]
            self._columns.clear(iid)
        return iid

    def _apply(self, record: bytes) -> None:
        op, body = record[:1], record[1:]
        try:
            if op == _OP_UPSERT:
                (n,) = _U32.unpack_from(body)
                head = json.loads(body[4 : 4 + n])
                vectors = np.frombuffer(body[4 + n :], dtype=np.float32).reshape(-1, self.dim)
                iids = np.asarray([e["iid"] for e in head], dtype=np.int64)
                items = [CatalogItem.from_json(e["item"]) for e in head]
                if len(items) != len(vectors):
                    raise ValueError(f"{len(items)} items for {len(vectors)} vectors")
                old = [self._drop(it.id) for it in items]
                self._index.remove(np.asarray([o for o in old if o is not None], dtype=np.int64))
                self._index.add(iids, vectors)
                for iid, item in zip(iids.tolist(), items, strict=True):
                    self._put(iid, item)
                self._next_iid = max(self._next_iid, int(iids.max()) + 1)
            elif op == _OP_DELETE:
                ids = json.loads(body)
                gone = [self._drop(i) for i in ids]
                self._index.remove(np.asarray([g for g in gone if g is not None], dtype=np.int64))
            else:
                raise ValueError(f"unknown operation {op!r}")
        except (ValueError, KeyError, TypeError, struct.error) as e:
            raise CatalogError(f"write-ahead log {self._wal_path}: unusable record: {e}") from e

    def _write(self, record: bytes) -> None:
        """Log durably, then apply; the caller holds the write mutex."""
        if self._wal is None:
            raise CatalogError(f"catalog {self.path} is open read-only (or closed)")
        self._wal.append(record)
        with self._rw.write():
            self._apply(record)
            self._log_records += 1

    # -- public writes ----------------------------------------------------------------------

    def upsert(self, items: Sequence[CatalogItem], vectors: np.ndarray) -> None:
        """Insert or replace ``items`` with their ``vectors`` ((N, dim), normalized here).

        Returns once the whole batch is durable and visible; a crash before that leaves none of
        it. Ids must be unique within the batch.
        """
        items = list(items)
        if not all(isinstance(it, CatalogItem) for it in items):
            raise InvalidArgument("upsert takes CatalogItem objects")
        ids = [it.id for it in items]
        if len(set(ids)) != len(ids):
            raise InvalidArgument("upsert: an item id appears twice in one batch")
        try:
            x = normalized(vectors, self.dim)
        except ValueError as e:
            raise InvalidArgument(f"upsert vectors: {e}") from e
        if len(x) != len(items):
            raise InvalidArgument(f"upsert: {len(items)} items but {len(x)} vectors")
        if not items:
            return
        with self._write_mutex:
            iids = range(self._next_iid, self._next_iid + len(items))
            head = json.dumps(
                [{"iid": i, "item": it.to_json()} for i, it in zip(iids, items, strict=True)]
            ).encode()
            self._write(_OP_UPSERT + _U32.pack(len(head)) + head + x.tobytes())

    def delete(self, ids: Iterable[str]) -> int:
        """Delete items by id (unknown ids are skipped); returns how many existed. Durable on
        return."""
        wanted = [check_item_id(i) for i in ids]
        with self._write_mutex:
            present = [i for i in dict.fromkeys(wanted) if i in self._iid_of]
            if present:
                self._write(_OP_DELETE + json.dumps(present).encode())
        return len(present)

    # -- reads ------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._iid_of

    def get(self, item_id: str) -> CatalogItem | None:
        with self._rw.read():
            iid = self._iid_of.get(item_id)
            return None if iid is None else self._items[iid]

    def ids(self) -> list[str]:
        with self._rw.read():
            return list(self._iid_of)

    def vector(self, item_id: str) -> np.ndarray:
        """The stored unit vector of an item, (dim,) float32; ``NotFound`` for an unknown id."""
        with self._rw.read():
            iid = self._iid_of.get(item_id)
            if iid is None:
                raise NotFound(f"no item {item_id!r} in catalog {self.path}")
            return self._index.reconstruct(np.asarray([iid]))[0]

    def search(
        self,
        queries: np.ndarray,
        k: int = 10,
        *,
        filter: CatalogFilter | None = None,
        dedup_cosine: float | None = None,
        exclude: Sequence[str] = (),
    ) -> list[list[SearchHit]]:
        """The ``k`` most similar items for each query vector ((dim,) or (Q, dim)).

        ``filter`` is applied inside the index search. ``dedup_cosine`` (e.g. 0.97) collapses
        near-duplicate results into the best one. ``exclude``: item ids never returned (the
        query item itself, for "more like this").
        """
        k = _check_k(k)
        try:
            q = normalized(queries, self.dim, "query")
        except ValueError as e:
            raise InvalidArgument(str(e)) from e
        if len(q) > MAX_QUERY_BATCH:
            raise InvalidArgument(f"{len(q)} queries in one call, the limit is {MAX_QUERY_BATCH}")
        if dedup_cosine is not None and not -1.0 <= dedup_cosine <= 1.0:
            raise InvalidArgument(f"dedup_cosine must be in -1..1, got {dedup_cosine!r}")
        fetch = k if dedup_cosine is None else min(MAX_K, k * DEDUP_FETCH_FACTOR)
        with self._rw.read():
            n_ids = self._next_iid
            allowed: np.ndarray | None = None
            if filter is not None and not filter.is_empty():
                allowed = self._columns.mask(filter, n_ids)
            excluded = [self._iid_of[e] for e in exclude if e in self._iid_of]
            if excluded:
                allowed = np.ones(n_ids, dtype=bool) if allowed is None else allowed
                allowed[np.asarray(excluded)] = False
            scores, iids = self._index.search(q, fetch, allowed)
            out: list[list[SearchHit]] = []
            for row_s, row_i in zip(scores, iids, strict=True):
                ok = row_i >= 0
                row_s, row_i = row_s[ok], row_i[ok]
                if dedup_cosine is None:
                    hits = [
                        SearchHit(self._items[int(i)], float(s))
                        for s, i in zip(row_s, row_i, strict=True)
                    ]
                else:
                    vecs = self._index.reconstruct(row_i)
                    kept = collapse_near_duplicates(np.arange(len(row_i)), vecs, dedup_cosine, k)
                    hits = [
                        SearchHit(
                            self._items[int(row_i[p])],
                            float(row_s[p]),
                            tuple(self._items[int(row_i[d])].id for d in dups),
                        )
                        for p, dups in kept
                    ]
                out.append(hits[:k])
        return out

    def search_item(
        self,
        item_id: str,
        k: int = 10,
        *,
        filter: CatalogFilter | None = None,
        dedup_cosine: float | None = None,
    ) -> list[SearchHit]:
        """Items most like catalog item ``item_id`` (never itself); ``NotFound`` if unknown."""
        vec = self.vector(item_id)
        return self.search(vec, k, filter=filter, dedup_cosine=dedup_cosine, exclude=[item_id])[0]

    def search_images(
        self,
        images: Sequence[np.ndarray],
        model: VisualModel,
        k: int = 10,
        *,
        filter: CatalogFilter | None = None,
        dedup_cosine: float | None = None,
    ) -> list[list[SearchHit]]:
        """Embed ``images`` with ``model`` (which must be the catalog's space) and search."""
        if model.space_id != self.space_id or model.dim != self.dim:
            raise CatalogError(
                f"model space {model.space_id!r} (dim {model.dim}) cannot query catalog "
                f"{self.path} built in {self.space_id!r} (dim {self.dim})"
            )
        if not images:
            return []
        return self.search(
            model.visual_features(list(images)), k, filter=filter, dedup_cosine=dedup_cosine
        )

    # -- snapshots --------------------------------------------------------------------------

    def save(self, *, compact: bool | None = None) -> None:
        """Write a new snapshot generation and start an empty log.

        The index is rebuilt (tombstones dropped, flat or HNSW chosen by size) when ``compact``
        is true, or by default when the size calls for another kind or tombstones are at least
        ``DEFAULT_COMPACT_FRACTION`` of the stored vectors.
        """
        if self._wal is None:
            raise CatalogError(f"catalog {self.path} is open read-only (or closed)")
        with self._write_mutex:
            index = self._index
            want = self.config.choose_kind(index.n_live)
            stale = (
                index.n_stored and index.n_tombstones / index.n_stored >= DEFAULT_COMPACT_FRACTION
            )
            if compact or (compact is None and (want != index.kind or stale)):
                with self._rw.read():
                    fresh = index.rebuilt(want)
                with self._rw.write():
                    self._index = fresh
            gen = self._generation + 1
            index_name, items_name, wal_name = _names(gen)
            with self._rw.read():
                index_data = self._index.to_bytes()
                items_data = "".join(
                    json.dumps({"iid": iid, **it.to_json()}) + "\n"
                    for iid, it in self._items.items()
                ).encode()
                n_items, n_stored, kind = len(self._items), self._index.n_stored, self._index.kind
            for name, data in ((index_name, index_data), (items_name, items_data)):
                write_durably(self.path / name, data)
            new_wal = WriteAheadLog(self.path / wal_name, 0)
            manifest = Manifest(
                space_id=self.space_id, dim=self.dim, generation=gen, kind=kind,
                config=self.config.to_json(), items=n_items, stored=n_stored,
                next_iid=self._next_iid,
                files=(
                    FileEntry(index_name, len(index_data), sha256_hex(index_data)),
                    FileEntry(items_name, len(items_data), sha256_hex(items_data)),
                ),
                wal=wal_name,
            )  # fmt: skip
            try:
                write_manifest(self.path, manifest)
            except BaseException:
                new_wal.close()
                raise
            self._wal.close()
            self._wal = new_wal
            self._wal_path = new_wal.path
            self._generation = gen
            self._log_records = 0
            self._manifest = manifest
            self._remove_stray_files(manifest)
            fsync_dir(self.path)

    def stats(self) -> CatalogStats:
        with self._rw.read():
            disk = sum(p.stat().st_size for p in self.path.iterdir() if p.is_file())
            return CatalogStats(
                path=str(self.path), space_id=self.space_id, dim=self.dim,
                kind=self._index.kind, compression=self.config.compression,
                items=len(self._items), tombstones=self._index.n_tombstones,
                generation=self._generation, log_records=self._log_records, disk_bytes=disk,
            )  # fmt: skip

    def close(self) -> None:
        """Release the log and the directory lock (acknowledged changes are already durable)."""
        wal = getattr(self, "_wal", None)
        if wal is not None:
            wal.close()
        self._wal = None
        if getattr(self, "_lock_fd", -1) >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

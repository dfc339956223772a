"""The placement store: placements of scanned media, keyed by media id, in one SQLite file.

Why SQLite: a batch scan (one process) writes while gRPC servers (other processes, many
threads) answer ``LookupPlacements`` from the same file, with sub-millisecond reads and no
server to run. WAL journaling lets readers and the writer proceed at once: a reader sees the
last committed snapshot, never a half-written media. ``synchronous=NORMAL`` (safe in WAL: a
power cut can lose the last commits, never corrupt the file) keeps a commit free of fsync; the
busy timeout makes two writers queue up instead of failing with "database is locked".

Threads: each thread gets its own connection (created on first use), so a server's worker
threads read in parallel. Processes: open your own ``PlacementStore`` on the same path.

Schema (version 1, in ``PRAGMA user_version``)::

    media(media_id TEXT PRIMARY KEY, scanned_at REAL, n_placements INTEGER)
    placements(media_id, seq, campaign, start_s, end_s, score, advertiser, bid_cpm, rank,
               reasons,   -- a JSON list of {kind, what, score, t, box, detail}
               PRIMARY KEY (media_id, seq))   -- seq: the order the scan stored them in
    INDEX placements_media_start ON placements(media_id, start_s)

A row in ``media`` records that a media was scanned (possibly with no placements), which is
what tells ``lookup``'s ``None`` (never scanned) from ``[]`` (scanned, nothing fit).
Times are seconds from the start of the media; ``scanned_at`` is UNIX seconds (UTC).
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

import numpy as np

from targeting.placement_table import PlacementTable
from targeting.types import Placement, Reason
from vision.errors import PlacementStoreError
from vision.limits import MAX_MEDIA_ID_CHARS

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
"""``PRAGMA user_version`` of stores this module writes; newer files are refused, not guessed."""

DEFAULT_BUSY_TIMEOUT_S = 5.0
"""How long one SQLite call waits for another writer's lock (its busy timeout), in seconds."""

DEFAULT_WRITE_WAIT_S = 60.0
"""How long ``replace_media`` keeps retrying while another writer holds the lock, in seconds:
long enough for another scan's commits (milliseconds each) or a backup copy to pass, short
enough that a scan stuck behind a writer that never lets go says so within a minute."""

MAX_PLACEMENTS_PER_MEDIA = 100_000
"""Most placements stored for one media (a 4 h video at one per second per 7 campaigns)."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS media (
    media_id     TEXT PRIMARY KEY NOT NULL,
    scanned_at   REAL NOT NULL,
    n_placements INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS placements (
    media_id   TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    campaign   TEXT NOT NULL,
    start_s    REAL NOT NULL,
    end_s      REAL NOT NULL,
    score      REAL NOT NULL,
    advertiser TEXT NOT NULL,
    bid_cpm    REAL NOT NULL,
    rank       INTEGER NOT NULL,
    reasons    TEXT NOT NULL,
    PRIMARY KEY (media_id, seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS placements_media_start ON placements (media_id, start_s);
"""

# One statement, so one snapshot: the media row and its placements can never come from two
# different commits. No row at all = never scanned; one row of NULLs (LEFT JOIN) = scanned,
# nothing fit. Without a time the rows come in primary-key (media_id, seq) order, no sort; with
# a time the (media_id, start_s) index bounds the rows read to those starting by t.
_LOOKUP_ALL = """
SELECT p.campaign, p.start_s, p.end_s, p.score, p.advertiser, p.bid_cpm, p.rank, p.reasons
FROM media AS m
LEFT JOIN placements AS p ON p.media_id = m.media_id
WHERE m.media_id = :media
ORDER BY p.seq
"""
_LOOKUP_AT = """
SELECT p.campaign, p.start_s, p.end_s, p.score, p.advertiser, p.bid_cpm, p.rank, p.reasons
FROM media AS m
LEFT JOIN placements AS p INDEXED BY placements_media_start
  ON p.media_id = m.media_id AND p.start_s <= :t AND p.end_s >= :t
WHERE m.media_id = :media
ORDER BY p.seq
"""


def _is_busy(e: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY / SQLITE_LOCKED: another connection holds the lock (not a broken file)."""
    code = getattr(e, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(e) or "busy" in str(e)


_NEARLY_FULL_BYTES = 1 << 20
"""Free space under which an I/O error is read as "the disk is full": SQLite reports ENOSPC
while writing the WAL as SQLITE_IOERR (not SQLITE_FULL), so the free space tells."""


def _primary_code(e: sqlite3.Error) -> int | None:
    code = getattr(e, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def on_readonly_filesystem(path: str | Path) -> bool:
    """True when ``path`` (or, if it does not exist yet, its nearest existing parent) lies on a
    file system mounted read-only: there a store can be read, never written."""
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return bool(os.statvfs(p).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _nearly_full(directory: Path) -> bool:
    try:
        return shutil.disk_usage(directory).free < _NEARLY_FULL_BYTES
    except OSError:
        return False


def _disk_cause(e: sqlite3.Error, path: Path) -> str | None:
    """What the disk did to this SQLite call, in words a user can act on, or None when the
    error is not about the disk (a broken file, a lock: those have their own messages)."""
    code = _primary_code(e)
    directory = path.absolute().parent
    if code == sqlite3.SQLITE_FULL or (code == sqlite3.SQLITE_IOERR and _nearly_full(directory)):
        return f"the disk holding {directory} is full (free space there, then retry)"
    if code == sqlite3.SQLITE_READONLY or on_readonly_filesystem(path):
        return (
            f"{directory} is read-only (a read-only mount or file permissions): "
            "make it writable, or store elsewhere"
        )
    if code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN):
        return f"the disk holding {directory} failed an I/O operation (SQLite says: {e})"
    return None


def _has_wal_content(path: Path) -> bool:
    """A ``-wal`` file with frames in it: commits not yet copied into the main file, which an
    ``immutable`` open would not see."""
    try:
        return Path(f"{path}-wal").stat().st_size > 0
    except FileNotFoundError:
        return False


def _check_media_id(media_id: str) -> None:
    if not isinstance(media_id, str) or not media_id:
        raise ValueError(f"media_id must be a non-empty string, got {media_id!r}")
    if len(media_id) > MAX_MEDIA_ID_CHARS:
        raise ValueError(
            f"media_id is {len(media_id)} characters, over the {MAX_MEDIA_ID_CHARS} limit: "
            f"{media_id[:60]!r}..."
        )


def _placement_rows(media_id: str, placements: Sequence[Placement]) -> list[tuple[object, ...]]:
    """The table rows of ``placements`` (rank order), checked: ValueError naming the first
    placement of another media, or with a non-finite score or bid."""
    rows: list[tuple[object, ...]] = []
    for seq, p in enumerate(placements):
        if p.media != media_id:
            raise ValueError(
                f"placement {seq} (campaign {p.campaign!r}) is for media {p.media!r}, "
                f"not {media_id!r}"
            )
        if not (math.isfinite(p.score) and math.isfinite(p.bid_cpm)):
            raise ValueError(
                f"placement {seq} (campaign {p.campaign!r}) has a non-finite score or bid: "
                f"{p.score!r}, {p.bid_cpm!r}"
            )
        # float()/int(): numpy scalars from the matcher cannot be bound by sqlite3
        rows.append(
            (media_id, seq, p.campaign, float(p.start_s), float(p.end_s), float(p.score),
             p.advertiser, float(p.bid_cpm), int(p.rank), _reasons_json(p.reasons))
        )  # fmt: skip
    return rows


def _table_rows(media_id: str, table: PlacementTable) -> list[tuple[object, ...]] | None:
    """The rows of a ``PlacementTable`` without its Placement objects (the reasons' JSON
    once per distinct list); None when a row would be refused (another media, a non-finite
    number): ``_placement_rows`` then says which one."""
    finite = bool(np.isfinite(table.score).all() and np.isfinite(table.bid_cpm).all())
    if table.media != media_id or not finite:
        return None
    return [
        (media_id, seq, *row, rj)
        for seq, (row, rj) in enumerate(
            zip(table.rows(), table.map_reasons(_reasons_json), strict=True)
        )
    ]


def _reasons_json(reasons: Sequence[Reason]) -> str:
    """Lossless JSON of the reasons (Reason.to_json rounds and renames: that is for people)."""
    return json.dumps(
        [
            {
                "kind": r.kind,
                "what": r.what,
                "score": float(r.score),  # numpy scalars from the matcher are not JSON
                "t": float(r.t),
                "box": [float(v) for v in r.box] if r.box is not None else None,
                "detail": r.detail,
            }
            for r in reasons
        ],
        separators=(",", ":"),
        allow_nan=False,
    )


def _reasons_from_json(text: str) -> tuple[Reason, ...]:
    return tuple(
        Reason(
            kind=r["kind"],
            what=r["what"],
            score=r["score"],
            t=r["t"],
            box=tuple(r["box"]) if r["box"] is not None else None,
            detail=r["detail"],
        )
        for r in json.loads(text)
    )


def _timestamp(scanned_at: datetime | None) -> float:
    if scanned_at is None:
        return time.time()
    if scanned_at.tzinfo is None:
        raise ValueError(
            f"scanned_at must be timezone-aware (e.g. datetime.now(UTC)), got {scanned_at!r}"
        )
    return scanned_at.timestamp()


class PlacementStore:
    """Placements of scanned media in one SQLite file, safe for a writer and many readers.

    ``PlacementStore(path)`` creates the file (and parent directories) if needed;
    ``readonly=True`` opens an existing store for reading only (a server that must never write).
    Use it as a context manager, or call ``close()``.

    Another writer holding the lock (another scan, a backup) is waited for: each attempt waits
    ``busy_timeout_s`` inside SQLite, then ``on_wait`` (default: a logged warning) hears one
    line saying who waits for what, and the write is retried until ``write_wait_s`` have passed;
    then ``PlacementStoreError`` names the file and what to do. Never a raw ``sqlite3`` error.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        readonly: bool = False,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        write_wait_s: float = DEFAULT_WRITE_WAIT_S,
        on_wait: Callable[[str], None] | None = None,
    ) -> None:
        if not (0 < busy_timeout_s < math.inf):
            raise ValueError(f"busy_timeout_s must be a finite number > 0, got {busy_timeout_s!r}")
        if not (0 <= write_wait_s < math.inf):
            raise ValueError(f"write_wait_s must be a finite number >= 0, got {write_wait_s!r}")
        self.path = Path(path)
        self.readonly = readonly
        self._busy_timeout_s = busy_timeout_s
        self._write_wait_s = write_wait_s
        self._on_wait = on_wait if on_wait is not None else log.warning
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._closed = False
        if readonly:
            if not self.path.is_file():
                raise PlacementStoreError(
                    f"placement store {self.path} does not exist: run a scan that writes it first"
                )
        elif on_readonly_filesystem(self.path):
            raise PlacementStoreError(
                f"placement store {self.path} is on a read-only file system: it cannot be "
                "written there; store elsewhere, or open it read-only to serve lookups"
            )
        else:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise PlacementStoreError(
                    f"cannot create the directory of placement store {self.path}: {e.strerror or e}"
                ) from e
        self._conn()  # open now: a bad file fails here, not on the first request

    # --- connections ---------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        try:
            if self.readonly:
                # On a read-only mount SQLite cannot create the -shm file WAL readers need;
                # ``immutable`` reads the main file without it, which is exact as long as no
                # commit waits in a -wal file (nothing can write there to add one).
                immutable = on_readonly_filesystem(self.path) and not _has_wal_content(self.path)
                uri = f"{self.path.resolve().as_uri()}?mode=ro" + (
                    "&immutable=1" if immutable else ""
                )
                conn = sqlite3.connect(
                    uri, uri=True, timeout=self._busy_timeout_s, isolation_level=None,
                    check_same_thread=False,
                )  # fmt: skip
            else:
                conn = sqlite3.connect(
                    self.path, timeout=self._busy_timeout_s, isolation_level=None,
                    check_same_thread=False,
                )  # fmt: skip
        except sqlite3.Error as e:
            raise PlacementStoreError(
                f"cannot open placement store {self.path}: {_disk_cause(e, self.path) or e}"
            ) from e
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_s * 1000)}")
            if not self.readonly:
                self._init_schema(conn)
            conn.execute("PRAGMA synchronous = NORMAL")
            self._check_schema(conn)
        except sqlite3.OperationalError as e:
            conn.close()
            cause = _disk_cause(e, self.path)
            if cause is not None:
                raise PlacementStoreError(
                    f"cannot open placement store {self.path}: {cause}"
                ) from e
            if not _is_busy(e):
                raise PlacementStoreError(
                    f"{self.path} is not a placement store (SQLite says: {e}); "
                    "point at the file a scan wrote, or at a new path"
                ) from e
            raise PlacementStoreError(
                f"placement store {self.path} is locked by another writer (waited "
                f"{self._busy_timeout_s:g} s to open it): stop the other writer of that file, "
                "then try again"
            ) from None
        except sqlite3.DatabaseError as e:
            conn.close()
            raise PlacementStoreError(
                f"{self.path} is not a placement store (SQLite says: {e}); "
                "point at the file a scan wrote, or at a new path"
            ) from e
        except BaseException:
            conn.close()
            raise
        return conn

    def _init_schema(self, conn: sqlite3.Connection) -> None:
        # Look before touching: switching to WAL rewrites the file header, so a file that is
        # not ours (someone else's database, a newer store) is refused before anything else.
        self._check_schema(conn, allow_new=True)
        # journal_mode=WAL is persistent in the file; switching needs a moment of exclusive
        # access, which the busy handler does not always cover, so retry within the timeout.
        deadline = time.monotonic() + self._busy_timeout_s
        while True:
            try:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                break
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        if str(mode).lower() != "wal":
            raise PlacementStoreError(
                f"{self.path}: SQLite refused WAL mode (got {mode!r}); the store needs a local "
                "file system (not a network share)"
            )
        if conn.execute("PRAGMA user_version").fetchone()[0] != 0:
            return
        # executescript would commit first (Python 3.11), so run the statements one by one in
        # one transaction; two processes creating the store at once serialize on the lock.
        conn.execute("BEGIN IMMEDIATE")
        try:
            if conn.execute("PRAGMA user_version").fetchone()[0] == 0:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _check_schema(self, conn: sqlite3.Connection, *, allow_new: bool = False) -> None:
        """Refuse a file that is not a placement store; ``allow_new`` accepts an empty one."""
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise PlacementStoreError(
                f"{self.path} has placement-store schema {version}, newer than this onscreen "
                f"understands ({SCHEMA_VERSION}): upgrade onscreen"
            )
        tables = {
            r[0]
            for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_")  # SQLite's own (ANALYZE statistics and such)
        }
        ours = {"media", "placements"}
        if allow_new and version == 0 and tables <= ours:
            return  # a new (or empty) file: ours to create
        if version != SCHEMA_VERSION or not ours <= tables:
            raise PlacementStoreError(
                f"{self.path} is an SQLite file but not a placement store (tables: "
                f"{sorted(tables) or 'none'}): point at the file a scan wrote, or at a new path"
            )

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use."""
        if self._closed:
            raise PlacementStoreError(f"placement store {self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            with self._lock:
                if self._closed:
                    conn.close()
                    raise PlacementStoreError(f"placement store {self.path} is closed")
                self._connections.append(conn)
            self._local.conn = conn
        return conn

    # --- writes --------------------------------------------------------------------------------

    def replace_media(
        self,
        media_id: str,
        placements: Sequence[Placement],
        *,
        scanned_at: datetime | None = None,
    ) -> None:
        """Store a scan of ``media_id``: its placements replace any earlier scan's, atomically.

        One transaction: a reader sees all of the old placements or all of the new, never a mix.
        An empty ``placements`` records "scanned, nothing fit". Placements keep their order
        (pass them in rank order). ``scanned_at`` is when the scan finished (timezone-aware;
        default now). Raises ValueError for a placement of another media.
        """
        _check_media_id(media_id)
        if self.readonly:
            raise PlacementStoreError(f"placement store {self.path} was opened read-only")
        if len(placements) > MAX_PLACEMENTS_PER_MEDIA:
            raise ValueError(
                f"{len(placements)} placements for {media_id!r}, over the "
                f"{MAX_PLACEMENTS_PER_MEDIA} limit per media"
            )
        rows = _table_rows(media_id, placements) if isinstance(placements, PlacementTable) else None
        if rows is None:
            rows = _placement_rows(media_id, placements)
        ts = _timestamp(scanned_at)
        conn = self._conn()
        self._begin_write(conn, media_id)
        try:
            conn.execute("DELETE FROM placements WHERE media_id = ?", (media_id,))
            conn.execute(
                "INSERT OR REPLACE INTO media (media_id, scanned_at, n_placements) VALUES (?, ?, ?)",
                (media_id, ts, len(rows)),
            )
            conn.executemany("INSERT INTO placements VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
        except sqlite3.Error as e:
            self._rollback(conn)
            raise PlacementStoreError(
                f"cannot store the scan of {media_id!r} in {self.path}: "
                f"{_disk_cause(e, self.path) or e}; nothing of it was written (its previous "
                "scan, if any, is kept): fix that, then rerun (a scan: with --resume)"
            ) from e
        except BaseException:
            self._rollback(conn)
            raise

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        """Roll back if a transaction is still open. SQLite ends it by itself on some errors
        (a full disk among them); a ROLLBACK then would raise "no transaction is active" and
        hide the error that matters."""
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error as e:  # the connection is unusable; the original error stands
                log.warning("placement store: rollback failed: %s", e)

    def _begin_write(self, conn: sqlite3.Connection, media_id: str) -> None:
        """Take the write lock (BEGIN IMMEDIATE), waiting for another writer within bounds.

        IMMEDIATE takes the lock up front, so a busy writer is waited for (busy timeout)
        instead of failing when a deferred read transaction tries to upgrade.
        """
        start = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as e:
                if not _is_busy(e):
                    raise PlacementStoreError(
                        f"cannot write placement store {self.path}: "
                        f"{_disk_cause(e, self.path) or e}"
                    ) from e
                waited = time.monotonic() - start
                if waited >= self._write_wait_s:
                    raise PlacementStoreError(
                        f"placement store {self.path} stayed locked by another writer for "
                        f"{waited:.0f} s (storing {media_id!r}): stop the other writer of that "
                        "file (another `onscreen scan --store`?), then rerun with --resume"
                    ) from None
                self._on_wait(
                    f"placement store {self.path} is locked by another writer; waited "
                    f"{waited:.0f} s of {self._write_wait_s:.0f} s, retrying (attempt {attempt})"
                )

    # --- reads ---------------------------------------------------------------------------------

    def lookup(self, media_id: str, t_s: float | None = None) -> list[Placement] | None:
        """The stored placements of ``media_id``, in the order they were stored.

        ``None``: the media was never scanned. ``[]``: it was scanned and nothing fit (or, with
        ``t_s``, nothing covers that time). With ``t_s`` (seconds), only placements with
        ``start_s <= t_s <= end_s`` (both ends inclusive, so a still image's 0..0 placement is
        found at 0).
        """
        _check_media_id(media_id)
        if t_s is not None and (not math.isfinite(t_s) or t_s < 0):
            raise ValueError(f"t_s must be a finite time >= 0 s, got {t_s!r}")
        sql, args = (
            (_LOOKUP_ALL, {"media": media_id})
            if t_s is None
            else (_LOOKUP_AT, {"media": media_id, "t": t_s})
        )
        rows = self._conn().execute(sql, args).fetchall()
        if not rows:
            return None
        return [
            Placement(
                campaign=r[0],
                media=media_id,
                start_s=r[1],
                end_s=r[2],
                score=r[3],
                reasons=_reasons_from_json(r[7]),
                advertiser=r[4],
                bid_cpm=r[5],
                rank=r[6],
            )  # fmt: skip
            for r in rows
            if r[0] is not None  # the NULL row of a media scanned with no placements
        ]

    def scanned_at(self, media_id: str) -> datetime | None:
        """When the stored scan of ``media_id`` was recorded (UTC), or None if never scanned."""
        _check_media_id(media_id)
        row = (
            self._conn()
            .execute("SELECT scanned_at FROM media WHERE media_id = ?", (media_id,))
            .fetchone()
        )
        return None if row is None else datetime.fromtimestamp(row[0], tz=UTC)

    def media_ids(self) -> list[str]:
        """Every scanned media id (with or without placements), sorted."""
        return [r[0] for r in self._conn().execute("SELECT media_id FROM media ORDER BY media_id")]

    # --- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every thread's connection. Call once no thread is using the store."""
        with self._lock:
            self._closed = True
            conns, self._connections = self._connections, []
        for conn in conns:
            conn.close()

    def __enter__(self) -> PlacementStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("read-only" if self.readonly else "open")
        return f"PlacementStore({str(self.path)!r}, {state})"

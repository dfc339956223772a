"""The placement store: lossless round trip, lookups by time, atomic re-scans under a concurrent
writer process, clear refusals of files that are not a store, and lookup latency at 10k media."""

from __future__ import annotations

import math
import multiprocessing as mp
import shutil
import sqlite3
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from serving.placement_store import (
    MAX_MEDIA_ID_CHARS,
    SCHEMA_VERSION,
    PlacementStore,
    PlacementStoreError,
)
from targeting.types import Placement, Reason


def placement(
    media: str, campaign: str, start_s: float, end_s: float, *, gen: int = 0, rank: int = 1
) -> Placement:
    """A placement with a boxed logo reason and a whole-frame concept reason."""
    return Placement(
        campaign=campaign,
        media=media,
        start_s=start_s,
        end_s=end_s,
        score=0.71,
        reasons=(
            Reason("logo", "acme", 0.83, start_s + 0.5, (0.1, 0.2, 0.35, 0.4), "score >= 0.6"),
            Reason("concept", "a car on a snowy road", 0.2712345678901234, start_s),
        ),
        advertiser=f"gen-{gen}",
        bid_cpm=4.0,
        rank=rank,
    )


REASONS = (Reason("face", "FACE_FEMALE", 0.9, 0.5, detail="1 face"),)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PlacementStore]:
    with PlacementStore(tmp_path / "store" / "placements.db") as s:
        yield s


# --- round trip and lookups ---------------------------------------------------------------------


def test_round_trip_is_lossless_and_keeps_order(store: PlacementStore) -> None:
    ps = [
        placement("v.mp4", "zeta", 4.0, 9.0, rank=1),
        placement("v.mp4", "alpha", 0.0, 2.5, rank=2),
        Placement("mira", "v.mp4", 1.0, 1.0, 0.4, (Reason("exclusion", "nudity ✓", 0.9, 1.0),)),
    ]
    store.replace_media("v.mp4", ps)
    assert store.lookup("v.mp4") == ps  # floats, boxes, None boxes, unicode: all exact


def test_numpy_scalars_from_the_matcher_are_stored_as_plain_numbers(store: PlacementStore) -> None:
    reason = Reason(
        "logo", "acme", np.float32(0.5), np.float64(1.5), tuple(np.float32([0, 0, 1, 1]))
    )
    p = Placement(
        "c", "v", np.float64(1.0), np.float64(2.0), np.float32(0.25), (reason,), rank=np.int64(3)
    )
    store.replace_media("v", [p])
    (back,) = store.lookup("v") or []
    assert (back.start_s, back.score, back.rank, back.reasons[0].score) == (1.0, 0.25, 3, 0.5)
    assert type(back.score) is float and type(back.rank) is int


TIMELINE = [("a", 2.0, 5.0), ("b", 4.0, 8.0), ("c", 10.0, 10.0)]


@pytest.mark.parametrize(
    "t_s, expected",
    [
        (None, ["a", "b", "c"]),
        (0.0, []),
        (2.0, ["a"]),  # start is inclusive
        (4.5, ["a", "b"]),
        (5.0, ["a", "b"]),  # end is inclusive
        (5.01, ["b"]),
        (9.0, []),  # between placements
        (10.0, ["c"]),  # a zero-length placement is found at its instant
        (3600.0, []),
    ],
)
def test_lookup_at_a_time(store: PlacementStore, t_s: float | None, expected: list[str]) -> None:
    store.replace_media("v", [placement("v", c, s, e) for c, s, e in TIMELINE])
    store.replace_media("other", [placement("other", "x", 0.0, 100.0)])
    got = store.lookup("v", t_s)
    assert got is not None and [p.campaign for p in got] == expected


def test_never_scanned_is_none_and_scanned_empty_is_empty(store: PlacementStore) -> None:
    assert store.lookup("unknown") is None
    assert store.lookup("unknown", 1.0) is None
    assert store.scanned_at("unknown") is None
    store.replace_media("nothing-fit", [])
    assert store.lookup("nothing-fit") == []
    assert store.lookup("nothing-fit", 3.0) == []
    assert store.media_ids() == ["nothing-fit"]


def test_rescan_replaces_everything_of_that_media_only(store: PlacementStore) -> None:
    first = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    store.replace_media("v", [placement("v", c, s, e) for c, s, e in TIMELINE], scanned_at=first)
    store.replace_media("w", [placement("w", "keep", 0.0, 1.0)])
    assert store.scanned_at("v") == first
    store.replace_media("v", [placement("v", "new", 1.0, 2.0, gen=2)])
    assert [(p.campaign, p.advertiser) for p in store.lookup("v") or []] == [("new", "gen-2")]
    assert store.lookup("v", 4.5) == []  # the old "a" and "b" are gone
    assert [p.campaign for p in store.lookup("w") or []] == ["keep"]
    scanned = store.scanned_at("v")
    assert scanned is not None and scanned > first
    store.replace_media("v", [])  # a re-scan that finds nothing clears the media, keeps it known
    assert store.lookup("v") == []
    assert store.media_ids() == ["v", "w"]


def test_survives_reopen_also_read_only(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    ps = [placement("v", c, s, e) for c, s, e in TIMELINE]
    with PlacementStore(path) as s:
        s.replace_media("v", ps)
        s.replace_media("empty", [])
    for readonly in (False, True):
        with PlacementStore(path, readonly=readonly) as s:
            assert s.lookup("v") == ps
            assert s.lookup("empty") == []
            assert s.media_ids() == ["empty", "v"]


def test_file_is_wal_with_the_media_start_index(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    PlacementStore(path).close()
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        cols = [r[2] for r in conn.execute("PRAGMA index_info(placements_media_start)")]
        assert cols == ["media_id", "start_s"]
    finally:
        conn.close()


# --- bad input ---------------------------------------------------------------------------------


def _closed(tmp_path: Path) -> PlacementStore:
    s = PlacementStore(tmp_path / "p.db")
    s.close()
    return s


def _readonly(tmp_path: Path) -> PlacementStore:
    PlacementStore(tmp_path / "p.db").close()
    return PlacementStore(tmp_path / "p.db", readonly=True)


@pytest.mark.parametrize(
    "make, call, exc, match",
    [
        (None, lambda s: s.lookup(""), ValueError, "non-empty string"),
        (None, lambda s: s.lookup("x" * (MAX_MEDIA_ID_CHARS + 1)), ValueError, "over the 1024"),
        (None, lambda s: s.lookup("v", math.nan), ValueError, "finite time >= 0"),
        (None, lambda s: s.lookup("v", -1.0), ValueError, "finite time >= 0"),
        (None, lambda s: s.replace_media("v", [placement("w", "c", 0, 1)]),
         ValueError, "is for media 'w', not 'v'"),
        (None, lambda s: s.replace_media("v", [], scanned_at=datetime(2026, 1, 1)),
         ValueError, "timezone-aware"),
        (None, lambda s: s.replace_media("v", [Placement("c", "v", 0, 1, math.nan, REASONS)]),
         ValueError, "non-finite score or bid"),
        (_readonly, lambda s: s.replace_media("v", []), PlacementStoreError, "opened read-only"),
        (_closed, lambda s: s.lookup("v"), PlacementStoreError, "is closed"),
        (_closed, lambda s: s.replace_media("v", []), PlacementStoreError, "is closed"),
    ],
)  # fmt: skip
def test_bad_calls(
    tmp_path: Path,
    store: PlacementStore,
    make: Callable[[Path], PlacementStore] | None,
    call: Callable[[PlacementStore], object],
    exc: type[Exception],
    match: str,
) -> None:
    target = make(tmp_path) if make else store
    try:
        with pytest.raises(exc, match=match):
            call(target)
    finally:
        target.close()


def _jpeg(tmp_path: Path, real_images: dict[str, Path]) -> Path:
    return Path(shutil.copy(real_images["bus"], tmp_path / "bus.db"))


def _foreign_db(tmp_path: Path, real_images: dict[str, Path]) -> Path:
    path = tmp_path / "users.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.close()
    return path


def _newer_store(tmp_path: Path, real_images: dict[str, Path]) -> Path:
    path = tmp_path / "newer.db"
    PlacementStore(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    return path


def _missing(tmp_path: Path, real_images: dict[str, Path]) -> Path:
    return tmp_path / "nope" / "p.db"


@pytest.mark.parametrize(
    "make, readonly, match",
    [
        (_jpeg, False, r"bus\.db is not a placement store \(SQLite says: file is not a database"),
        (_jpeg, True, r"bus\.db is not a placement store"),
        (_foreign_db, False, r"users\.db is an SQLite file but not a placement store .*'users'"),
        (_foreign_db, True, r"users\.db is an SQLite file but not a placement store"),
        (_newer_store, False, "schema 2, newer than this onscreen understands"),
        (_missing, True, "does not exist: run a scan that writes it first"),
    ],
)
def test_refuses_files_that_are_not_a_store(
    tmp_path: Path,
    real_images: dict[str, Path],
    make: Callable[[Path, dict[str, Path]], Path],
    readonly: bool,
    match: str,
) -> None:
    path = make(tmp_path, real_images)
    before = path.read_bytes() if path.exists() else None
    with pytest.raises(PlacementStoreError, match=match):
        PlacementStore(path, readonly=readonly)
    if before is not None and make is not _newer_store:
        assert path.read_bytes() == before  # someone else's file is never written to


def test_busy_timeout_must_be_finite(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="finite number > 0"):
        PlacementStore(tmp_path / "p.db", busy_timeout_s=math.inf)


# --- concurrency: a scan process writes while server threads read -------------------------------

HOT_ROWS = 40
WRITER_ROUNDS = 250


def _writer_process(path: str, rounds: int) -> None:
    """A scan process: re-scans "hot" (HOT_ROWS rows, one generation each) and adds new media."""
    with PlacementStore(path) as s:
        for gen in range(rounds):
            s.replace_media(
                "hot", [placement("hot", f"c{j}", j, j + 1.0, gen=gen) for j in range(HOT_ROWS)]
            )
            s.replace_media(f"new-{gen}", [placement(f"new-{gen}", "c", 0.0, 1.0, gen=gen)])


def test_concurrent_rescans_are_atomic_for_readers(tmp_path: Path) -> None:
    path = tmp_path / "p.db"
    PlacementStore(path).close()  # created up front so read-only readers can open it
    errors: list[BaseException] = []
    seen: list[list[int]] = [[], []]
    writer = mp.get_context("spawn").Process(
        target=_writer_process, args=(str(path), WRITER_ROUNDS)
    )
    done = threading.Event()

    def reader(slot: int, readonly: bool) -> None:
        try:
            with PlacementStore(path, readonly=readonly) as s:
                while not done.is_set():
                    got = s.lookup("hot")
                    if got is None:
                        assert not seen[slot], "hot vanished after it was written"
                        continue
                    gens = {p.advertiser for p in got}
                    assert len(got) == HOT_ROWS and len(gens) == 1, (len(got), sorted(gens))
                    gen = int(gens.pop().removeprefix("gen-"))
                    assert not seen[slot] or gen >= seen[slot][-1], "a reader went back in time"
                    seen[slot].append(gen)
                    at = s.lookup("hot", 5.5)  # the 4..5 row ends too early, 5..6 covers it
                    assert at is not None and [p.campaign for p in at] == ["c5"]
        except BaseException as e:  # reported below, with the thread's own traceback
            errors.append(e)

    def local_writer() -> None:  # a second writer in this process: writers must queue
        try:
            with PlacementStore(path) as s:
                i = 0
                while not done.is_set():
                    s.replace_media("local", [placement("local", "c", 0.0, 1.0, gen=i)])
                    i += 1
        except BaseException as e:
            errors.append(e)

    threads = [
        threading.Thread(target=reader, args=(0, False)),
        threading.Thread(target=reader, args=(1, True)),
        threading.Thread(target=local_writer),
    ]
    writer.start()
    for t in threads:
        t.start()
    writer.join(timeout=60)
    done.set()
    for t in threads:
        t.join(timeout=10)
    assert writer.exitcode == 0, f"writer process failed (exit code {writer.exitcode})"
    assert not errors, f"{len(errors)} error(s), first: {errors[0]!r}"  # no "database is locked"
    for gens in seen:
        # the readers ran while the writer did: they saw many different generations
        assert len(set(gens)) >= 5, f"reader saw only generations {sorted(set(gens))}"
    with PlacementStore(path, readonly=True) as s:
        final = s.lookup("hot")
        assert final is not None and {p.advertiser for p in final} == {f"gen-{WRITER_ROUNDS - 1}"}
        assert len(s.media_ids()) == WRITER_ROUNDS + 2  # hot, local, new-0..new-249


def test_threads_share_a_store_object(store: PlacementStore) -> None:
    store.replace_media("v", [placement("v", c, s, e) for c, s, e in TIMELINE])
    results: list[object] = []

    def work() -> None:
        results.append([p.campaign for p in store.lookup("v", 4.5) or []])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [["a", "b"]] * 4


# --- latency -----------------------------------------------------------------------------------

N_MEDIA = 10_000


def test_lookup_latency_with_10k_media(tmp_path: Path) -> None:
    with PlacementStore(tmp_path / "p.db") as s:
        t0 = time.perf_counter()
        for i in range(N_MEDIA):
            m = f"video-{i:05d}.mp4"
            s.replace_media(
                m, [placement(m, f"c{k}", 10.0 * k, 10.0 * k + 8, rank=k + 1) for k in range(3)]
            )
        write_s = time.perf_counter() - t0
        assert len(s.media_ids()) == N_MEDIA

        def per_call_s(t_s: float | None) -> list[float]:
            out = []
            for i in range(0, N_MEDIA, 5):  # 2000 different media
                a = time.perf_counter()
                got = s.lookup(f"video-{i:05d}.mp4", t_s)
                out.append(time.perf_counter() - a)
                assert got is not None and len(got) == (3 if t_s is None else 1)
            return sorted(out)

        whole, at_t = per_call_s(None), per_call_s(15.0)
    for name, lat in (("whole media", whole), ("at t", at_t)):
        mean_us, p99_us = statistics.mean(lat) * 1e6, lat[int(0.99 * len(lat))] * 1e6
        print(f"lookup {name}: mean {mean_us:.0f} us, p99 {p99_us:.0f} us ({N_MEDIA} media)")
        # expected ~20-40 us on one core; the bound is generous for a shared CI machine
        assert mean_us < 1000, f"lookup ({name}) took {mean_us:.0f} us per call on average"
    print(f"10k replace_media calls: {write_s:.2f} s")


# --- another writer holds the lock ---------------------------------------------------------------


def test_a_writer_locked_out_past_the_wait_gets_one_clear_error(tmp_path: Path) -> None:
    from tests.serving.store_lock import write_lock_held

    path = tmp_path / "p.db"
    PlacementStore(path).close()
    waits: list[str] = []
    with (
        write_lock_held(path),
        PlacementStore(path, busy_timeout_s=0.1, write_wait_s=0.5, on_wait=waits.append) as s,
    ):
        start = time.monotonic()
        with pytest.raises(PlacementStoreError) as info:
            s.replace_media("v.mp4", [placement("v.mp4", "c", 0, 1)])
        assert 0.5 <= time.monotonic() - start < 5
    msg = str(info.value)
    assert f"placement store {path} stayed locked by another writer for " in msg
    assert "(storing 'v.mp4')" in msg and "then rerun with --resume" in msg
    assert waits and all(f"placement store {path} is locked by another writer" in w for w in waits)
    with PlacementStore(path) as s:
        assert s.lookup("v.mp4") is None  # nothing half-written


def test_a_writer_waits_for_a_lock_that_is_released(tmp_path: Path) -> None:
    from tests.serving.store_lock import release, write_lock_held

    path = tmp_path / "p.db"
    PlacementStore(path).close()
    waits: list[str] = []
    with (
        write_lock_held(path) as holder,
        PlacementStore(path, busy_timeout_s=0.2, write_wait_s=30, on_wait=waits.append) as s,
    ):
        timer = threading.Timer(0.7, release, (holder,))
        timer.start()
        try:
            s.replace_media("v.mp4", [placement("v.mp4", "c", 0, 1)])
        finally:
            timer.join()
        assert [p.campaign for p in s.lookup("v.mp4") or []] == ["c"]
    assert waits and "retrying (attempt 1)" in waits[0]


@pytest.mark.parametrize("write_wait_s", [-1.0, math.nan, math.inf])
def test_write_wait_must_be_finite(tmp_path: Path, write_wait_s: float) -> None:
    with pytest.raises(ValueError, match="write_wait_s must be a finite number >= 0"):
        PlacementStore(tmp_path / "p.db", write_wait_s=write_wait_s)


def test_a_placement_table_is_stored_as_its_placements_are(tmp_path: Path) -> None:
    """``match_table``'s columns go in without Placement objects, and come out the same."""
    from targeting.match import match_table
    from tests.targeting.golden_match import inputs
    from tests.targeting.timelines import TODAY

    tl, cs, idx = inputs(tmp_path / "examples")
    table = match_table(tl[:60], cs, idx, today=TODAY, media="v")
    assert len(table) > 50
    with PlacementStore(tmp_path / "a.sqlite") as a, PlacementStore(tmp_path / "b.sqlite") as b:
        a.replace_media("v", table)
        b.replace_media("v", list(table))
        assert a.lookup("v") == b.lookup("v") == list(table)
        with pytest.raises(ValueError, match="is for media 'v', not 'w'"):
            a.replace_media("w", table)

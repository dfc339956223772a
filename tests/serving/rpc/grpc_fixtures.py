"""Helpers for gRPC server tests: a server on its own event-loop thread, rules, real media.

Tests talk to the server with ordinary synchronous gRPC channels over 127.0.0.1, as an ad
server would; the server runs ``start_server`` on an asyncio loop in a background thread.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
from collections.abc import Callable, Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from serving.rpc.config import ServerConfig
from serving.rpc.server import RunningServer, start_server
from vision.pipeline import Pipeline

T = TypeVar("T")

CAMPAIGNS = {
    "rival-conquest.yaml": (
        "id: rival-conquest\nadvertiser: Acme Analytics\nbid_cpm: 5.5\n"
        "target:\n  any:\n    - logo: {brand: rival, min_score: 0.6}\n"
        "exclude:\n  safety: [nudity]\nmin_duration_s: 1.0\n"
    ),
    "acme-own.yaml": "id: acme-own\nbid_cpm: 3\ntarget:\n  any:\n    - logo: {brand: acme}\n",
    "presenter.yaml": (
        "id: presenter\ntarget:\n  all:\n    - face: {min_count: 1, min_area: 0.02}\n"
        "min_duration_s: 1.0\n"
    ),
}
"""Logo and face campaigns only: no CLIP is needed, so none is loaded."""


def write_rules(root: Path) -> Path:
    """A rules directory with CAMPAIGNS and the example brands (acme, rival)."""
    from examples.build_media import RULES

    (root / "campaigns").mkdir(parents=True)
    for name, text in CAMPAIGNS.items():
        (root / "campaigns" / name).write_text(text)
    shutil.copytree(RULES / "brands", root / "brands")
    return root


def jpeg(image: np.ndarray, quality: int = 92) -> bytes:
    """(H, W, 3) uint8 RGB -> JPEG bytes."""
    ok, buf = cv2.imencode(
        ".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
    )
    assert ok
    return buf.tobytes()


def with_logo(image: np.ndarray, brand: str = "rival") -> tuple[np.ndarray, tuple]:
    """``image`` with ``brand``'s reference logo pasted bottom-right on a white card."""
    from examples.build_media import brand_logo, on_plate
    from vision.synthetic import paste_logo

    return paste_logo(image, on_plate(brand_logo(brand)), center=(0.7, 0.8), scale=0.4)


class ServerThread:
    """An asyncio loop in a daemon thread, running gRPC servers for synchronous tests."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float = 120) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def start(
        self,
        config: ServerConfig,
        pipeline: Pipeline | Callable[[], Pipeline],
        *,
        wait_ready: bool = True,
    ) -> RunningServer:
        factory = pipeline if callable(pipeline) else (lambda: pipeline)
        return self.run(start_server(config, pipeline_factory=factory, wait_ready=wait_ready))

    def stop(self, server: RunningServer, grace_s: float = 1.0) -> None:
        self.run(server.stop(grace_s))

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def local_config(rules: Path, **kw: Any) -> ServerConfig:
    """A config for tests: loopback, a free port, no rules watcher unless asked."""
    base = ServerConfig(rules_dir=rules, host="127.0.0.1", port=0, watch_rules=False)
    return replace(base, **kw)

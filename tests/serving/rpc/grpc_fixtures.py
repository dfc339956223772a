"""Helpers for gRPC server tests: a server on its own event-loop thread, rules, real media.

Tests talk to the server with ordinary synchronous gRPC channels over 127.0.0.1, as an ad
server would; the server runs ``start_server`` on an asyncio loop in a background thread.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from serving.rpc.config import ServerConfig
from serving.rpc.server import RunningServer, start_server
from tests.conftest import REPO
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


@dataclass(frozen=True)
class ServeProcess:
    """`onscreen serve` in a subprocess, past its "serving on" line: ``lines`` keeps filling
    with its stderr from ``reader``; join the reader after the process exits to read it all."""

    proc: subprocess.Popen
    address: str
    lines: list[str]
    reader: threading.Thread

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()


def start_serve(*args: str, wait_s: float = 120.0) -> ServeProcess:
    """Start ``onscreen serve ARGS`` (add ``--port 0``) and wait for its address."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "serving.commands.cli", "serve", *args],
        cwd=REPO, env={**os.environ, "PYTHONUNBUFFERED": "1"}, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    lines: list[str] = []
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            proc.wait(10)
            raise AssertionError(f"server exited early: {''.join(lines)}")
        lines.append(line)
        if "serving on " in line:
            reader = threading.Thread(target=lines.extend, args=(proc.stderr,), daemon=True)
            reader.start()
            return ServeProcess(proc, line.rsplit("serving on ", 1)[1].strip(), lines, reader)
    proc.kill()
    raise AssertionError("no 'serving on' line: " + "".join(lines))


def code_of(call: Callable[[], object]) -> tuple[Any, str]:
    """(code, details) of a finished call or raised RpcError."""
    import grpc

    try:
        call()
    except grpc.RpcError as e:
        return e.code(), e.details() or ""
    return grpc.StatusCode.OK, ""

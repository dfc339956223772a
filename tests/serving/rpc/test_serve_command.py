"""``onscreen serve`` as a user runs it: every bad argument exits 2 with one line before any
model loads, an empty API key never turns auth off, and SIGTERM exits within ``--grace``.

Each case is a real subprocess (``python -m serving.commands.cli serve ...``).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from serving._proto.onscreen.v1 import targeting_pb2, targeting_pb2_grpc
from tests.conftest import REPO, read_rgb
from tests.serving.rpc.grpc_fixtures import jpeg, start_serve, with_logo, write_rules

ARG_CHECK_S = 60.0
"""Longest a refused start may take in a subprocess, seconds (imports only, no model)."""


@pytest.fixture(scope="module")
def rules(tmp_path_factory) -> Path:
    return write_rules(tmp_path_factory.mktemp("serve-args") / "rules")


def _serve(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "serving.commands.cli", "serve", *args],
        cwd=REPO, capture_output=True, text=True, timeout=ARG_CHECK_S,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args, message",
    [
        (["--port", "70000"], "--port must be in 0..65535, got 70000"),
        (["--metrics-port", "-5"], "--metrics-port must be in 0..65535, got -5"),
        (["--max-batch", "0"], "--max-batch must be in 1..1024, got 0"),
        (["--max-queue", "0"], "--max-queue must be in 1..1000000, got 0"),
        (["--max-wait-ms", "nan"], "--max-wait-ms must be in 0..10000, got nan"),
        (["--grace", "-1"], "--grace must be in 0..600 s, got -1"),
        (["--media-root", "/nonexistent"], "--media-root /nonexistent is not a directory"),
        (["--decode-budget-mb", "1"], "--decode-budget-mb must be in"),
        (["--api-key", ""], "--api-key is empty (an unset variable?)"),
        (["--api-key", "k", "--api-key-file", "/x"], "--api-key and --api-key-file both given"),
        (["--api-key-file", "/nonexistent/key"], "--api-key-file /nonexistent/key: cannot read"),
    ],
)
def test_bad_arguments_exit_2_with_one_line_before_any_model_loads(
    rules, args, message, capsys, monkeypatch
) -> None:
    from serving.commands import cli
    from vision import pipeline

    def no_models(*a, **kw):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("models were loaded before the arguments were checked")

    monkeypatch.setattr(pipeline, "build_pipeline", no_models)
    monkeypatch.delenv("ONSCREEN_API_KEY", raising=False)
    assert cli.main(["serve", "--rules", str(rules), *args]) == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("onscreen serve: "), err
    assert message in lines[0]


def test_an_empty_key_file_or_variable_is_refused_not_auth_off(
    rules, tmp_path, capsys, monkeypatch
) -> None:
    from serving.commands import cli

    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    assert cli.main(["serve", "--rules", str(rules), "--api-key-file", str(empty)]) == 2
    assert f"--api-key-file {empty} is empty" in capsys.readouterr().err
    monkeypatch.setenv("ONSCREEN_API_KEY", "")
    assert cli.main(["serve", "--rules", str(rules)]) == 2
    assert "$ONSCREEN_API_KEY is set but empty" in capsys.readouterr().err


def test_the_key_file_drops_one_trailing_newline(tmp_path) -> None:
    from serving.rpc.auth import resolve_api_key

    f = tmp_path / "key"
    f.write_text("s3cret\n")
    assert resolve_api_key(None, f) == "s3cret"
    f.write_text("s3cret\r\n")
    assert resolve_api_key(None, f) == "s3cret"


def test_a_non_pem_certificate_is_reported_as_such(rules, tmp_path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_text("this is not a certificate\n")
    key.write_text("nor a key\n")
    proc = _serve("--rules", str(rules), "--port", "0", "--tls-cert", str(cert),
                  "--tls-key", str(key), "--no-watch")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert f"--tls-cert {cert} is not a PEM certificate" in proc.stderr
    assert "port in use" not in proc.stderr


def test_sigterm_exits_within_the_grace_period(rules, real_images) -> None:
    """Calls wait in the batcher for 30 s (--max-wait-ms): the drain cannot finish them, so the
    server must cancel them at the end of --grace 2 and exit, not wait for the batch."""
    pin, _ = with_logo(read_rgb(real_images["bus"]), "rival")
    image = jpeg(pin)
    server = start_serve(
        "--rules", str(rules), "--port", "0", "--max-batch", "1024", "--max-wait-ms", "10000",
        "--grace", "2", "--no-watch",
    )  # fmt: skip
    proc, address, lines, reader = server.proc, server.address, server.lines, server.reader
    try:
        with grpc.insecure_channel(address) as ch:
            stub = targeting_pb2_grpc.TargetingStub(ch)
            futures = [
                stub.TargetImage.future(
                    targeting_pb2.TargetImageRequest(image=image, media_id=f"g{i}"), timeout=60
                )
                for i in range(49)
            ]
            time.sleep(1.0)
            assert not any(f.done() for f in futures)
            t0 = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0, "".join(lines)
            took = time.monotonic() - t0
            codes = {f.exception().code() for f in futures if f.exception() is not None}
        assert took < 2 + 2.5, f"exit took {took:.1f} s with --grace 2"
        assert codes <= {grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE}, codes
        reader.join(5)
        assert "shutting down" in "".join(lines)
    finally:
        server.stop()

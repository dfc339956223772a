"""``onscreen train-logos`` (serving.commands.train_logos): parser, errors, a tiny run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from serving.commands import train_logos
from tests.conftest import REPO
from vision.errors import MediaError, ModelError
from vision.logo_training.registry import card_path


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="onscreen")
    train_logos.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def test_defaults_and_flags() -> None:
    args = _parse(["train-logos", "examples/rules"])
    assert (args.out, args.epochs, args.imgsz, args.images, args.batch) == (None,) * 5
    assert (args.device, args.seed, args.from_scratch) == ("cpu", 0, False)
    assert train_logos.default_out(REPO / "examples" / "rules") == Path("weights/logos-examples.pt")
    assert train_logos.default_out(REPO / "examples") == Path("weights/logos-examples.pt")
    assert _parse(["train-logos", "r", "--from-scratch"]).from_scratch is True
    args = _parse(
        [
            "train-logos",
            "r",
            "--out",
            "o.pt",
            "--epochs",
            "3",
            "--imgsz",
            "320",
            "--device",
            "cuda",
            "--images",
            "50",
            "--seed",
            "4",
        ]
    )
    assert (args.epochs, args.imgsz, args.device, args.images, args.seed) == (3, 320, "cuda", 50, 4)
    assert args.func is train_logos.run


def test_bad_arguments_are_our_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="not a directory"):
        train_logos.run(_parse(["train-logos", str(tmp_path / "absent"), "--out", "x.pt"]))
    with pytest.raises(ModelError, match="imgsz must be a multiple of 32"):
        train_logos.run(
            _parse(
                [
                    "train-logos",
                    str(REPO / "examples/rules"),
                    "--out",
                    str(tmp_path / "x.pt"),
                    "--imgsz",
                    "100",
                ]
            )
        )


@pytest.mark.slow
def test_tiny_run_writes_weights_card_and_a_json_line(tmp_path: Path, capsys) -> None:
    out = tmp_path / "weights" / "logos-examples.pt"
    args = _parse(
        [
            "train-logos",
            str(REPO / "examples/rules"),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--imgsz",
            "64",
            "--images",
            "4",
            "--batch",
            "2",
        ]
    )
    assert train_logos.run(args) == 0
    captured = capsys.readouterr()
    line = json.loads(captured.out)
    assert line["weights"] == str(out) and line["classes"] == ["acme", "rival"]
    assert out.is_file() and card_path(out).is_file()
    assert "train-logos: epoch 1/1" in captured.err

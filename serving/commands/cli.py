"""``onscreen`` command line: one subcommand module per verb under ``serving.commands``.

Each command module exposes ``register(subparsers)`` which adds its parser and sets
``func=run`` where ``run(args) -> int`` returns the exit code. Errors of our own
(``OnscreenError``) become a one-line message on stderr and exit code 2, never a traceback.

Usage errors are one line too, argparse's ``onscreen scan: error: ...`` (exit 2) without the
usage block: each value is checked by its ``type=`` (:mod:`serving.commands.arg_types`) when
parsed, and what needs several values together raises ``InvalidArgument`` from the command's
first step, before any model loads; both read the same.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import NoReturn

from vision.errors import InvalidArgument, OnscreenError

COMMANDS = (
    "analyze",
    "weights",
    "rules",
    "scan",
    "report",
    "catalog",
    "serve",
    "target",
    "train_logos",
)
"""Subcommand modules under ``serving.commands``, in the order ``--help`` lists them
(``target`` also registers ``health``)."""


def _configure_offline() -> None:
    # Nothing may install or download itself at run time: ultralytics checks these on import.
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_AUTOINSTALL", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")


class OneLineErrorParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line on stderr (exit 2): scripts and logs
    get the reason, people get ``--help`` for the rest. Subcommand parsers inherit the class."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(
        prog="onscreen",
        description="Contextual advertising from what is on screen.",
    )
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more logging (-vv: debug)"
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"serving.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"serving.commands.{name}":
                continue  # not built yet
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    _configure_offline()
    parser = build_parser()
    args = parser.parse_args(argv)
    level = [logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `onscreen ... | head`: the reader left, nothing is wrong
        sys.stderr.close()
        return 0
    except InvalidArgument as exc:  # the arguments, checked before any work
        print(f"onscreen {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OnscreenError as exc:
        print(f"onscreen {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"onscreen {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""The ``echo-embeddings`` command: ``embed`` files, ``eval`` templates (``sts``, ``retrieval``, ``toy``,
``ablations``), ``train`` and ``distill`` models, and ``serve`` them over HTTP.

Each command is a module of this package with ``register(commands)``, which adds its parser, and ``run(args)``;
[echo_embeddings.cli.options][] turns the settings models into options. Parsing imports no torch, so ``--help``
and ``--version`` answer at once.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from typing import Any

from .. import __version__
from ..errors import (
    ConfigError,
    EchoEmbeddingsError,
    InputError,
    MissingDependencyError,
    TextTooLongError,
    TrainingDataError,
)
from ..extras import missing_dependency

EXIT_USAGE, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 1, 130, 143
"""Exit codes: 2 for what the user gave (arguments, settings, input files), 1 for a failure at run time, 130 and 143
for SIGINT and SIGTERM (after cleaning up)."""

DEBUG_ENV = "ECHO_EMBEDDINGS_DEBUG"
"""Set it (to anything) for a traceback instead of the one-line error of an unexpected failure."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``with`` block (temporary outputs) cleans up."""


def report(message: str) -> None:
    """Tell the user what a command did or is doing: one line on stderr (stdout is for results)."""
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the command ``argv`` (default: ``sys.argv[1:]``) and return its exit code; errors are one line."""
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--version"]:  # answered before the commands' parsers are built (they import pydantic)
        print(f"echo-embeddings {__version__}")
        return 0
    parser = build_parser()
    if not argv:
        parser.print_help()
        return EXIT_USAGE
    command_line = shlex.join(["echo-embeddings", *argv])
    args = parser.parse_args(argv, namespace=argparse.Namespace(command_line=command_line))
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        with _library_log(quiet=getattr(args, "quiet", False)):
            args.run(args)
    except (InputError, ConfigError, TrainingDataError, TextTooLongError) as err:
        return _fail(err, EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except Terminated:
        return _fail("terminated", EXIT_TERMINATED)
    except Exception as err:
        if os.environ.get(DEBUG_ENV):
            raise
        missing = missing_dependency(err) if isinstance(err, ModuleNotFoundError) else None
        if missing is not None or isinstance(err, MissingDependencyError):
            return _fail(missing or err, EXIT_USAGE)
        known = isinstance(err, (EchoEmbeddingsError, OSError, ValueError))
        return _fail(err if known else f"{type(err).__name__}: {err} (set {DEBUG_ENV}=1 for a traceback)", EXIT_FAILURE)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The whole command line: a subcommand per module of this package."""
    from . import embed, evaluate, serve, train

    parser = argparse.ArgumentParser(
        prog="echo-embeddings",
        description="Echo embeddings from any causal LM: embed files, evaluate templates (eval), fine-tune (train, "
        "distill) and serve an OpenAI-compatible API (serve).",
    )
    parser.add_argument("--version", action="version", version=f"echo-embeddings {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for module in (embed, evaluate, train, serve):
        module.register(commands)
    return parser


@contextlib.contextmanager
def _library_log(*, quiet: bool) -> Iterator[None]:
    """While a command runs, what the library logs (what it builds in the cache, training's row groups) shows as
    plain lines on stderr: warnings always, information unless ``quiet``."""
    library = logging.getLogger("echo_embeddings")
    handler, level = _StderrHandler(), library.level
    handler.setFormatter(logging.Formatter("%(message)s"))
    library.addHandler(handler)
    library.setLevel(logging.WARNING if quiet else logging.INFO)
    try:
        yield
    finally:
        library.removeHandler(handler)
        library.setLevel(level)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes (a test's capture, a redirect)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _fail(error: object, code: int) -> int:
    report(f"echo-embeddings: error: {error}")
    return code


def _raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated

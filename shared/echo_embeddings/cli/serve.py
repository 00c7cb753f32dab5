"""``echo-embeddings serve``: an OpenAI-compatible embeddings API over HTTP ([echo_embeddings.serving][])."""

from __future__ import annotations

import argparse
import os
from typing import Any

from ..config import validated
from ..serving.config import API_KEY_ENV, ServerConfig
from . import Terminated, report
from .options import config_options, encoder_from, given, model_options, run_options


def register(commands: Any) -> None:
    """Add ``serve`` to the command line's subparsers."""
    serve = commands.add_parser(
        "serve",
        help="serve OpenAI-compatible embeddings over HTTP",
        description="Serve POST /v1/embeddings in OpenAI's format (plus input_type/instruction, and model "
        "'<name>:query' for the query form), GET /v1/models, /health and Prometheus /metrics, with dynamic "
        "batching of concurrent requests. SIGINT/SIGTERM finish in-flight requests, then exit.",
    )
    model_options(serve)
    run_options(serve)
    config_options(serve, ServerConfig, "server")
    serve.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Bind the port, load the model and serve until SIGINT or SIGTERM."""
    settings = given(args, ServerConfig.model_fields)
    settings.setdefault("api_key", os.environ.get(API_KEY_ENV) or None)
    config = validated(ServerConfig, **settings)
    from ..serving.app import bind, serve

    sock = bind(config)  # a busy port or a bad host fails here, before the model loads
    encoder = encoder_from(args, template=args.template)
    key = "an API key" if config.api_key else "no API key"
    port = sock.getsockname()[1]  # the port bound: --port 0 takes any free one
    report(f"serving {encoder.model_name} at http://{config.host}:{port}/v1 ({key})")
    try:
        serve(encoder, config, sock)
    except (Terminated, KeyboardInterrupt):  # uvicorn re-raises the signal once in-flight requests are done
        report("echo-embeddings: stopped")

"""``echo-embeddings serve``: echo embeddings behind OpenAI's ``POST /v1/embeddings``, with dynamic batching.

Any OpenAI-compatible client works unchanged (the ``openai`` package, LangChain's ``OpenAIEmbeddings``,
LlamaIndex's ``OpenAILikeEmbedding``). Extensions: ``input_type`` (``query``/``document``, as NVIDIA's and
Cohere's APIs name it) and ``instruction`` choose the template's query form; for clients that cannot send extra
fields, the model name ``<name>:query`` does the same. Texts from concurrent requests share forward passes
([echo_embeddings.serving.batcher][]). Every error is OpenAI's JSON error shape. ``GET /v1/models``, ``GET /health``,
Prometheus metrics at ``GET /metrics``. Install with ``pip install "echo-embeddings[server]"``.
"""

from __future__ import annotations

import base64
import hmac
import socket
import time
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import orjson
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from ..errors import ConfigError, InputError, TextTooLongError
from ..quantization import truncate
from .batcher import DynamicBatcher, QueueFull
from .config import ServerConfig

if TYPE_CHECKING:
    from ..encoder import EchoEncoder


class EmbeddingRequest(BaseModel):
    """OpenAI's embeddings request, with the ``input_type`` and ``instruction`` extensions."""

    model_config = ConfigDict(extra="forbid")

    input: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
    model: StrictStr
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: StrictInt | None = None
    user: StrictStr | None = None
    input_type: Literal["query", "document"] | None = None
    instruction: StrictStr | None = None


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        kind = {401: "authentication_error", 404: "not_found_error", 503: "server_error"}.get(
            self.status, "invalid_request_error" if self.status < 500 else "server_error"
        )
        body = {"error": {"message": self.message, "type": kind, "param": self.param, "code": self.code}}
        return JSONResponse(body, status_code=self.status, headers=headers)


class _Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("echo_requests", "Requests by status", ["status"], registry=self.registry)
        self.texts = Counter("echo_texts", "Texts embedded", registry=self.registry)
        self.tokens = Counter("echo_tokens", "Input tokens embedded", registry=self.registry)
        self.truncated = Counter("echo_truncated_texts", "Texts cut to max_text_tokens", registry=self.registry)
        self.queue_depth = Gauge("echo_queue_depth", "Texts waiting", registry=self.registry)
        buckets = (1, 2, 4, 8, 16, 32, 64, 128, 256)
        self.batch_size = Histogram(
            "echo_batch_size", "Texts per forward pass", buckets=buckets, registry=self.registry
        )
        self.pass_seconds = Histogram("echo_pass_seconds", "Seconds per forward pass", registry=self.registry)
        self.latency = Histogram("echo_request_seconds", "Request latency", registry=self.registry)

    def observe_pass(self, texts: int, seconds: float) -> None:
        self.batch_size.observe(texts)
        self.pass_seconds.observe(seconds)


def create_app(encoder: EchoEncoder, config: ServerConfig) -> FastAPI:
    """The FastAPI application serving ``encoder`` (an [EchoEncoder][echo_embeddings.EchoEncoder])."""
    if encoder.config.precision != "float32":
        raise ConfigError(f"precision={encoder.config.precision!r}: the server answers float vectors (OpenAI's format)")
    name = config.served_model_name or encoder.model_name
    dimensions = served_dimensions(encoder)
    metrics = _Metrics()
    batcher = DynamicBatcher(
        encoder,
        capacity=config.queue_size,
        batch_size=encoder.config.batch_size,
        wait_s=config.batch_wait_ms / 1000,
        on_pass=metrics.observe_pass,
    )
    metrics.queue_depth.set_function(lambda: batcher.depth)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        batcher.close()  # uvicorn has finished every in-flight request by now

    # No schema or docs pages (they would be open without the key), and no redirect for a trailing slash.
    app = FastAPI(
        title="echo-embeddings", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None,
        redirect_slashes=False,
    )  # fmt: skip

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        metrics.requests.labels(str(error.status_code)).inc()
        detail = f"{request.method} {request.url.path}: {error.detail}"
        return ApiError(error.status_code, detail).response(headers=getattr(error, "headers", None))

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError) -> JSONResponse:
        metrics.requests.labels(str(error.status)).inc()
        headers = {"Retry-After": "1"} if error.status == 503 else None
        return error.response(headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        metrics.requests.labels("500").inc()
        return ApiError(500, f"internal error: {type(error).__name__}: {error}").response()

    app.add_middleware(_Guard, api_key=config.api_key, max_body_bytes=config.max_body_bytes, metrics=metrics)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus() -> PlainTextResponse:
        return PlainTextResponse(generate_latest(metrics.registry).decode(), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        entries = [
            {"id": model_id, "object": "model", "owned_by": "echo-embeddings"} for model_id in (name, name + ":query")
        ]
        return {"object": "list", "data": entries}

    async def embeddings(request: Request) -> Response:
        start = time.perf_counter()
        body = _parse(await _read_body(request, config.max_body_bytes))
        items = [body.input] if isinstance(body.input, str) else body.input
        if items and not isinstance(items[0], str):
            raise ApiError(400, "token-id arrays are not supported: send the texts as strings", param="input")
        texts = cast(list[str], items)  # the model's type allows no list that mixes strings and numbers
        _check_request(body, texts, name, dimensions, config)
        query = body.input_type == "query" or body.model == name + ":query"
        try:
            encoder.check_lengths(texts, query=query, instruction=body.instruction, name="input")
        except TextTooLongError as error:
            raise ApiError(400, str(error), param="input") from None
        except ConfigError as error:  # an instruction that leaves no room for the text within the positions
            raise ApiError(400, f"instruction: {error}", param="instruction") from None
        try:
            vectors, counts, truncated = await batcher.embed(texts, query=query, instruction=body.instruction)
        except QueueFull as error:
            raise ApiError(503, f"server busy: {error}", code="queue_full") from None
        tokens = int(counts.sum())
        metrics.texts.inc(len(texts))
        metrics.tokens.inc(tokens)
        metrics.truncated.inc(int(truncated.sum()))
        metrics.requests.labels("200").inc()
        metrics.latency.observe(time.perf_counter() - start)
        if body.dimensions is not None:
            vectors = truncate(vectors, body.dimensions, normalize=encoder.normalize)
        data = [
            {"object": "embedding", "index": i, "embedding": _encode_vector(vector, body.encoding_format)}
            for i, vector in enumerate(vectors)
        ]
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        payload = {"object": "list", "data": data, "model": body.model, "usage": usage}
        return Response(orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")

    # A plain Starlette route: FastAPI's dependency solving cost more per request than the handler's own work.
    app.add_route("/v1/embeddings", embeddings, methods=["POST"])
    return app


def bind(config: ServerConfig) -> socket.socket:
    """A listening socket on ``config.host:config.port``, made before the model loads so that a busy port or a
    host that does not resolve fails at once: an InputError naming the address."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(config.host, config.port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as error:  # socket.gaierror included
        raise InputError(f"cannot listen on {config.host}:{config.port}: {error.strerror or error}") from None
    sock.listen(2048)
    return sock


def serve(encoder: EchoEncoder, config: ServerConfig, sock: socket.socket | None = None) -> None:
    """Serve on ``sock`` (else a socket bound here) until SIGINT/SIGTERM; in-flight requests finish first."""
    import uvicorn

    app = create_app(encoder, config)
    server = uvicorn.Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="warning"))
    server.run(sockets=[sock or bind(config)])


class _Guard:
    """ASGI middleware: on ``/v1/`` paths, 401 without the API key and 413 for a declared body over the limit,
    before the body is read. Plain ASGI, as Starlette's ``BaseHTTPMiddleware`` runs every request through an extra
    task and stream."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, max_body_bytes: int, metrics: _Metrics) -> None:
        self.app, self.api_key, self.max_body_bytes, self.metrics = app, api_key, max_body_bytes, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            headers = Headers(scope=scope)
            try:
                _check_key(headers, self.api_key)
                _check_declared_size(headers, self.max_body_bytes)
            except ApiError as error:
                self.metrics.requests.labels(str(error.status)).inc()
                await error.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _check_key(headers: Headers, api_key: str | None) -> None:
    if api_key is None:
        return
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.encode(), api_key.encode()):
        raise ApiError(401, "missing or wrong API key: send 'Authorization: Bearer <key>'", code="invalid_api_key")


def _check_declared_size(headers: Headers, limit: int) -> None:
    """413 at once for a body whose Content-Length is over ``limit`` (before it is read)."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"request body of {declared} bytes exceeds the limit of {limit} bytes")


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, read here (not in middleware, where reading would use it up) and stopped past ``limit`` bytes
    when no Content-Length declared its size."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(raw: bytes) -> EmbeddingRequest:
    """The request, parsed and validated in one pass (pydantic's JSON parser); a 400 naming the first fault."""
    try:
        return EmbeddingRequest.model_validate_json(raw)
    except ValidationError as error:
        first = error.errors()[0]
        if first["type"] == "json_invalid":
            raise ApiError(400, f"the body is not valid JSON: {first['msg'].removeprefix('Invalid JSON: ')}") from None
        param = ".".join(str(part) for part in first["loc"]) or None
        message = f"{param}: {first['msg']}" if param else f"the body must be a JSON object: {first['msg']}"
        raise ApiError(400, message, param=param) from None


def served_dimensions(encoder: EchoEncoder) -> list[int]:
    """The ``dimensions`` a request may ask for: the encoder's, and the smaller sizes its model was trained for
    (``matryoshka_dims``); vLLM likewise refuses sizes a model was not trained for."""
    trained = encoder.config.matryoshka_dims or []
    return sorted({encoder.dim, *(d for d in trained if d < encoder.dim)}, reverse=True)


def _check_request(
    body: EmbeddingRequest, texts: list[str], name: str, dimensions: list[int], config: ServerConfig
) -> None:
    if body.model not in (name, name + ":query"):
        raise ApiError(404, f"model {body.model!r} is not served here; models: {name!r}, {name + ':query'!r}",
                       param="model", code="model_not_found")  # fmt: skip
    if body.dimensions is not None and body.dimensions not in dimensions:
        raise ApiError(400, f"dimensions={body.dimensions}: this model was trained for {dimensions}",
                       param="dimensions")  # fmt: skip
    if not texts:
        raise ApiError(400, "input is empty: send at least one text", param="input")
    if len(texts) > config.max_texts_per_request:
        raise ApiError(413, f"{len(texts)} texts exceed the limit of {config.max_texts_per_request} per request")
    if len(texts) > config.queue_size:
        raise ApiError(413, f"{len(texts)} texts exceed the queue's {config.queue_size}: split the request")
    for i, text in enumerate(texts):
        if len(text) > config.max_chars_per_text:
            raise ApiError(413, f"input[{i}] has {len(text)} characters; the limit is {config.max_chars_per_text}",
                           param="input")  # fmt: skip


def _encode_vector(vector: np.ndarray, encoding_format: str) -> np.ndarray | str:
    """OpenAI's base64 (little-endian float32 bytes), or the float32 row itself, which orjson writes as a list of
    the shortest decimals that read back to the same float32 values."""
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
    return vector

"""The OpenAI-compatible server: real server processes on free loopback ports, driven by real clients."""

import base64
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from echo_embeddings import EchoEncoder

from .conftest import stsb_sentences

NAME = "tiny-echo"
KEY = "test-key-123"
TEXTS = ["A man is playing a guitar.", "Someone plays the guitar on stage.", "A cat sleeps on the sofa."]


class Server:
    """``echo-embeddings serve`` in a subprocess on a free loopback port; ready once /health answers. With a model
    folder, read with echo-instruct and served as NAME; with None, the default model and settings."""

    def __init__(self, model_dir, *options: str) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        command = [sys.executable, "-m", "echo_embeddings.cli", "serve", "--device", "cpu", "--port", str(self.port)]
        if model_dir is not None:
            command += ["--model", str(model_dir), "--template", "echo-instruct", "--served-model-name", NAME]
        command += options
        self.process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited: {self.process.stderr.read()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.process.kill()
        raise TimeoutError("the server did not start in 180 s")

    def post(self, body, *, key: str | None = KEY, **kwargs) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.post(self.url + "/v1/embeddings", json=body, headers=headers, timeout=30, **kwargs)

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit code and everything the server wrote to stderr (a clean stop exits 0)."""
        self.process.send_signal(signal.SIGTERM)
        _, stderr = self.process.communicate(timeout=30)
        return self.process.returncode, stderr


@pytest.fixture(scope="module")
def server(tiny_model_dir):
    running = Server(
        tiny_model_dir,
        "--api-key", KEY, "--max-texts-per-request", "64", "--max-chars-per-text", "2000",
        "--max-body-bytes", "100000",
    )  # fmt: skip
    yield running
    code, stderr = running.stop()
    assert code == 0 and "Traceback" not in stderr and "stopped" in stderr, stderr


@pytest.fixture(scope="module")
def local(tiny_model_dir):
    return EchoEncoder.from_pretrained(str(tiny_model_dir), template="echo-instruct", device="cpu")


def cos(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


def test_openai_client_documents_and_queries(server, local):
    from openai import OpenAI

    client = OpenAI(base_url=server.url + "/v1", api_key=KEY)
    expected = local.encode_documents(TEXTS)
    response = client.embeddings.create(model=NAME, input=TEXTS, encoding_format="float")
    assert [d.index for d in response.data] == [0, 1, 2]
    assert (cos([d.embedding for d in response.data], expected) >= 0.9999).all()
    packed = client.embeddings.create(model=NAME, input=TEXTS, encoding_format="base64")  # returned undecoded
    vectors = [np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in packed.data]
    assert (cos(vectors, expected) >= 0.9999).all()
    _, stats = local.encode(TEXTS, return_stats=True)  # usage counts the tokens of the pass's own tokenization
    assert response.usage.prompt_tokens == response.usage.total_tokens == int(stats.text_tokens.sum()) > 0
    expected_queries = local.encode_queries(TEXTS)
    by_field = client.embeddings.create(model=NAME, input=TEXTS, extra_body={"input_type": "query"})
    by_name = client.embeddings.create(model=NAME + ":query", input=TEXTS)
    for response in (by_field, by_name):
        assert (cos([d.embedding for d in response.data], expected_queries) >= 0.9999).all()
    instructed = client.embeddings.create(
        model=NAME, input=TEXTS[:1], extra_body={"input_type": "query", "instruction": "Find music"}
    )
    assert cos(instructed.data[0].embedding, local.encode_queries(TEXTS[:1], instruction="Find music")[0]) >= 0.9999
    single = client.embeddings.create(model=NAME, input=TEXTS[2])
    assert cos(single.data[0].embedding, local.encode_documents(TEXTS[2:])[0]) >= 0.9999
    assert client.embeddings.create(model=NAME, input=TEXTS, dimensions=local.dim).data


def test_langchain_and_llamaindex_openai_clients(server, local):
    from langchain_openai import OpenAIEmbeddings
    from llama_index.embeddings.openai_like import OpenAILikeEmbedding

    base = server.url + "/v1"
    documents = OpenAIEmbeddings(model=NAME, base_url=base, api_key=KEY, check_embedding_ctx_length=False)
    queries = OpenAIEmbeddings(model=NAME + ":query", base_url=base, api_key=KEY, check_embedding_ctx_length=False)
    assert (cos(documents.embed_documents(TEXTS), local.encode_documents(TEXTS)) >= 0.9999).all()
    assert cos(queries.embed_query(TEXTS[0]), local.encode_queries(TEXTS[:1])[0]) >= 0.9999
    llama_documents = OpenAILikeEmbedding(model_name=NAME, api_base=base, api_key=KEY)
    llama_queries = OpenAILikeEmbedding(model_name=NAME + ":query", api_base=base, api_key=KEY)
    assert (cos(llama_documents.get_text_embedding_batch(TEXTS), local.encode_documents(TEXTS)) >= 0.9999).all()
    assert cos(llama_queries.get_query_embedding(TEXTS[1]), local.encode_queries(TEXTS[1:2])[0]) >= 0.9999


@pytest.mark.parametrize(
    ("body", "key", "status", "message"),
    [
        ({"model": NAME, "input": "x"}, None, 401, "missing or wrong API key"),
        ({"model": NAME, "input": "x"}, "wrong-key", 401, "missing or wrong API key"),
        ({"model": NAME, "input": 5}, KEY, 400, "input"),
        ({"model": NAME, "input": ["ok", None]}, KEY, 400, "input"),
        ({"model": NAME, "input": "x", "encoding_format": "int8"}, KEY, 400, "encoding_format"),
        ({"model": NAME, "input": "x", "dimensions": 7}, KEY, 400, "dimensions=7: this model was trained for [64]"),
        ({"model": NAME, "input": [[1, 2, 3]]}, KEY, 400, "token-id arrays are not supported"),
        ({"model": NAME, "input": []}, KEY, 400, "input is empty"),
        ({"model": "gpt-4", "input": "x"}, KEY, 404, "model 'gpt-4' is not served here"),
        ({"model": NAME, "input": ["x"] * 65}, KEY, 413, "65 texts exceed the limit of 64 per request"),
        ({"model": NAME, "input": "x" * 2001}, KEY, 413, "input[0] has 2001 characters; the limit is 2000"),
        ({"model": NAME, "input": ["y" * 1999] * 60}, KEY, 413, "exceeds the limit of 100000 bytes"),
        ({"model": NAME, "input": "x", "temperature": 1}, KEY, 400, "temperature"),
        ({"model": NAME, "input": "x", "instruction": "word " * 3000}, KEY, 400, "instruction: "),
    ],
)
def test_errors_are_openai_shaped(server, body, key, status, message):
    response = server.post(body, key=key)
    assert response.status_code == status
    error = response.json()["error"]
    assert message in error["message"] and "Traceback" not in response.text
    assert set(error) == {"message", "type", "param", "code"}


def test_chunked_bodies_are_read_and_limited(server, local):
    """A body without Content-Length (chunked) is read whole once, and cut off past the size limit."""
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}

    def chunked(payload: bytes):
        yield from (payload[i : i + 100] for i in range(0, len(payload), 100))

    body = json.dumps({"model": NAME, "input": TEXTS}).encode()
    response = httpx.post(server.url + "/v1/embeddings", content=chunked(body), headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert (cos([d["embedding"] for d in response.json()["data"]], local.encode_documents(TEXTS)) >= 0.9999).all()
    big = json.dumps({"model": NAME, "input": ["y" * 1999] * 60}).encode()
    response = httpx.post(server.url + "/v1/embeddings", content=chunked(big), headers=headers, timeout=30)
    assert response.status_code == 413 and "exceeds the limit of 100000 bytes" in response.json()["error"]["message"]


def test_bad_json_and_read_endpoints(server):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    response = httpx.post(server.url + "/v1/embeddings", content=b"{not json", headers=headers)
    assert response.status_code == 400 and "not valid JSON" in response.json()["error"]["message"]
    models = httpx.get(server.url + "/v1/models", headers=headers).json()
    assert [m["id"] for m in models["data"]] == [NAME, NAME + ":query"]
    assert httpx.get(server.url + "/v1/models").status_code == 401
    metrics = httpx.get(server.url + "/metrics").text
    for name in ("echo_requests_total", "echo_texts_total", "echo_tokens_total", "echo_truncated_texts_total",
                 "echo_queue_depth", "echo_batch_size_bucket", "echo_pass_seconds_bucket",
                 "echo_request_seconds_bucket"):  # fmt: skip
        assert name in metrics


def test_every_error_is_openai_shaped_and_nothing_is_open_without_the_key(server):
    headers = {"Authorization": f"Bearer {KEY}"}
    for method, path, status in [("GET", "/v1/nope", 404), ("GET", "/v1/embeddings", 405),
                                 ("POST", "/v1/embeddings/", 404), ("GET", "/openapi.json", 404)]:  # fmt: skip
        response = httpx.request(method, server.url + path, headers=headers, json={}, follow_redirects=False)
        assert response.status_code == status, (path, response.status_code)
        assert set(response.json()["error"]) == {"message", "type", "param", "code"}
    array = httpx.post(server.url + "/v1/embeddings", json=["a", "b"], headers=headers)
    assert array.status_code == 400 and array.json()["error"]["message"].startswith("the body must be a JSON object")


def test_64_concurrent_clients_get_their_own_vectors_in_shared_passes(server, local):
    texts = stsb_sentences(64)
    expected = local.encode_documents(texts)
    with ThreadPoolExecutor(64) as pool:
        responses = list(pool.map(lambda text: server.post({"model": NAME, "input": text}), texts))
    assert all(r.status_code == 200 for r in responses)
    got = np.array([r.json()["data"][0]["embedding"] for r in responses])
    assert (cos(got, expected) >= 0.9999).all()
    metrics = httpx.get(server.url + "/metrics").text
    passes = float(_metric(metrics, "echo_batch_size_count"))
    embedded = float(_metric(metrics, "echo_batch_size_sum"))
    assert embedded / passes > 1.5, (embedded, passes)  # texts from different requests shared passes
    assert float(_metric(metrics, "echo_pass_seconds_count")) == passes
    assert float(_metric(metrics, "echo_pass_seconds_sum")) > 0


def test_full_queue_answers_503_and_shutdown_finishes_in_flight_requests(tiny_model_dir):
    slow = Server(tiny_model_dir, "--queue-size", "8", "--batch-wait-ms", "1500")
    # a pass of 8 texts, so the next pass waits (up to 1.5 s) for 8 texts to be queued
    assert slow.post({"model": NAME, "input": ["w"] * 8}, key=None).status_code == 200
    first: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: first.append(slow.post({"model": NAME, "input": ["a"] * 6}, key=None)))
    sender.start()
    deadline = time.monotonic() + 30  # the first request's 6 texts wait in the queue for 1.5 s; see them arrive
    while float(_metric(httpx.get(slow.url + "/metrics").text, "echo_queue_depth")) < 6:
        assert time.monotonic() < deadline and sender.is_alive(), "the first request never reached the queue"
        time.sleep(0.02)
    busy = slow.post({"model": NAME, "input": ["b"] * 6}, key=None)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1"
    assert "server busy" in busy.json()["error"]["message"]
    code, stderr = slow.stop()  # SIGTERM while the first request is still in flight
    sender.join(30)
    assert first and first[0].status_code == 200 and len(first[0].json()["data"]) == 6
    assert code == 0 and "Traceback" not in stderr and "stopped" in stderr, stderr


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--queue-size", "0", "queue_size: Input should be greater than or equal to 1"),
        ("--api-key", "", "api_key: an empty key would let in an empty Bearer token"),  # not "no key"
    ],
)
def test_bad_settings_fail_before_serving(tiny_model_dir, option, value, message):
    result = subprocess.run(
        [sys.executable, "-m", "echo_embeddings.cli", "serve", "--model", str(tiny_model_dir), option, value],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_port_0_reports_the_port_it_bound(tiny_model_dir):
    command = [sys.executable, "-m", "echo_embeddings.cli", "serve", "--model", str(tiny_model_dir), "--port", "0"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        banner = next(line for line in process.stderr if "serving" in line)  # after any loading messages
        port = int(re.search(r"at http://127\.0\.0\.1:(\d+)/v1", banner).group(1))
        assert port != 0 and httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)


@pytest.mark.parametrize("where", ["busy port", "unknown host"])
def test_an_address_it_cannot_listen_on_fails_before_the_model_loads(tmp_path, where):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = str(busy.getsockname()[1])
        host = "127.0.0.1" if where == "busy port" else "no-such-host.invalid"
        missing_model = str(tmp_path / "no-model-here")  # were it loaded first, this would be the error
        result = subprocess.run(
            [sys.executable, "-m", "echo_embeddings.cli", "serve", "--model", missing_model, "--host", host,
             "--port", port],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert f"cannot listen on {host}:{port}" in result.stderr and "serving" not in result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1


def _metric(text: str, name: str) -> str:
    return next(line.split()[-1] for line in text.splitlines() if line.startswith(name + " "))


def test_a_pass_waits_for_as_many_texts_as_the_last_one_held(tiny_encoder):
    """After a pass of 8 texts, 8 single-text requests arriving 20 ms apart share one pass (a 30 s wait cap
    leaves no room for timing luck); after a pass of one, a lone request does not wait at all."""
    import asyncio

    from echo_embeddings.serving.batcher import DynamicBatcher

    async def staggered(batcher: DynamicBatcher, i: int) -> np.ndarray:
        await asyncio.sleep(0.02 * i)
        return (await batcher.embed([TEXTS[i % 3]])).vectors

    async def wave(batcher: DynamicBatcher) -> list[np.ndarray]:
        await batcher.embed([TEXTS[i % 3] for i in range(8)])
        return await asyncio.gather(*(staggered(batcher, i) for i in range(8)))

    async def lone(batcher: DynamicBatcher) -> float:
        await batcher.embed([TEXTS[0]])
        start = time.monotonic()
        await batcher.embed([TEXTS[1]])
        return time.monotonic() - start

    runs = {}
    for name, scenario in (("wave", wave), ("lone", lone)):
        sizes: list[int] = []

        def record(texts: int, seconds: float, sizes: list[int] = sizes) -> None:
            sizes.append(texts)

        batcher = DynamicBatcher(tiny_encoder, capacity=64, batch_size=32, wait_s=30.0, on_pass=record)
        try:
            runs[name] = (asyncio.run(scenario(batcher)), sizes)
        finally:
            batcher.close()
    vectors, sizes = runs["wave"]
    assert sizes == [8, 8]
    expected = tiny_encoder.encode([TEXTS[i % 3] for i in range(8)])
    np.testing.assert_allclose(np.concatenate(vectors), expected, atol=1e-5)
    seconds, sizes = runs["lone"]
    assert sizes == [1, 1] and seconds < 15  # it would have waited 30 s for a second text

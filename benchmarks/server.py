"""Server throughput and latency against in-process ``encode``, on loopback, bounded in requests and time.

Starts ``echo-embeddings serve`` (default model) on a free loopback port, then sends the same STS-B test sentences
with 1, 8, 32 and 64 concurrent clients, one text per request and 32 texts per request; in the same run, the same
texts go through ``EchoEncoder.encode`` in-process (while the server idles) just before every run of every arm, and
the run is compared with that in-process run: this shared machine's speed drifts by 10-20% over minutes, so a
baseline measured once can be far from the one an arm ran beside. Each arm runs ``--repeats`` times; its reported
run is the one with the median ratio. "Model busy" is the share of an arm's time the server spent in forward
passes (its ``echo_pass_seconds`` metric): how well the batcher keeps the model fed, whatever the machine's speed.
Writes ``benchmarks/results/server.json`` and prints a table.

The clients share the machine's cores with the server, so their own cost counts against the server's numbers.
They use aiohttp by default, as load generators favour a lean client: on these 2 cores httpx spends about 3 ms
of CPU on a request and aiohttp about 0.25 ms, which with httpx stretched the pause between two passes (32
replies read, 32 requests sent) from about 30 ms to about 100 ms. ``--client httpx`` measures with httpx.

``--model random:smollm2`` serves seeded random weights of the default model's shape (speed does not depend on the
weights; the GPU machine cannot take the real GGUF in one transfer), ``random:tiny`` a two-layer model of the same
width, whose passes take almost no time: its requests/s measure everything but the model. ``--before DIR`` also
serves the same model from another checkout's ``shared/`` (e.g. ``git worktree add DIR REV``) and runs every arm
against both servers in turn, so a change to the server is measured before and after in one run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import httpx
import numpy as np
from measure import SMOLLM2_135M, random_model

from echo_embeddings import DEFAULT_MODEL, EchoEncoder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MODEL = "echo"
ARMS = "1x1,1x8,1x32,1x64,32x1,32x8,32x32,32x64"
"""Texts per request x concurrent clients of each arm, in the order they run."""
RANDOM_SHAPES = {
    "smollm2": SMOLLM2_135M,
    "tiny": {**SMOLLM2_135M, "num_hidden_layers": 1, "intermediate_size": 64},  # the default's width, ~no compute
}

Post = Callable[[str, dict], Awaitable[int]]
"""Sends a JSON body to a URL and answers the response's status, its body read."""


@asynccontextmanager
async def http_client(library: str, connections: int) -> AsyncIterator[Post]:
    """A :data:`Post` over ``connections`` pooled keep-alive connections, with aiohttp or httpx."""
    if library == "httpx":
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with httpx.AsyncClient(timeout=300, limits=limits) as http:

            async def post_httpx(url: str, body: dict) -> int:
                return (await http.post(url, json=body)).status_code

            yield post_httpx
        return
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=300)) as session:

        async def post_aiohttp(url: str, body: dict) -> int:
            async with session.post(url, json=body) as response:
                await response.read()
                return response.status

        yield post_aiohttp


async def run_clients(
    url: str, texts: list[str], clients: int, per_request: int, deadline: float, *, library: str = "aiohttp"
) -> dict:
    """Send ``texts`` in requests of ``per_request`` from ``clients`` concurrent clients; latency per request."""
    requests = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]
    latencies: list[float] = []
    errors = sent = 0
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def client(post: Post) -> None:
        nonlocal errors, sent
        while not queue.empty() and time.monotonic() < deadline:
            batch = queue.get_nowait()
            start = time.perf_counter()
            status = await post(url, {"model": MODEL, "input": batch})
            latencies.append(time.perf_counter() - start)
            errors += status != 200
            sent += len(batch)

    async with http_client(library, clients) as post:
        start = time.perf_counter()
        await asyncio.gather(*(client(post) for _ in range(clients)))
        seconds = time.perf_counter() - start
    return {
        "clients": clients,
        "texts_per_request": per_request,
        "requests": len(latencies),
        "seconds": seconds,
        "errors": errors,
        "texts_per_second": sent / seconds,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
    }


def pass_seconds(base: str) -> float:
    """The server's time in forward passes so far, from its ``echo_pass_seconds`` metric."""
    for line in httpx.get(base + "/metrics").text.splitlines():
        if line.startswith("echo_pass_seconds_sum "):
            return float(line.split()[1])
    raise RuntimeError("the server's /metrics has no echo_pass_seconds_sum")


def median_run(runs: list[dict]) -> dict:
    """The run with the median ratio to in-process (the lower middle one for an even count)."""
    return sorted(runs, key=lambda run: run["vs_in_process"])[(len(runs) - 1) // 2]


def in_process_rate(encoder: EchoEncoder, texts: list[str]) -> float:
    """Texts per second of one in-process ``encode`` of ``texts``."""
    start = time.perf_counter()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - start)


def model_path(model: str, tokenizer: str | None, work: Path) -> str:
    """``model``, or for ``random:SHAPE`` a folder with random weights of that shape and ``tokenizer``'s vocabulary
    (default: the default model's tokenizer)."""
    if not model.startswith("random:"):
        return model
    from transformers import AutoTokenizer

    from echo_embeddings import load_model

    loaded = AutoTokenizer.from_pretrained(tokenizer) if tokenizer else load_model(DEFAULT_MODEL).tokenizer
    return str(random_model(work / model.replace(":", "-"), loaded, RANDOM_SHAPES[model.removeprefix("random:")]))


def start_server(model: str, device: str, source: Path | None) -> tuple[subprocess.Popen, str]:
    """``echo-embeddings serve`` of ``model`` on a free loopback port, from ``source``'s ``shared/`` if given; the
    process and its base URL once ``/health`` answers."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "echo_embeddings.cli", "serve", "--model", model, "--device", device,
               "--port", str(port), "--served-model-name", MODEL]  # fmt: skip
    env = dict(os.environ)
    if source is not None:
        env["PYTHONPATH"] = f"{source / 'shared'}{os.pathsep}{env.get('PYTHONPATH', '')}"
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL, env=env)
    base = f"http://127.0.0.1:{port}"
    for _ in range(1500):
        try:
            if httpx.get(base + "/health", timeout=1).status_code == 200:
                return server, base
        except httpx.TransportError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError(f"the server from {source or ROOT} did not answer /health in 5 minutes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256, help="STS-B test sentences sent per arm")
    parser.add_argument("--seconds", type=float, default=120, help="time limit per arm")
    parser.add_argument("--repeats", type=int, default=3, help="runs of every arm, each after its own in-process run")
    parser.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp", help="the clients' library")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a model, or random:smollm2 / random:tiny")
    parser.add_argument("--tokenizer", help="for random:*, the tokenizer folder (default: the default model's)")
    parser.add_argument("--device", default="cpu", help="where the server and the in-process encoder run")
    parser.add_argument("--arms", default=ARMS, help="comma-separated TEXTSxCLIENTS: texts per request, clients")
    parser.add_argument("--before", type=Path, help="a checkout whose server to measure beside this one's")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "server.json")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (default: ../shared/data)")
    args = parser.parse_args()
    texts = [json.loads(line)["sentence1"] for line in open(args.data / "sts" / "stsb-test.jsonl", encoding="utf-8")]
    texts = texts[: args.texts]
    arms = [tuple(int(n) for n in arm.split("x")) for arm in args.arms.split(",")]
    model = model_path(args.model, args.tokenizer, Path(tempfile.mkdtemp(prefix="server-bench-")))
    sources = {"after": None, **({"before": args.before.resolve()} if args.before else {})}
    servers = {label: start_server(model, args.device, source) for label, source in sources.items()}
    runs: dict[tuple[str, int, int], list[dict]] = {(label, *arm): [] for arm in arms for label in servers}
    try:
        encoder = EchoEncoder.from_pretrained(model, device=args.device)
        encoder.encode(texts[:8])  # warm-up
        for _, base in servers.values():  # warm-up
            httpx.post(base + "/v1/embeddings", json={"model": MODEL, "input": texts[:8]}, timeout=300)
        for _ in range(args.repeats):
            for per_request, clients in arms:
                in_process = in_process_rate(encoder, texts)
                for label, (_, base) in servers.items():
                    deadline = time.monotonic() + args.seconds
                    busy = pass_seconds(base)
                    url = base + "/v1/embeddings"
                    run = asyncio.run(run_clients(url, texts, clients, per_request, deadline, library=args.client))
                    run["server"] = label
                    run["requests_per_second"] = run["requests"] / run["seconds"]
                    run["model_busy"] = (pass_seconds(base) - busy) / run["seconds"]
                    run["in_process_texts_per_second"] = in_process
                    run["vs_in_process"] = run["texts_per_second"] / in_process
                    runs[label, per_request, clients].append(run)
                    print(json.dumps(run), flush=True)
    finally:
        for server, _ in servers.values():
            server.send_signal(signal.SIGTERM)
            server.wait(60)
    report(args, model, runs)


def report(args: argparse.Namespace, model: str, runs: dict[tuple[str, int, int], list[dict]]) -> None:
    """Writes ``args.out`` and prints the table: each arm's median run, and with ``--before`` the two servers'
    requests/s side by side."""
    arms = []
    for arm_runs in runs.values():
        arms.append({**median_run(arm_runs), "runs_vs_in_process": [run["vs_in_process"] for run in arm_runs]})
    rates = [run["in_process_texts_per_second"] for arm_runs in runs.values() for run in arm_runs]
    result = {
        "model": args.model if args.model.startswith("random:") else model,
        "device": args.device,
        "texts": args.texts,
        "client": args.client,
        "repeats": args.repeats,
        "before": str(args.before) if args.before else None,
        "in_process_texts_per_second": statistics.median(rates),
        "in_process_range": [min(rates), max(rates)],
        "arms": arms,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"in-process encode: median {statistics.median(rates):.1f} texts/s, {min(rates):.1f}-{max(rates):.1f}")
    header = ["server", "texts/request", "clients", "requests/s", "texts/s", "in-process", "vs in-process",
              "each run", "model busy", "p50 ms", "p99 ms", "errors"]  # fmt: skip
    print("| " + " | ".join(header) + " |")
    print("|---|" + "---:|" * 6 + "---|" + "---:|" * 4)
    for arm in arms:
        cells = [
            arm["server"],
            arm["texts_per_request"],
            arm["clients"],
            f"{arm['requests_per_second']:.0f}",
            f"{arm['texts_per_second']:.1f}",
            f"{arm['in_process_texts_per_second']:.1f}",
            f"{arm['vs_in_process']:.2f}",
            ", ".join(f"{ratio:.2f}" for ratio in arm["runs_vs_in_process"]),
            f"{arm['model_busy']:.0%}",
        ]
        cells += [f"{arm['p50_ms']:.0f}", f"{arm['p99_ms']:.0f}", arm["errors"]]
        print("| " + " | ".join(str(cell) for cell in cells) + " |")
    if args.before:
        for (label, per_request, clients), arm_runs in runs.items():
            if label == "after":
                after = statistics.median(run["requests_per_second"] for run in arm_runs)
                before = statistics.median(run["requests_per_second"] for run in runs["before", per_request, clients])
                ratio = after / before
                print(f"{per_request}x{clients}: {after:.0f} requests/s after, {before:.0f} before: {ratio:.2f}x")


if __name__ == "__main__":
    main()

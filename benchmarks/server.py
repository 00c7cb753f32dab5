"""Server throughput and latency against in-process ``encode``, on loopback, bounded in requests and time.

Starts ``echo-embeddings serve`` (default model) on a free loopback port, then sends the same STS-B test sentences
with 1, 8, 32 and 64 concurrent clients, one text per request and 32 texts per request; in the same run, the same
texts go through ``EchoEncoder.encode`` in-process (while the server idles; the best of ``IN_PROCESS_RUNS``). Writes
``benchmarks/results/server.json`` and prints a table. On this 2-core machine the clients share the cores with
the server, so the client-side cost counts against the server's numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from echo_embeddings import EchoEncoder

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MODEL = "echo"
IN_PROCESS_RUNS = 3
"""The in-process rate is the best of this many runs: on a shared machine one run can be 10% off either way, and
the best one is the stricter baseline."""


async def run_clients(url: str, texts: list[str], clients: int, per_request: int, deadline: float) -> dict:
    """Send ``texts`` in requests of ``per_request`` from ``clients`` concurrent clients; latency per request."""
    requests = [texts[i : i + per_request] for i in range(0, len(texts), per_request)]
    latencies: list[float] = []
    errors = 0
    queue: asyncio.Queue[list[str]] = asyncio.Queue()
    for request in requests:
        queue.put_nowait(request)

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty() and time.monotonic() < deadline:
            batch = queue.get_nowait()
            start = time.perf_counter()
            response = await http.post(url, json={"model": MODEL, "input": batch})
            latencies.append(time.perf_counter() - start)
            errors += response.status_code != 200

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=300, limits=limits) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    seconds = time.perf_counter() - start
    sent = len(latencies) * per_request
    return {
        "clients": clients,
        "texts_per_request": per_request,
        "requests": len(latencies),
        "errors": errors,
        "texts_per_second": sent / seconds,
        "p50_ms": 1000 * float(np.percentile(latencies, 50)),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=256, help="STS-B test sentences sent per arm")
    parser.add_argument("--seconds", type=float, default=120, help="time limit per arm")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "server.json")
    parser.add_argument("--data", type=Path, default=DATA, help="the shared data folder (default: ../shared/data)")
    args = parser.parse_args()
    texts = [json.loads(line)["sentence1"] for line in open(args.data / "sts" / "stsb-test.jsonl", encoding="utf-8")]
    texts = texts[: args.texts]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "echo_embeddings.cli", "serve", "--port", str(port), "--served-model-name", MODEL]
    server = subprocess.Popen(command, stderr=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(600):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        encoder = EchoEncoder.from_pretrained()
        encoder.encode(texts[:8])  # warm-up
        rates = []
        for _ in range(IN_PROCESS_RUNS):
            start = time.perf_counter()
            encoder.encode(texts)
            rates.append(len(texts) / (time.perf_counter() - start))
        in_process = max(rates)
        del encoder
        print(f"in-process encode: {in_process:.1f} texts/s", flush=True)
        httpx.post(base + "/v1/embeddings", json={"model": MODEL, "input": texts[:8]}, timeout=300)  # warm-up
        arms = []
        for per_request in (1, 32):
            for clients in (1, 8, 32, 64):
                deadline = time.monotonic() + args.seconds
                arm = asyncio.run(run_clients(base + "/v1/embeddings", texts, clients, per_request, deadline))
                arm["vs_in_process"] = arm["texts_per_second"] / in_process
                arms.append(arm)
                print(json.dumps(arm), flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    result = {"texts": len(texts), "in_process_texts_per_second": in_process, "in_process_runs": rates, "arms": arms}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("| texts/request | clients | texts/s | vs in-process | p50 ms | p99 ms | errors |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for arm in arms:
        cells = [
            arm["texts_per_request"],
            arm["clients"],
            f"{arm['texts_per_second']:.1f}",
            f"{arm['vs_in_process']:.2f}",
        ]
        cells += [f"{arm['p50_ms']:.0f}", f"{arm['p99_ms']:.0f}", arm["errors"]]
        print("| " + " | ".join(str(cell) for cell in cells) + " |")


if __name__ == "__main__":
    main()

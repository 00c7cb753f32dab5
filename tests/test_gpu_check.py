"""benchmarks/gpu_check.py: its CPU dry run exercises every step on tiny models; without CUDA it says so."""

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from .conftest import DATA

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def bundle(sp_tokenizer_dir, tmp_path_factory) -> Path:
    """What `make gpu-bundle` makes, small: a tokenizer and the texts (no wheels: this machine has the packages)."""
    from transformers import AutoTokenizer

    folder = tmp_path_factory.mktemp("bundle")
    AutoTokenizer.from_pretrained(sp_tokenizer_dir).save_pretrained(folder / "tokenizer")

    def read(path: Path, n: int) -> list[dict]:
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in itertools.islice(f, n)]

    texts = {
        "sentences": [r["sentence1"] for r in read(DATA / "sts" / "stsb-test.jsonl", 40)],
        "documents": [r["text"] for r in read(DATA / "retrieval" / "scifact" / "corpus.jsonl", 20)],
        "nli": read(DATA / "nli" / "snli-train-triplets.jsonl", 40),
    }
    (folder / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
    return folder


def test_cpu_dry_run_writes_every_section(bundle, tmp_path):
    out = tmp_path / "gpu.json"
    command = [sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--skip-tests", "--bundle", str(bundle)]
    result = subprocess.run([*command, "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["parity"]["cuda_fp32_vs_cpu_fp32_min_cos"] >= 0.9999  # on CPU both sides are the same device
    assert report["parity"]["prefix_cached_vs_whole_forward_bf16_min_cos"] >= 0.9999
    arms = report["speed"]["arms"]
    for kind in ("sentences", "documents"):
        assert {f"{kind}/{name}" for name in ("plain", "classical", "echo")} <= set(arms)
        # Only that the ratios are measured: their size is the GPU report's to say, not a timed test's to assert.
        assert arms[f"{kind}/echo"]["texts_per_second"] > 0 and arms[f"{kind}/echo_vs_plain_time"] > 0
    sweep = report["speed"]["document_batch_sweep"]
    assert [arm["batch_size"] for arm in sweep] == [8, 16, 32, 64, 128, 256]  # no out-of-memory on the dry run
    assert report["speed"]["best_document_batch_size"] in [arm["batch_size"] for arm in sweep]
    assert report["training"]["steps_per_second"] > 0 and report["training"]["cpu_steps_per_second"] > 0
    assert "| documents/echo |" in result.stdout


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_without_cuda_it_says_so(bundle):
    result = subprocess.run([sys.executable, str(SCRIPT), "--bundle", str(bundle)], capture_output=True, text=True)
    assert result.returncode == 2 and "no CUDA device here" in result.stderr

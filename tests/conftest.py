"""Shared fixtures: the default model, a tiny random Llama, and a SentencePiece (Llama-style) tokenizer, all offline."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
import torch

from echo_embeddings import BASE_MODEL, EchoEncoder, load_model

HERE = Path(__file__).parent
DATA = HERE / "data" / "mini"
"""Small slices of the evaluation sets in their full layout (sources and licences in its README.md)."""
STSB_TRAIN = DATA / "sts" / "stsb-train.jsonl"
DEVICE = os.environ.get("ECHO_TEST_DEVICE", "cpu")
"""Where the tiny-model tests run: cpu, or cuda for the GPU check (benchmarks/gpu_check.py)."""
DEFAULT_MODEL_FIXTURES = {"default_encoder", "zero_shot_encoder", "smollm_tokenizer", "default_embeddings"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark tests that load the default model: ``-m "not default_model"`` runs the rest where its GGUF is absent."""
    for item in items:
        if DEFAULT_MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.default_model)


# Document/query pairs where documents share their opening and differ only late (classical embeddings' blind spot).
LATE_INFORMATION = [json.loads(line) for line in open(HERE / "data" / "late_information.jsonl", encoding="utf-8")]


def stsb_sentences(n: int) -> list[str]:
    """The first ``n`` distinct sentence1 values of STS-B train."""
    seen: dict[str, None] = {}
    with open(STSB_TRAIN, encoding="utf-8") as f:
        for line in f:
            seen.setdefault(json.loads(line)["sentence1"], None)
            if len(seen) == n:
                break
    return list(seen)


@pytest.fixture(scope="session")
def default_encoder() -> EchoEncoder:
    """The default model (SmolLM2-135M-Instruct fine-tuned by the recipe), on CPU in fp32."""
    return EchoEncoder.from_pretrained()


@pytest.fixture(scope="session")
def zero_shot_encoder() -> EchoEncoder:
    """SmolLM2-135M-Instruct untrained (the default model's base), read zero-shot, on CPU in fp32."""
    return EchoEncoder.from_pretrained(BASE_MODEL)


@pytest.fixture(scope="session")
def smollm_tokenizer():
    """The default model's tokenizer (byte-level BPE, no BOS added)."""
    return load_model().tokenizer


@pytest.fixture(scope="session")
def sp_tokenizer_dir(tmp_path_factory) -> Path:
    """A SentencePiece BPE tokenizer trained offline on STS-B, loaded as a Llama tokenizer (adds BOS)."""
    import sentencepiece as spm
    from transformers import LlamaTokenizer

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(stsb_sentences(3000)),
        model_writer=model,
        vocab_size=1000,
        model_type="bpe",
        byte_fallback=True,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    path = tmp_path_factory.mktemp("sp_tokenizer")
    (path / "tokenizer.model").write_bytes(model.getvalue())
    LlamaTokenizer.from_pretrained(path, add_bos_token=True).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def sp_tokenizer(sp_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(sp_tokenizer_dir)


def tiny_sizes(tokenizer) -> dict:
    """The tiny random models' shape and special tokens (any decoder family's config takes these names)."""
    return dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=2048,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )


@pytest.fixture(scope="session")
def tiny_model_dir(sp_tokenizer_dir, tmp_path_factory) -> Path:
    """A tiny randomly initialised Llama causal LM with the SentencePiece tokenizer, saved like a hub checkpoint."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(sp_tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), **tiny_sizes(tokenizer))
    path = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir) -> EchoEncoder:
    """The paper's echo template (mean over the second copy), which most mechanics tests spell out by hand. In
    float32 on every device, so that they compare to 1e-5 there too (bfloat16 is the GPU check's parity step)."""
    return EchoEncoder.from_pretrained(str(tiny_model_dir), device=DEVICE, dtype="float32", template="echo")

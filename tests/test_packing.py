"""Packed passes: every packable family gives each text the vector it gets alone; the rows are even; models whose
attention would not honour the packed mask keep padded batches."""

import math

import numpy as np
import pytest
import torch

from echo_embeddings import EchoEncoder
from echo_embeddings.collation import PACKABLE_MODEL_TYPES, can_pack, plan_rows

from .conftest import DEVICE, stsb_sentences, tiny_sizes

FAMILIES = {
    "llama": ("LlamaConfig", {}),
    "mistral": ("MistralConfig", {"sliding_window": None}),
    "qwen2": ("Qwen2Config", {}),
    "qwen3": ("Qwen3Config", {"head_dim": 16}),
    "gemma": ("GemmaConfig", {"head_dim": 16}),
    "gemma2": ("Gemma2Config", {"head_dim": 16, "sliding_window": 4096}),
    "gemma3_text": ("Gemma3TextConfig", {"head_dim": 16, "sliding_window": 4096}),
    "phi3": ("Phi3Config", {}),
}


def tiny_model(family: str, tokenizer_dir, folder) -> str:
    """A tiny random causal LM of ``family`` with the SentencePiece tokenizer, saved to ``folder``."""
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config_class, extra = FAMILIES[family]
    config = getattr(transformers, config_class)(
        vocab_size=len(tokenizer) + 8,  # room for a pad token the family's tokenizer class may add on loading
        pad_token_id=0,  # some families' defaults lie outside this small vocabulary
        **tiny_sizes(tokenizer),
        **extra,
    )
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def test_every_packable_family_is_tested():
    assert set(FAMILIES) == PACKABLE_MODEL_TYPES


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_a_packed_pass_gives_each_text_its_vector_alone(family, sp_tokenizer_dir, tmp_path):
    """Texts of mixed lengths share rows (ROW_TOKENS is far above these texts' lengths); each one's vector equals
    the vector it gets in a pass of its own, for mean, last and mean+last pooling, queries with an instruction
    and an empty text included."""
    folder = tiny_model(family, sp_tokenizer_dir, tmp_path / family)
    texts = [*stsb_sentences(12), "A much longer text. " * 12, "", "x"]
    for template in ("echo", "prompteol", "echo-categorize"):
        encoder = EchoEncoder.from_pretrained(folder, device=DEVICE, template=template)
        assert can_pack(encoder.model, encoder.max_length)
        for query in (False, True):
            together = encoder.encode(texts, query=query, instruction="Find it" if query else None)
            alone = np.stack(
                [encoder.encode([t], query=query, instruction="Find it" if query else None)[0] for t in texts]
            )
            cos = (together * alone).sum(1) / np.linalg.norm(together, axis=1) / np.linalg.norm(alone, axis=1)
            assert cos.min() >= 0.9999, (family, template, query, cos.min())


def test_packing_is_left_out_where_the_mask_would_not_hold(tiny_model_dir, sp_tokenizer_dir, tmp_path):
    causal = EchoEncoder.from_pretrained(str(tiny_model_dir), device=DEVICE)
    assert can_pack(causal.model, causal.max_length)
    bidirectional = EchoEncoder.from_pretrained(str(tiny_model_dir), device=DEVICE, attention="bidirectional")
    assert not can_pack(bidirectional.model, bidirectional.max_length)
    windowed = EchoEncoder.from_pretrained(
        tiny_model("gemma3_text", sp_tokenizer_dir, tmp_path / "windowed"), device=DEVICE, max_length=512
    )
    windowed.model.config.sliding_window = 256  # shorter than an input may be: the packed mask would leave it out
    assert not can_pack(windowed.model, 512) and can_pack(windowed.model, 256)
    assert not can_pack(windowed.model, None)  # inputs of any length (no bound): no window covers them


def test_rows_are_even_and_hold_every_text_once():
    lengths = [40, 3, 17, 25, 25, 8, 60, 12, 9, 30, 2, 21]
    rows = plan_rows(lengths, 64)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert len(rows) == math.ceil(sum(lengths) / 64)
    filled = [sum(lengths[i] for i in row) for row in rows]
    assert max(filled) - min(filled) <= max(lengths)
    assert plan_rows([300], 64) == [[0]]  # a text longer than a row gets a row of its own


def test_the_benchmarks_counter_tells_text_from_padding_in_packed_passes(tiny_model_dir):
    """``benchmarks/measure.py`` reads a packed pass's padding off the mask's diagonal: its text tokens are exactly
    the texts' tokens after the shared prefix."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("measure", Path(__file__).parents[1] / "benchmarks" / "measure.py")
    measure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(measure)
    from echo_embeddings import load_model

    # a private copy of the model: the counter's hook stays on it
    encoder = EchoEncoder(load_model(str(tiny_model_dir), device=DEVICE, shared=False))
    texts = [("word " * (i * 7 % 40 + 1)).strip() for i in range(40)]
    encoder.encode(texts[:2])  # the shared prefix's one forward, before counting
    linear = sum(m.weight.numel() for m in encoder.model.modules() if isinstance(m, torch.nn.Linear))
    counter = measure.ForwardCounter(encoder.model, linear)
    encoder.encode(texts, batch_size=64)
    prefix = len(encoder.template_tokenizer.shared_prefix(query=False, instruction=None))
    expected = sum(len(item.input_ids) - prefix for item in encoder.template_tokenizer(texts))
    assert counter.positions - counter.padding == expected and counter.padding > 0

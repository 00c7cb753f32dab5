"""The default model offline (SmolLM2-135M-Instruct, trained and untrained), and the paper's Section 3 effect
zero-shot."""

import json
from pathlib import Path

import numpy as np

from echo_embeddings import DEFAULT_MODEL, EchoEncoder, load_model
from echo_embeddings.loading import bundled_base_gguf
from echo_embeddings.user_cache import cache_dir

from .conftest import HERE

TRIPLES = [json.loads(line) for line in open(HERE / "data" / "toy_triples.jsonl", encoding="utf-8")]


def test_default_model_loads_offline_from_the_converted_cache(default_encoder):
    assert default_encoder.model_name == DEFAULT_MODEL
    assert default_encoder.dim == 576
    assert bundled_base_gguf() is not None
    source = Path(default_encoder.model.config._name_or_path)
    assert cache_dir() / "trained" in source.parents and (source / "model.safetensors").is_file()
    assert default_encoder.model.config._attn_implementation == "sdpa"
    assert load_model(DEFAULT_MODEL).model is default_encoder.model


def toy_accuracy(encoder: EchoEncoder, structure: str) -> float:
    rows = [t for t in TRIPLES if t["structure"] == structure]
    q, pos, neg = (encoder.encode([r[k] for r in rows]) for k in ("q", "s+", "s-"))
    return float(np.mean((q * pos).sum(1) > (q * neg).sum(1)))


def test_echo_beats_classical_on_shared_prefix_triples(zero_shot_encoder):
    """Section 3: when the distractor repeats the query's first half word for word, classical mean pooling is
    fooled by the identical prefix states; echo's second copy has seen the endings."""
    classical = zero_shot_encoder.with_settings(template="classical")
    echo_acc = toy_accuracy(zero_shot_encoder, "shared-prefix")
    classical_acc = toy_accuracy(classical, "shared-prefix")
    assert echo_acc > classical_acc, (echo_acc, classical_acc)
    assert echo_acc >= 0.5


def test_shared_suffix_triples_stay_solved_by_echo(zero_shot_encoder):
    assert toy_accuracy(zero_shot_encoder, "shared-suffix") >= 0.75

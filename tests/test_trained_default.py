"""The trained default: every surface with no settings reads the recipe's model, whose LoRA weights ship in the
package; the untrained base stays one name away; the shipped weights are checked and merged into a cache of their
own."""

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open

from echo_embeddings import BASE_MODEL, DEFAULT_MODEL, GENERAL_INSTRUCTION, load_model, sentence_transformer
from echo_embeddings.errors import ModelError
from echo_embeddings.loading import bundled_base_gguf
from echo_embeddings.model_cache import MANIFEST, converted_gguf, intact
from echo_embeddings.trained import ADAPTER_FILE, TRAINED_MODELS, TrainedModel
from echo_embeddings.user_cache import cache_dir

from .conftest import stsb_sentences
from .test_server import Server

TEXTS = stsb_sentences(4)
SHIPPED = TRAINED_MODELS[DEFAULT_MODEL]


def cos(a, b) -> np.ndarray:
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_the_default_is_the_trained_model_read_as_it_was_trained(default_encoder):
    assert default_encoder.model_name == DEFAULT_MODEL
    saved = json.loads((SHIPPED.folder / "echo_config.json").read_text())
    assert default_encoder.template.name == saved["template"] == "echo" and default_encoder.pooling == "mean"
    assert default_encoder.config.query_instruction == saved["query_instruction"] == GENERAL_INSTRUCTION


def test_every_surface_with_no_settings_gives_the_trained_vectors(default_encoder, zero_shot_encoder, tmp_path):
    from langchain_echo import EchoEmbeddings
    from llamaindex_echo import EchoEmbedding

    expected = default_encoder.encode(TEXTS)
    assert cos(expected, zero_shot_encoder.encode(TEXTS)).max() < 0.99  # trained and untrained readings differ
    queries = default_encoder.encode(TEXTS, query=True)
    got = {
        "langchain documents": EchoEmbeddings().embed_documents(TEXTS),
        "llamaindex documents": EchoEmbedding().get_text_embedding_batch(TEXTS),
        "sentence-transformers": sentence_transformer().encode(TEXTS),
    }
    got_queries = {
        "langchain query": [EchoEmbeddings().embed_query(t) for t in TEXTS],
        "llamaindex query": [EchoEmbedding().get_query_embedding(t) for t in TEXTS],
        "sentence-transformers query": sentence_transformer().encode_query(TEXTS),
    }
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n")
    command = [sys.executable, "-m", "echo_embeddings.cli", "embed", str(tmp_path / "in.txt")]
    command += ["-o", str(tmp_path / "out.npy"), "--device", "cpu"]
    subprocess.run(command, check=True, capture_output=True, timeout=600)
    got["cli embed"] = np.load(tmp_path / "out.npy")
    for surface, vectors in got.items():
        assert cos(vectors, expected).min() >= 0.9999, surface
    for surface, vectors in got_queries.items():
        assert cos(vectors, queries).min() >= 0.9999, surface


def test_the_server_with_no_settings_serves_the_trained_default(default_encoder):
    server = Server(None)
    try:
        documents = server.post({"input": TEXTS, "model": DEFAULT_MODEL}, key=None).json()["data"]
        body = {"input": TEXTS[:1], "model": DEFAULT_MODEL, "input_type": "query"}
        query = server.post(body, key=None).json()["data"]
        models = httpx_json(server.url + "/v1/models")
    finally:
        code, stderr = server.stop()
    assert code == 0, stderr
    assert models["data"][0]["id"] == DEFAULT_MODEL
    assert cos([d["embedding"] for d in documents], default_encoder.encode(TEXTS)).min() >= 0.9999
    assert cos([query[0]["embedding"]], default_encoder.encode(TEXTS[:1], query=True)).min() >= 0.9999


def httpx_json(url: str) -> dict:
    import httpx

    return httpx.get(url, timeout=30).json()


def test_the_zero_shot_reading_is_the_untrained_base(zero_shot_encoder):
    """BASE_MODEL loads the converted GGUF unchanged, read with the library's zero-shot settings."""
    assert zero_shot_encoder.model_name == BASE_MODEL
    assert zero_shot_encoder.template.name == "echo-categorize"
    base = converted_gguf(bundled_base_gguf())
    assert Path(zero_shot_encoder.model.config._name_or_path) == base
    with safe_open(base / "model.safetensors", framework="pt") as f:
        name = "layers.3.self_attn.q_proj.weight"
        assert torch.equal(zero_shot_encoder.model.state_dict()[name], f.get_tensor(name))


def test_the_merge_adds_the_lora_product_and_leaves_the_base_cache_untouched(tmp_path, monkeypatch):
    base = converted_gguf(bundled_base_gguf())
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in base.iterdir()}
    monkeypatch.setenv("ECHO_EMBEDDINGS_CACHE", str(tmp_path / "cache"))
    merged = SHIPPED.merged(str(base))
    assert intact(merged) and tmp_path / "cache" in merged.parents
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in base.iterdir()} == before
    assert json.loads((base / MANIFEST).read_text())["model.safetensors"] == before["model.safetensors"]
    name = "layers.5.mlp.down_proj"
    with safe_open(SHIPPED.adapter, framework="pt") as f:
        scale = float(f.metadata()["lora_alpha"]) / float(f.metadata()["lora_r"])
        delta = f.get_tensor(f"{name}.lora_B.weight").float() @ f.get_tensor(f"{name}.lora_A.weight").float()
    with safe_open(base / "model.safetensors", framework="pt") as b, safe_open(merged / "model.safetensors", "pt") as m:
        expected = b.get_tensor(f"{name}.weight") + scale * delta
        assert torch.allclose(m.get_tensor(f"{name}.weight"), expected, atol=1e-6)
        assert delta.abs().max() > 1e-3  # the adapter changes the weights


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f.write_bytes(f.read_bytes()[:-1000]),
        lambda f: f.write_bytes(f.read_bytes()[:-1] + bytes([f.read_bytes()[-1] ^ 1])),
        lambda f: f.unlink(),
    ],
    ids=["truncated", "one-bit-altered", "missing"],
)
def test_a_damaged_or_altered_adapter_fails_its_checksum_naming_the_file(tmp_path, monkeypatch, damage):
    folder = tmp_path / "weights"
    shutil.copytree(SHIPPED.folder, folder)
    damage(folder / ADAPTER_FILE)
    copy = TrainedModel(name=DEFAULT_MODEL, base=BASE_MODEL, folder=folder)
    monkeypatch.setitem(TRAINED_MODELS, DEFAULT_MODEL, copy)
    merged = cache_dir() / "trained"
    before = sorted(merged.iterdir()) if merged.exists() else []
    with pytest.raises(ModelError, match=f"{folder}.* damaged or altered|{folder}: cannot read"):
        load_model(shared=False)
    assert (sorted(merged.iterdir()) if merged.exists() else []) == before  # nothing merged from a damaged file


def test_the_shipped_adapter_matches_its_recorded_checksum():
    recorded = (SHIPPED.folder / "SHA256SUMS").read_text().split()
    assert recorded == [hashlib.sha256(SHIPPED.adapter.read_bytes()).hexdigest(), ADAPTER_FILE]
    assert SHIPPED.adapter.stat().st_size < 20e6

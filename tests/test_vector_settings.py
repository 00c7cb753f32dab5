"""Smaller vectors (truncate_dim, precision), the settings fingerprint and the cache it keys, Matryoshka training,
the server's dimensions, and the HuggingFace wrappers' arguments, on every surface."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from safetensors.torch import load_file, save_file
from sentence_transformers.util import quantize_embeddings

from echo_embeddings import EchoEncoder, sentence_transformer
from echo_embeddings.errors import ConfigError
from echo_embeddings.training import train

from .conftest import DEVICE, stsb_sentences
from .test_server import Server
from .test_training import stsb_pairs

TEXTS = stsb_sentences(24)


@pytest.fixture(scope="module")
def full(tiny_model_dir) -> EchoEncoder:
    return EchoEncoder.from_pretrained(str(tiny_model_dir), device="cpu", template="echo")


def test_truncate_dim_keeps_the_first_dimensions_at_unit_length_on_every_surface(full, tiny_model_dir):
    vectors = full.encode(TEXTS)
    cut = full.with_settings(truncate_dim=16)
    expected = vectors[:, :16] / np.linalg.norm(vectors[:, :16], axis=1, keepdims=True)
    assert cut.dim == 16
    np.testing.assert_allclose(cut.encode(TEXTS), expected, atol=1e-6)
    from langchain_echo import EchoEmbeddings
    from llamaindex_echo import EchoEmbedding

    settings = {"model_name": str(tiny_model_dir), "device": "cpu", "template": "echo", "truncate_dim": 16}
    np.testing.assert_allclose(EchoEmbeddings(**settings).embed_documents(TEXTS), expected, atol=1e-6)
    np.testing.assert_allclose(EchoEmbedding(**settings).get_text_embedding_batch(TEXTS), expected, atol=1e-6)
    st = sentence_transformer(**settings).encode(TEXTS)  # sentence-transformers cuts after normalizing
    np.testing.assert_allclose(st / np.linalg.norm(st, axis=1, keepdims=True), expected, atol=1e-5)
    with pytest.raises(ConfigError, match="truncate_dim must be at most 64"):
        full.with_settings(truncate_dim=65)


def test_precisions_are_sentence_transformers_quantization_of_the_float_vectors(full):
    vectors = full.with_settings(truncate_dim=32).encode(TEXTS)
    for precision, dtype, width in (("binary", np.int8, 4), ("ubinary", np.uint8, 4)):
        got = full.with_settings(truncate_dim=32, precision=precision).encode(TEXTS)
        assert got.dtype == dtype and got.shape == (len(TEXTS), width)
        np.testing.assert_array_equal(got, quantize_embeddings(vectors, precision))
    with pytest.raises(ConfigError, match="needs quantization_ranges"):
        full.with_settings(precision="int8")
    ranges = full.with_settings(truncate_dim=32).quantization_ranges(stsb_sentences(200)[100:])
    int8 = full.with_settings(truncate_dim=32, precision="int8", quantization_ranges=ranges)
    got = int8.encode(TEXTS)
    assert got.dtype == np.int8 and got.shape == (len(TEXTS), 32)
    np.testing.assert_array_equal(got, quantize_embeddings(vectors, "int8", ranges=np.array(ranges, np.float32)))
    cosine = (got.astype(np.float32) @ got.T.astype(np.float32)).ravel()
    assert np.corrcoef(cosine, (vectors @ vectors.T).ravel())[0, 1] > 0.9  # int8 keeps the similarities' order
    with pytest.raises(ConfigError, match="quantization_ranges has 32 dimensions, the vectors 64"):
        full.with_settings(precision="int8", quantization_ranges=ranges)
    for surface in ("langchain_echo", "llamaindex_echo"):
        module = __import__(surface)
        adapter = module.EchoEmbeddings if surface == "langchain_echo" else module.EchoEmbedding
        with pytest.raises(ValidationError, match="vector stores take lists of floats"):
            adapter(model_name=full.model_name, precision="binary")


def test_embed_writes_smaller_vectors_and_their_fingerprint(full, tiny_model_dir, tmp_path):
    (tmp_path / "in.txt").write_text("\n".join(TEXTS) + "\n")
    base = [sys.executable, "-m", "echo_embeddings.cli", "embed", str(tmp_path / "in.txt"), "--model"]
    base += [str(tiny_model_dir), "--device", "cpu", "--template", "echo", "--truncate-dim", "32"]
    for output, extra in (("bits.npy", ["--precision", "ubinary"]), ("cut.parquet", [])):
        done = subprocess.run([*base, *extra, "-o", str(tmp_path / output)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
    bits = np.load(tmp_path / "bits.npy")
    encoder = full.with_settings(truncate_dim=32, precision="ubinary")
    np.testing.assert_array_equal(bits, encoder.encode(TEXTS))
    meta = json.loads((tmp_path / "bits.npy.meta.json").read_text())
    assert meta["fingerprint"] == encoder.fingerprint and meta["form"] == "document"
    assert meta["settings"]["precision"] == "ubinary" and meta["settings"]["truncate_dim"] == 32
    table = pq.read_table(tmp_path / "cut.parquet")
    parquet_meta = json.loads(table.schema.metadata[b"echo_embeddings"])
    assert parquet_meta["fingerprint"] == full.with_settings(truncate_dim=32).fingerprint != meta["fingerprint"]
    np.testing.assert_allclose(np.stack(table["embedding"].to_numpy(zero_copy_only=False)), full.with_settings(
        truncate_dim=32).encode(TEXTS), atol=1e-6)  # fmt: skip


def test_every_setting_that_decides_a_vector_changes_the_fingerprint(full, tiny_model_dir, tmp_path):
    changed = {
        "template": "echo-categorize", "pooling": "last", "max_text_tokens": 100, "max_length": 512,
        "truncation": "tail", "normalize": False, "query_instruction": "Find it", "document_instruction": "Read it",
        "truncate_dim": 32, "precision": "binary",
    }  # fmt: skip
    prints = {name: full.with_settings(**{name: value}).fingerprint for name, value in changed.items()}
    prints["bfloat16"] = EchoEncoder.from_pretrained(str(tiny_model_dir), device="cpu", template="echo",
                                                     dtype="bfloat16").fingerprint  # fmt: skip
    other = tmp_path / "other-weights"
    shutil.copytree(tiny_model_dir, other)
    weights = load_file(other / "model.safetensors")
    name = next(key for key in weights if key.endswith("mlp.down_proj.weight"))
    weights[name] = weights[name] * 1.01
    save_file(weights, other / "model.safetensors", metadata={"format": "pt"})
    prints["weights"] = EchoEncoder.from_pretrained(str(other), device="cpu", template="echo").fingerprint
    assert len(set(prints.values()) | {full.fingerprint}) == len(prints) + 1, prints
    same = EchoEncoder.from_pretrained(str(tiny_model_dir), device="cpu", template="echo", batch_size=3)
    assert same.fingerprint == full.fingerprint  # batch size and device decide nothing
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model_dir, copy)  # the same files elsewhere: the same weights
    assert EchoEncoder.from_pretrained(str(copy), device="cpu", template="echo").fingerprint == full.fingerprint


def test_a_saved_folder_records_the_fingerprint_it_is_read_with(tiny_model_dir, tmp_path):
    sentence_transformer(str(tiny_model_dir), device="cpu", template="echo").save(str(tmp_path / "saved"))
    recorded = json.loads((tmp_path / "saved" / "echo_config.json").read_text())["fingerprint"]
    assert EchoEncoder.from_pretrained(str(tmp_path / "saved"), device="cpu").fingerprint == recorded


def test_the_cache_never_returns_another_settings_or_forms_vectors_and_embeds_nothing_twice(tiny_model_dir):
    from langchain_core.stores import InMemoryByteStore

    from langchain_echo import EchoEmbeddings, cached_embeddings

    store = InMemoryByteStore()
    calls = []

    def counted(embeddings):
        encode = embeddings.encoder.encode

        def counting(texts, **options):
            calls.append((len(texts), options.get("query", False)))
            return encode(texts, **options)

        embeddings.encoder.encode = counting
        return embeddings

    settings = {"model_name": str(tiny_model_dir), "device": "cpu", "template": "echo"}
    plain = counted(EchoEmbeddings(**settings))
    other = counted(EchoEmbeddings(**settings, document_instruction="Represent the sentence"))
    first = cached_embeddings(plain, store)
    vectors = first.embed_documents(TEXTS)
    assert calls == [(len(TEXTS), False)]
    assert cached_embeddings(EchoEmbeddings(**settings), store).embed_documents(TEXTS) == vectors  # all hits
    assert calls == [(len(TEXTS), False)]  # a repeated run embeds nothing
    keys = set(store.yield_keys())
    assert len(keys) == len(TEXTS)
    others = cached_embeddings(other, store).embed_documents(TEXTS)  # other settings: no hit, their own vectors
    assert calls[-1] == (len(TEXTS), False) and others == other.embed_documents(TEXTS) != vectors
    assert len(set(store.yield_keys())) == 2 * len(TEXTS)
    calls.clear()
    query = first.embed_query(TEXTS[0])  # the query form: not the document's cached vector
    assert calls == [(1, True)] and query == plain.embed_query(TEXTS[0])
    assert first.embed_query(TEXTS[0]) == query and calls == [(1, True), (1, True)]  # the second: plain's own call


def test_matryoshka_training_records_its_sizes_and_the_server_serves_only_those(tiny_model_dir, tmp_path):
    folder = tmp_path / "matryoshka"
    settings = {"steps": 2, "train_batch_size": 8, "hard_negatives": 0, "matryoshka_dims": [16, 32]}
    train(stsb_pairs(16), output_dir=folder, model_name=str(tiny_model_dir), device=DEVICE, **settings)
    assert json.loads((folder / "echo_config.json").read_text())["matryoshka_dims"] == [16, 32]
    with pytest.raises(ConfigError, match="matryoshka_dims: each must be from 1 to the model's 64"):
        train(stsb_pairs(16), output_dir=tmp_path / "x", model_name=str(tiny_model_dir), device=DEVICE,
              **{**settings, "matryoshka_dims": [128]})  # fmt: skip
    local = EchoEncoder.from_pretrained(str(folder), device="cpu", template="echo-instruct")
    server = Server(folder)
    try:
        for dims in (16, 32, 64, None):
            body = {"input": TEXTS[:3], "model": "tiny-echo", **({"dimensions": dims} if dims else {})}
            got = np.array([d["embedding"] for d in server.post(body, key=None).json()["data"]])
            expected = (local.with_settings(truncate_dim=dims) if dims else local).encode(TEXTS[:3])
            np.testing.assert_allclose(got, expected, atol=1e-5)
        refused = server.post({"input": TEXTS[:1], "model": "tiny-echo", "dimensions": 24}, key=None)
    finally:
        server.stop()
    assert refused.status_code == 400
    assert refused.json()["error"]["message"] == "dimensions=24: this model was trained for [64, 32, 16]"


def test_huggingface_encode_kwargs_are_settings_or_refused(tiny_model_dir):
    from langchain_echo import EchoEmbeddings

    base = {"model_name": str(tiny_model_dir), "device": "cpu"}
    embeddings = EchoEmbeddings(
        **base,
        encode_kwargs={"normalize_embeddings": False, "batch_size": 4, "prompt": "Represent", "truncate_dim": 32},
        query_encode_kwargs={"prompt": "Find", "normalize_embeddings": False, "truncate_dim": 32},
    )
    config = embeddings.encoder.config
    assert (config.normalize, config.batch_size, config.truncate_dim) == (False, 4, 32)
    assert (config.document_instruction, config.query_instruction) == ("Represent", "Find")
    refusals = {
        "encode_kwargs['convert_to_tensor'] has no echo equivalent": {"encode_kwargs": {"convert_to_tensor": True}},
        "query_encode_kwargs['normalize_embeddings']=False differs from the documents'": {
            "query_encode_kwargs": {"normalize_embeddings": False}
        },
        "query_encode_kwargs['batch_size'] has no echo equivalent for queries": {
            "query_encode_kwargs": {"batch_size": 8}
        },
        "encode_kwargs['batch_size'] and 'batch_size' are the same setting": {
            "encode_kwargs": {"batch_size": 8},
            "batch_size": 4,
        },
    }
    for message, arguments in refusals.items():
        with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
            EchoEmbeddings(**base, **arguments)


def test_huggingface_embedding_arguments_are_honoured_or_refused(tiny_model_dir):
    from llamaindex_echo import EchoEmbedding

    base = {"model_name": str(tiny_model_dir), "device": "cpu"}
    embedding = EchoEmbedding(**base, trust_remote_code=False, tokenizer_name=str(tiny_model_dir), backend="torch")
    assert embedding.model_kwargs == {"trust_remote_code": False}
    for arguments, message in (
        ({"tokenizer_name": "other/tokenizer"}, "echo reads the model's own tokenizer"),
        ({"parallel_process": True}, "one model per process"),
        ({"target_devices": ["cuda:0", "cuda:1"]}, "one model per process"),
        ({"backend": "onnx"}, "EchoEmbedding runs the model in torch"),
        ({"model": object()}, "pass model_name"),
    ):
        with pytest.raises(ValidationError, match=message):
            EchoEmbedding(**base, **arguments)

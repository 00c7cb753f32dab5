"""Wrong vectors that nothing reported: each case failed silently before, and now gives the right vector or one
clear error (issue: the model cache, the fingerprint, late chunking and the newer settings under bad input)."""

import hashlib
import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from echo_embeddings import DEFAULT_MODEL, EchoConfig, EchoEncoder, load_model, sentence_transformer
from echo_embeddings.digests import content_digest
from echo_embeddings.errors import ConfigError, InputError
from echo_embeddings.loading import bundled_base_gguf
from echo_embeddings.model_cache import BUILDING, MANIFEST, cached_folder, converted_gguf, intact
from echo_embeddings.user_cache import cache_dir

from .conftest import DEVICE, stsb_sentences

TEXTS = stsb_sentences(6)


def rowwise_cos(a, b):
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


# The model cache verifies what it loads


def _rewrite_middle(path, change):
    """Rewrite 4 KiB in the middle of ``path`` in place (same size) with ``change(bytes)``."""
    with open(path, "r+b") as f:
        f.seek(path.stat().st_size // 2)
        block = f.read(4096)
        f.seek(-len(block), os.SEEK_CUR)
        f.write(change(block))


@pytest.mark.parametrize(
    "change",
    [
        lambda b: np.frombuffer(b, dtype=np.float32).__mul__(np.float32(1.5)).tobytes(),  # plausible weights
        lambda b: bytes(x ^ 0x5A for x in b),  # noise
    ],
    ids=["scaled-weights", "random-bytes"],
)
def test_an_edited_middle_of_the_weights_is_detected_and_rebuilt(tmp_path, monkeypatch, caplog, change):
    converted = converted_gguf(bundled_base_gguf())
    monkeypatch.setenv("ECHO_EMBEDDINGS_CACHE", str(tmp_path / "cache"))
    copy = tmp_path / "cache" / "gguf" / converted.name  # a copy: the user's cache is never touched
    shutil.copytree(converted, copy)
    assert intact(copy)
    weights = copy / "model.safetensors"
    size = weights.stat().st_size
    _rewrite_middle(weights, change)
    assert weights.stat().st_size == size and not intact(copy)
    with caplog.at_level(logging.WARNING, logger="echo_embeddings.model_cache"):
        assert converted_gguf(bundled_base_gguf()) == copy
    assert "is damaged; building it again" in caplog.text and intact(copy)
    assert (copy / "model.safetensors").read_bytes() == (converted / "model.safetensors").read_bytes()


def _build(folder):
    (folder / "weights.bin").write_bytes(b"weights")


def test_a_file_where_the_folder_belongs_is_replaced_by_the_folder(tmp_path):
    target = tmp_path / "model"
    target.write_text("not a folder")
    assert cached_folder(target, _build, what="Building") == target
    assert (target / "weights.bin").read_bytes() == b"weights" and intact(target)


def test_a_killed_builds_temporary_folder_is_removed_and_a_running_ones_kept(tmp_path):
    target = tmp_path / "model"
    abandoned = tmp_path / f"model{BUILDING}{2**22 + 12345}-x"  # above Linux's default pid_max: no such process
    running = tmp_path / f"model{BUILDING}{os.getpid()}-y"
    for folder in (abandoned, running):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"half")
    cached_folder(target, _build, what="Building")
    assert not abandoned.exists() and running.exists()


def test_the_manifest_holds_each_files_sha256(tmp_path):
    target = cached_folder(tmp_path / "model", _build, what="Building")
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest == {"weights.bin": hashlib.sha256(b"weights").hexdigest()}


def test_moving_the_cache_keeps_the_merged_default(tmp_path, monkeypatch, caplog):
    moved = tmp_path / "moved"
    for part in ("gguf", "trained"):
        shutil.copytree(cache_dir() / part, moved / part)
    monkeypatch.setenv("ECHO_EMBEDDINGS_CACHE", str(moved))
    with caplog.at_level(logging.WARNING, logger="echo_embeddings.model_cache"):
        loaded = load_model(DEFAULT_MODEL, device="cpu", shared=False)
    assert "Merging" not in caplog.text and "building it again" not in caplog.text
    assert moved / "trained" in Path(loaded.source).parents
    assert sorted(p.name for p in (moved / "trained").iterdir()) == sorted(
        p.name for p in (cache_dir() / "trained").iterdir()
    )


# The fingerprint


def test_model_kwargs_that_change_the_network_change_the_fingerprint(tiny_model_dir, tiny_encoder):
    def fingerprint(**model_kwargs):
        return EchoEncoder.from_pretrained(
            str(tiny_model_dir), device=DEVICE, dtype="float32", template="echo", model_kwargs=model_kwargs
        ).fingerprint

    assert fingerprint() == tiny_encoder.fingerprint
    assert fingerprint(trust_remote_code=False) == tiny_encoder.fingerprint  # decides nothing about the vectors
    changed = {fingerprint(num_hidden_layers=1), fingerprint(rms_norm_eps=0.5)}
    assert len(changed) == 2 and tiny_encoder.fingerprint not in changed


def test_a_swapped_file_with_the_same_size_and_mtime_is_hashed_again(tmp_path, monkeypatch):
    monkeypatch.setenv("ECHO_EMBEDDINGS_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"a" * 1000)
    os.utime(path, ns=(0, 0))  # a reproducible archive's normalised time
    first = content_digest(path)
    replacement = tmp_path / "new.safetensors"
    replacement.write_bytes(b"b" * 1000)
    os.utime(replacement, ns=(0, 0))
    os.replace(replacement, path)
    assert path.stat().st_mtime_ns == 0 and path.stat().st_size == 1000
    assert content_digest(path) != first


def test_a_folder_saved_with_truncate_dim_reads_with_it_everywhere(tiny_model_dir, tmp_path):
    from echo_embeddings import load_sentence_transformer

    st = sentence_transformer(str(tiny_model_dir), template="echo", device=DEVICE, truncate_dim=16)
    st.save(str(tmp_path))
    encoder = EchoEncoder.from_pretrained(str(tmp_path), device=DEVICE, dtype="float32")
    saved = json.loads((tmp_path / "echo_config.json").read_text())
    assert encoder.dim == 16 and encoder.fingerprint == saved["fingerprint"]
    expected = encoder.encode(TEXTS)
    for vectors in (st.encode(TEXTS), load_sentence_transformer(str(tmp_path)).encode(TEXTS)):
        assert vectors.shape == (len(TEXTS), 16)
        np.testing.assert_allclose(vectors, expected, atol=1e-5)


# Rows do not depend on each other


def test_a_short_texts_vector_does_not_depend_on_a_windowed_neighbour(tiny_encoder):
    encoder = tiny_encoder.with_settings(truncation="windows", max_text_tokens=16, normalize=False)
    short, long = TEXTS[0], " ".join(TEXTS)
    alone = encoder.encode([short])
    beside = encoder.encode([short, long])
    np.testing.assert_allclose(beside[0], alone[0], atol=1e-5)
    assert abs(np.linalg.norm(alone[0]) - 1.0) > 0.1  # not normalized: the test can tell
    np.testing.assert_allclose(beside[1], encoder.encode([long])[0], atol=1e-5)


# Quantization ranges


@pytest.mark.parametrize(
    "ranges, problem",
    [
        ([[0.0, float("nan")], [1.0, 1.0]], r"dimension 1 has the range \[nan, 1.0\]"),
        ([[0.0, 0.0], [1.0, float("inf")]], r"dimension 1 has the range \[0.0, inf\]"),
        ([[0.0, 2.0], [1.0, 1.0]], r"dimension 1 has the range \[2.0, 1.0\]"),
        ([[0.0, 1.0], [1.0, 1.0]], r"dimension 1 has the range \[1.0, 1.0\]"),
    ],
    ids=["nan", "infinite", "inverted", "zero-width"],
)
def test_bad_quantization_ranges_are_refused(ranges, problem):
    with pytest.raises(ConfigError, match=problem):
        EchoConfig().replace(precision="int8", quantization_ranges=ranges)


def test_ranges_from_one_text_are_refused_before_they_flatten_every_vector(tiny_encoder):
    with pytest.raises(InputError, match=r"take one value over these 1 texts"):
        tiny_encoder.quantization_ranges(TEXTS[:1])
    ranges = tiny_encoder.quantization_ranges(TEXTS)
    quantized = tiny_encoder.with_settings(precision="int8", quantization_ranges=ranges).encode(TEXTS)
    assert len({row.tobytes() for row in quantized}) == len(TEXTS)


# Late chunking


def test_a_document_with_no_chunks_gets_no_vectors(tiny_encoder):
    document = TEXTS[0]
    vectors = tiny_encoder.encode_chunks([document, document], [[], [(0, 10)]])
    assert vectors[0].shape == (0, tiny_encoder.dim) and vectors[1].shape == (1, tiny_encoder.dim)
    np.testing.assert_allclose(vectors[1], tiny_encoder.encode_chunks([document], [[(0, 10)]])[0], atol=1e-5)


def test_a_white_space_chunk_is_refused(tiny_encoder):
    document = "First part.   Second part."
    with pytest.raises(InputError, match=r"spans\[0\]\[1\] = \(11, 14\) holds only white space"):
        tiny_encoder.encode_chunks([document], [[(0, 11), (11, 14)]])


def test_a_repeated_chunk_is_placed_at_its_own_occurrence():
    from echo_embeddings.late_chunking import find_spans

    assert find_spans("Yes. Yes. No.", ["Yes.", "Yes.", "No."]) == [(0, 4), (5, 9), (10, 13)]
    with pytest.raises(InputError, match=r"chunks\[1\] is not found in the document from character 1"):
        find_spans("Yes. No.", ["Yes.", "Yes."])


def test_late_chunk_vectors_pool_as_copies_would(tiny_encoder):
    """pool_spans's matrix product gives what pooling a copy of the states per chunk gave."""
    from echo_embeddings.pooling import pool, pool_spans

    torch.manual_seed(0)
    states = torch.randn(12, 8)
    masks = torch.zeros(3, 12, dtype=torch.bool)
    masks[0, 1:4], masks[1, 3:9], masks[2, 10:11] = True, True, True
    token_mask = torch.ones(3, 12, dtype=torch.long)
    for method in ("mean", "mean-last", "mean+last"):
        expected = pool(states.expand(3, -1, -1), masks, token_mask, method)
        torch.testing.assert_close(pool_spans(states, masks, 11, method), expected, atol=1e-6, rtol=1e-6)


def test_chunk_to_token_mapping_is_not_quadratic():
    import time

    from echo_embeddings.late_chunking import token_spans

    def seconds(n):
        offsets = [(i, i + 1) for i in range(n)]
        spans = [(i, i + 1) for i in range(n)]
        start = time.perf_counter()
        assert token_spans(offsets, spans, 0)[-1] == (n - 1, n)
        return time.perf_counter() - start

    seconds(1000)  # warm
    assert seconds(20_000) < 20 * seconds(2_000) + 0.05  # x10 chunks: ~x10 time, not x100


# The adapters apply a setting changed after construction


@pytest.mark.adapters
@pytest.mark.parametrize("surface", ["langchain", "llamaindex"])
def test_a_setting_changed_on_an_adapter_applies(tiny_model_dir, surface):
    if surface == "langchain":
        from langchain_echo import EchoEmbeddings as Adapter

        def embed(adapter):
            return adapter.embed_documents(TEXTS[:2])
    else:
        from llamaindex_echo import EchoEmbedding as Adapter

        def embed(adapter):
            return adapter.get_text_embedding_batch(TEXTS[:2])

    adapter = Adapter(model_name=str(tiny_model_dir), device=DEVICE, dtype="float32", template="echo")
    full = np.asarray(embed(adapter))
    adapter.truncate_dim = 16
    cut = np.asarray(embed(adapter))
    assert cut.shape == (2, 16) and adapter.encoder.dim == 16
    np.testing.assert_allclose(cut, full[:, :16] / np.linalg.norm(full[:, :16], axis=1, keepdims=True), atol=1e-5)
    adapter.template = "echo-categorize"
    assert adapter.encoder.template.name == "echo-categorize"
    with pytest.raises(ConfigError, match="truncate_dim must be at most 64"):
        adapter.truncate_dim = 65
    assert adapter.truncate_dim == 16 and adapter.encoder.dim == 16


@pytest.mark.adapters
def test_late_chunking_embeds_an_empty_documents_node_as_the_plain_path_does(tiny_model_dir):
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter

    from llamaindex_echo import EchoEmbedding, EchoLateChunking

    embed_model = EchoEmbedding(model_name=str(tiny_model_dir), device=DEVICE, template="echo")
    splitter = SentenceSplitter(chunk_size=24, chunk_overlap=0)
    late = EchoLateChunking(embed_model=embed_model, splitter=splitter)
    documents = [Document(text=" ".join(TEXTS), id_="full"), Document(text="", id_="empty"), Document(text="  \n")]
    nodes = late(documents)
    plain = splitter(documents)
    assert [node.ref_doc_id for node in nodes] == [node.ref_doc_id for node in plain]
    for node in nodes:
        assert node.embedding is not None and len(node.embedding) == 64
        if not node.get_content().strip():
            np.testing.assert_allclose(node.embedding, embed_model.get_text_embedding(node.get_content()), atol=1e-5)
    with pytest.raises(InputError, match="documents 0 and 1 share the id_ 'same'"):
        late([Document(text="one.", id_="same"), Document(text="two.", id_="same")])

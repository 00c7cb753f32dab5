"""Long inputs: the read budget, truncation modes, windows, late chunking and the token budget of passes."""

import warnings

import numpy as np
import pytest
import torch

from echo_embeddings import TruncationWarning
from echo_embeddings.encoder import TOKENS_PER_TEXT
from echo_embeddings.errors import InputError, TextTooLongError
from echo_embeddings.late_chunking import find_spans, plan_windows, token_spans

from .conftest import stsb_sentences

FP32_NOISE = 1e-5


def text_of(tokenizer, tokens: int) -> str:
    """STS-B sentences joined until the text holds at least ``tokens`` tokens."""
    sentences = stsb_sentences(2000)
    counts = np.cumsum([len(ids) for ids in tokenizer(sentences, add_special_tokens=False)["input_ids"]])
    n = int(np.searchsorted(counts, tokens)) + 1
    while len(tokenizer(" ".join(sentences[:n]), add_special_tokens=False)["input_ids"]) < tokens:
        n += 1
    return " ".join(sentences[:n])


class Passes:
    """Counts the model's forward passes and the tokens of each (a hook on the real model)."""

    def __init__(self, model):
        self.tokens: list[int] = []
        self.handle = model.register_forward_pre_hook(self.record, with_kwargs=True)

    def record(self, module, args, kwargs):
        self.tokens.append(kwargs["input_ids"].numel())

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def test_a_llamaindex_node_is_read_whole_by_default(default_encoder):
    node = text_of(default_encoder.tokenizer, 1024)  # LlamaIndex's default chunk_size
    item = default_encoder.template_tokenizer([node])[0]
    tokens = len(default_encoder.tokenizer(" " + node, add_special_tokens=False)["input_ids"])
    assert not item.truncated and item.text_tokens == tokens >= 1024
    assert item.pool_end - item.pool_start == tokens  # the pooled copy covers every token of the node
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        vectors, stats = default_encoder.encode([node, "short"], return_stats=True)
    assert stats.read_tokens.tolist() == stats.text_tokens.tolist() and not stats.truncated.any()
    assert np.isfinite(vectors).all()


def test_head_and_tail_keep_their_end_in_every_copy(tiny_encoder):
    long = text_of(tiny_encoder.tokenizer, 300)
    ids = tiny_encoder.tokenizer(" " + long if tiny_encoder.template_tokenizer.space_mode == "join" else long,
                                 add_special_tokens=False)["input_ids"]  # fmt: skip
    for mode, kept in (("head", ids[:50]), ("tail", ids[-50:])):
        encoder = tiny_encoder.with_settings(max_text_tokens=50, truncation=mode)
        item = encoder.template_tokenizer([long])[0]
        assert item.truncated and item.text_tokens == len(ids)
        assert item.input_ids[item.pool_start : item.pool_end] == kept
        assert item.input_ids.count(kept[0]) >= 2  # the first copy holds the same ids
        with pytest.warns(TruncationWarning, match=f"1 of 2 texts .* their {mode} kept"):
            encoder.encode([long, "short"])
        _, stats = encoder.encode([long, "short"], return_stats=True)
        assert stats.read_tokens.tolist() == [50, stats.text_tokens[1]] and stats.truncated.tolist() == [True, False]


def test_the_whole_sequence_bound_still_applies(tiny_encoder):
    encoder = tiny_encoder.with_settings(max_length=64)
    item = encoder.template_tokenizer(["x"])[0]
    fixed = len(item.input_ids) - 2 * item.text_tokens
    assert encoder.template_tokenizer.budget() == (64 - fixed) // 2
    assert all(len(i.input_ids) <= 64 for i in encoder.template_tokenizer([text_of(encoder.tokenizer, 200)]))


def test_error_mode_names_the_text_before_any_pass(tiny_encoder):
    encoder = tiny_encoder.with_settings(max_text_tokens=40, truncation="error")
    texts = ["short", "also short", text_of(encoder.tokenizer, 100)]
    with Passes(encoder.model) as passes, pytest.raises(TextTooLongError, match=r"texts\[2\] has \d+ tokens") as err:
        encoder.encode(texts)
    assert passes.tokens == [] and err.value.index == 2 and err.value.limit == 40
    assert np.isfinite(encoder.encode(texts[:2])).all()


def test_windows_give_one_unit_vector_per_text_in_order(tiny_encoder):
    encoder = tiny_encoder.with_settings(max_text_tokens=40, truncation="windows")
    long = text_of(encoder.tokenizer, 150)
    texts = ["a short one", long, "another short text"]
    vectors, stats = encoder.encode(texts, return_stats=True)
    assert vectors.shape == (3, encoder.dim) and np.isfinite(vectors).all()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=FP32_NOISE)
    assert stats.windows.tolist()[0] == 1 and stats.windows[1] >= 4 and not stats.truncated.any()
    head = tiny_encoder.with_settings(max_text_tokens=40)
    np.testing.assert_allclose(vectors[[0, 2]], head.encode([texts[0], texts[2]]), atol=FP32_NOISE)
    # The long text's vector is the normalised mean of its windows' unit vectors, each window a text of its own.
    items = encoder.template_tokenizer([long])
    windows = [encoder._forward((), [item]) for item in items]
    expected = np.mean([w[0] / np.linalg.norm(w[0]) for w in windows], axis=0)
    np.testing.assert_allclose(vectors[1], expected / np.linalg.norm(expected), atol=FP32_NOISE)
    covered = [i.input_ids[i.pool_start : i.pool_end] for i in items]
    assert all(len(ids) == 40 for ids in covered) and covered[0] != covered[-1]


def test_passes_stay_under_the_token_budget(tiny_encoder):
    encoder = tiny_encoder.with_settings(template="echo")
    texts = [text_of(encoder.tokenizer, 900)] * 3 + stsb_sentences(40)
    with Passes(encoder.model) as passes:
        encoder.encode(texts, batch_size=8)
    longest = max(len(i.input_ids) for i in encoder.template_tokenizer(texts))
    assert max(passes.tokens) <= max(8 * TOKENS_PER_TEXT, longest) + TOKENS_PER_TEXT  # one row's padding at most
    assert len(passes.tokens) >= 3  # the long texts do not share a pass


def test_late_chunks_equal_pooling_the_spans_by_hand(tiny_encoder):
    encoder = tiny_encoder.with_settings(normalize=False)  # the echo template, mean pooling
    sentences = stsb_sentences(6)
    document = " ".join(sentences)
    spans = find_spans(document, sentences)
    vectors = encoder.encode_chunks([document, sentences[0]], [spans, [(0, len(sentences[0]))]])
    assert [v.shape for v in vectors] == [(6, encoder.dim), (1, encoder.dim)]
    item = encoder.template_tokenizer([document])[0]
    ids, offsets = encoder.template_tokenizer.with_offsets(document)
    assert item.input_ids[item.pool_start : item.pool_end] == ids
    with torch.inference_mode():
        hidden = (
            encoder.model(input_ids=torch.tensor([item.input_ids], device=encoder.device)).last_hidden_state[0].float()
        )
    for k, (start, end) in enumerate(spans):
        tokens = [t for t, (a, b) in enumerate(offsets) if b > start and a < end]
        expected = hidden[[item.pool_start + t for t in tokens]].mean(0).cpu().numpy()
        np.testing.assert_allclose(vectors[0][k], expected, atol=FP32_NOISE)
    # A document of one chunk is the document embedded whole.
    np.testing.assert_allclose(vectors[1][0], encoder.encode([sentences[0]])[0], atol=FP32_NOISE)


def test_late_chunks_of_a_long_document_each_come_from_a_window_that_holds_them(tiny_encoder):
    encoder = tiny_encoder.with_settings(max_text_tokens=60)
    sentences = stsb_sentences(30)
    document = " ".join(sentences)
    spans = find_spans(document, sentences)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TruncationWarning)
        vectors = encoder.encode_chunks([document], [spans])[0]
    assert vectors.shape == (30, encoder.dim) and np.isfinite(vectors).all()
    ids, offsets = encoder.template_tokenizer.with_offsets(document)
    windows = plan_windows(token_spans(offsets, spans, 0), len(ids), 60)
    assert len(windows) > 1 and sorted(c for w in windows for c in w.chunks) == list(range(30))
    assert all(w.end - w.start <= 60 and all(0 <= a < b <= w.end - w.start for a, b in w.spans) for w in windows)


def test_late_chunking_refuses_bad_spans(tiny_encoder):
    with pytest.raises(InputError, match=r"spans\[0\]\[1\] = \(5, 99\)"):
        tiny_encoder.encode_chunks(["a short document"], [[(0, 5), (5, 99)]])
    with pytest.raises(InputError, match=r"chunks\[1\] is not found"):
        find_spans("one two three", ["one", "four"])


MODES = ("head", "tail", "windows")


@pytest.fixture(scope="module")
def long_texts(tiny_encoder):
    return [
        "a short text",
        text_of(tiny_encoder.tokenizer, 80),
        "another short one",
        text_of(tiny_encoder.tokenizer, 60),
    ]


def reference(tiny_model_dir, texts, **settings):
    from echo_embeddings import EchoEncoder

    return EchoEncoder.from_pretrained(str(tiny_model_dir), device="cpu", max_text_tokens=20, **settings).encode(texts)


def test_cli_embed_in_every_truncation_mode(tmp_path, capsys, tiny_model_dir, long_texts):
    from echo_embeddings.cli import main

    source = tmp_path / "in.txt"
    source.write_text("\n".join(long_texts) + "\n", encoding="utf-8")
    base = ["embed", str(source), "--model", str(tiny_model_dir), "--device", "cpu", "--max-text-tokens", "20"]
    for mode in MODES:
        out = tmp_path / f"{mode}.npy"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)
            assert main([*base, "-o", str(out), "--truncation", mode]) == 0
        np.testing.assert_allclose(np.load(out), reference(tiny_model_dir, long_texts, truncation=mode), atol=1e-5)
    capsys.readouterr()
    assert main([*base, "-o", str(tmp_path / "error.npy"), "--truncation", "error"]) == 2
    err = capsys.readouterr().err
    assert f"{source}: row 1 has" in err and "more than the 20 read" in err and "Traceback" not in err
    assert not (tmp_path / "error.npy").exists()


def test_langchain_and_llamaindex_in_every_truncation_mode(tiny_model_dir, long_texts):
    from langchain_echo import EchoEmbeddings
    from llamaindex_echo import EchoEmbedding

    for mode in MODES:
        expected = reference(tiny_model_dir, long_texts, truncation=mode)
        settings = dict(model_name=str(tiny_model_dir), device="cpu", max_text_tokens=20, truncation=mode)
        langchain, llamaindex = EchoEmbeddings(**settings), EchoEmbedding(**settings, embed_batch_size=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            np.testing.assert_allclose(langchain.embed_documents(long_texts), expected, atol=1e-5)
            np.testing.assert_allclose(llamaindex.get_text_embedding_batch(long_texts), expected, atol=1e-5)
        counts = [str(w.message).split(" texts")[0] for w in caught if w.category is TruncationWarning]
        assert counts == ([] if mode == "windows" else ["2 of 4"] * 2)  # once per call, LlamaIndex's 4 chunks too
        assert all(w.filename == __file__ for w in caught if w.category is TruncationWarning)
    settings = dict(model_name=str(tiny_model_dir), device="cpu", max_text_tokens=20, truncation="error")
    with pytest.raises(TextTooLongError, match=r"texts\[1\] has"):
        EchoEmbeddings(**settings).embed_documents(long_texts)
    with pytest.raises(TextTooLongError, match=r"texts\[3\] has"):
        EchoEmbedding(**settings, embed_batch_size=1).get_text_embedding_batch([*long_texts[::2], "x", long_texts[1]])


def test_sentence_transformers_max_seq_length_is_max_text_tokens(tiny_model_dir, long_texts):
    from echo_embeddings import sentence_transformer
    from echo_embeddings.errors import ConfigError

    model = sentence_transformer(str(tiny_model_dir), device="cpu", truncation="tail")
    model.max_seq_length = 20
    assert model[0].echo_config.max_text_tokens == 20
    with pytest.warns(TruncationWarning):
        vectors = model.encode(long_texts, convert_to_numpy=True, normalize_embeddings=True)
    np.testing.assert_allclose(vectors, reference(tiny_model_dir, long_texts, truncation="tail"), atol=1e-5)
    strict = sentence_transformer(str(tiny_model_dir), device="cpu", truncation="error", max_text_tokens=20)
    with pytest.raises(TextTooLongError, match="has .* tokens"):
        strict.encode(long_texts)
    with pytest.raises(ConfigError, match="truncation='windows'"):
        sentence_transformer(str(tiny_model_dir), device="cpu", truncation="windows")


def test_server_truncation_modes(tiny_model_dir, long_texts):
    from .test_server import Server

    strict = Server(tiny_model_dir, "--max-text-tokens", "20", "--truncation", "error", "--template", "echo")
    try:
        refused = strict.post({"model": "tiny-echo", "input": long_texts}, key=None)
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "input"
        assert refused.json()["error"]["message"].startswith("input[1] has")
        assert strict.post({"model": "tiny-echo", "input": long_texts[::2]}, key=None).status_code == 200
    finally:
        strict.stop()
    tail = Server(tiny_model_dir, "--max-text-tokens", "20", "--truncation", "tail", "--template", "echo")
    try:
        data = tail.post({"model": "tiny-echo", "input": long_texts}, key=None).json()["data"]
    finally:
        tail.stop()
    expected = reference(tiny_model_dir, long_texts, truncation="tail", template="echo")
    np.testing.assert_allclose([d["embedding"] for d in data], expected, atol=1e-5)


def test_late_chunking_from_langchain_and_llamaindex(tiny_model_dir):
    from llama_index.core import Document, VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    from langchain_echo import EchoEmbeddings
    from llamaindex_echo import EchoEmbedding, EchoLateChunking

    sentences = stsb_sentences(12)
    document = " ".join(sentences)
    settings = dict(model_name=str(tiny_model_dir), device="cpu", template="echo")
    expected = EchoEmbeddings(**settings).encoder.encode_chunks([document], [find_spans(document, sentences)])[0]
    vectors = EchoEmbeddings(**settings).embed_late_chunks(document, sentences)
    assert isinstance(vectors[0][0], float)
    np.testing.assert_allclose(vectors, expected, atol=FP32_NOISE)

    embed_model = EchoEmbedding(**settings)
    splitter = SentenceSplitter(chunk_size=24, chunk_overlap=0)
    late = EchoLateChunking(embed_model=embed_model, splitter=splitter)
    index = VectorStoreIndex.from_documents([Document(text=document)], embed_model=embed_model, transformations=[late])
    nodes = sorted(index.docstore.docs.values(), key=lambda node: node.start_char_idx)
    assert len(nodes) > 2
    spans = [(node.start_char_idx, node.end_char_idx) for node in nodes]
    by_hand = embed_model.encoder.encode_chunks([document], [spans])[0]
    stored = index.vector_store.to_dict()["embedding_dict"]
    np.testing.assert_allclose([stored[node.node_id] for node in nodes], by_hand, atol=FP32_NOISE)
    with pytest.raises(InputError, match="takes Documents"):
        late(nodes)

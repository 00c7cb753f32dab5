"""One inference core: EchoEncoder and the sentence-transformers module give the same vectors, whatever the template,
form, prompt and length, and warn the same way about cut texts."""

import json
import re
import warnings

import numpy as np
import pytest

from echo_embeddings import (
    INSTRUCTIONS,
    TEMPLATES,
    EchoEncoder,
    TruncationWarning,
    load_sentence_transformer,
    sentence_transformer,
)

from .conftest import DEVICE, stsb_sentences

PARITY = 0.99999
SHORT = ["A man is playing a guitar.", "", "Braces {text} stay text", "Someone plays the guitar on stage."]
LONG = ["word " * 40, "A short one.", "another longer text " * 12, "Fine."]


def rowwise_cos(a, b):
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def both_ways(st, encoder, texts, *, query, prompt, batch_size=2):
    """The two surfaces' vectors of ``texts`` and the TruncationWarnings each gave, for one user call each."""
    st_call = st.encode_query if query else st.encode_document
    with warnings.catch_warnings(record=True) as st_warned:
        warnings.simplefilter("always")
        st_vectors = st_call(texts, prompt=prompt, batch_size=batch_size)
    with warnings.catch_warnings(record=True) as encoder_warned:
        warnings.simplefilter("always")
        vectors = encoder.encode(texts, query=query, instruction=prompt, batch_size=batch_size)
    count = [sum(w.category is TruncationWarning for w in warned) for warned in (st_warned, encoder_warned)]
    return st_vectors, vectors, count


@pytest.fixture(scope="module", params=sorted(TEMPLATES))
def tiny_pair(request, tiny_model_dir):
    settings = {"template": request.param, "max_text_tokens": 24, "device": DEVICE, "dtype": "float32"}
    return sentence_transformer(str(tiny_model_dir), **settings), EchoEncoder.from_pretrained(
        str(tiny_model_dir), **settings
    )


@pytest.mark.parametrize("query", [False, True])
@pytest.mark.parametrize("prompt", [None, "", "Retrieve recipes"])
def test_every_template_form_and_prompt_gives_the_encoders_vectors(tiny_pair, query, prompt):
    st, encoder = tiny_pair
    st_vectors, vectors, warned = both_ways(st, encoder, SHORT, query=query, prompt=prompt)
    assert rowwise_cos(st_vectors, vectors).min() >= PARITY
    assert warned == [0, 0]


def test_an_empty_prompt_is_no_prompt_on_both(tiny_model_dir):
    """sentence-transformers passes "" for "no prompt": the template's own instruction applies, as without one."""
    st = sentence_transformer(str(tiny_model_dir), template="echo-instruct", device=DEVICE, dtype="float32")
    encoder = EchoEncoder.from_pretrained(str(tiny_model_dir), template="echo-instruct", device=DEVICE)
    for texts in (st.encode_query(SHORT, prompt=""), encoder.encode_queries(SHORT, instruction="")):
        assert rowwise_cos(texts, encoder.encode_queries(SHORT)).min() >= PARITY
    assert rowwise_cos(st.encode_query(SHORT, prompt="Other"), encoder.encode_queries(SHORT)).min() < PARITY


@pytest.mark.parametrize("query", [False, True])
def test_texts_past_max_text_tokens_are_cut_alike_with_one_warning_a_call(tiny_pair, query):
    st, encoder = tiny_pair
    st_vectors, vectors, warned = both_ways(st, encoder, LONG, query=query, prompt=None, batch_size=1)
    assert rowwise_cos(st_vectors, vectors).min() >= PARITY
    assert warned == [1, 1]  # two texts cut, over four batches on the sentence-transformers side


def test_a_saved_folder_reads_the_same_on_both(tiny_model_dir, tmp_path):
    settings = {"template": "echo-instruct", "query_instruction": "Find it", "max_text_tokens": 24}
    sentence_transformer(str(tiny_model_dir), device=DEVICE, dtype="float32", **settings).save(str(tmp_path))
    reloaded = load_sentence_transformer(str(tmp_path), device=DEVICE)
    encoder = EchoEncoder.from_pretrained(str(tmp_path), device=DEVICE, dtype="float32")
    assert encoder.config.query_instruction == "Find it" and encoder.config.max_text_tokens == 24
    for query in (False, True):
        st_vectors, vectors, warned = both_ways(reloaded, encoder, LONG, query=query, prompt=None)
        assert rowwise_cos(st_vectors, vectors).min() >= PARITY
        assert warned == [1, 1]


@pytest.mark.parametrize("query", [False, True])
@pytest.mark.parametrize("prompt", [None, "", "Given a question, retrieve passages that answer it"])
def test_the_default_model_reads_alike_on_both(default_encoder, default_st, query, prompt):
    texts = stsb_sentences(8)
    st_vectors, vectors, warned = both_ways(default_st, default_encoder, texts, query=query, prompt=prompt)
    assert rowwise_cos(st_vectors, vectors).min() >= PARITY
    assert warned == [0, 0]


@pytest.fixture(scope="module")
def default_st(default_encoder):
    return sentence_transformer(device=str(default_encoder.device), dtype="float32")


@pytest.mark.adapters
def test_a_named_instruction_reads_as_its_text_on_every_surface(tiny_model_dir):
    from langchain_echo import EchoEmbeddings
    from llamaindex_echo import EchoEmbedding

    texts = SHORT[:1] + SHORT[3:]
    settings = {"model_name": str(tiny_model_dir), "template": "echo-instruct", "device": DEVICE}
    named = EchoEncoder.from_pretrained(**settings, query_instruction="scifact")
    assert named.config.query_instruction == INSTRUCTIONS["scifact"]
    spelled = EchoEncoder.from_pretrained(**settings).encode(texts, query=True, instruction=INSTRUCTIONS["scifact"])
    untold = EchoEncoder.from_pretrained(**settings).encode(texts, query=True)
    assert rowwise_cos(untold, spelled).max() < PARITY  # the instruction changes the vectors
    got = {
        "encoder": named.encode(texts, query=True),
        "langchain": [EchoEmbeddings(**settings, query_instruction="scifact").embed_query(t) for t in texts],
        "llamaindex": [EchoEmbedding(**settings, query_instruction="scifact").get_query_embedding(t) for t in texts],
        "sentence-transformers": sentence_transformer(**settings, query_instruction="scifact").encode_query(texts),
    }
    for surface, vectors in got.items():
        assert rowwise_cos(vectors, spelled).min() >= PARITY, surface


def test_bfloat16_on_a_cpu_reads_as_float32_does(tiny_model_dir):
    """bfloat16, the fast dtype of CPUs with AMX, within its rounding of float32 at every length (the long text runs
    in a whole pass of its own)."""
    texts = [*SHORT, " ".join(stsb_sentences(60))]
    vectors = {
        dtype: EchoEncoder.from_pretrained(str(tiny_model_dir), device="cpu", dtype=dtype).encode(texts)
        for dtype in ("float32", "bfloat16")
    }
    assert rowwise_cos(vectors["bfloat16"], vectors["float32"]).min() >= 0.9999  # as the GPU check's bf16 parity


# One place assembles a reading


@pytest.mark.parametrize("which", ["tiny", "default"])
def test_an_encoder_of_a_loaded_model_reads_as_from_pretrained(tiny_model_dir, default_encoder, which):
    from echo_embeddings import DEFAULT_MODEL, EchoConfig, load_model
    from echo_embeddings.config import LOADING_KEYS

    name = str(tiny_model_dir) if which == "tiny" else DEFAULT_MODEL
    loaded = EchoEncoder.from_pretrained(name, device=DEVICE, dtype="float32")
    built = EchoEncoder(load_model(name, device=DEVICE, dtype="float32"))
    reading = set(EchoConfig.model_fields) - set(LOADING_KEYS)  # how it reads, not which copy is loaded
    assert built.config.model_dump(include=reading) == loaded.config.model_dump(include=reading)
    assert built.fingerprint == loaded.fingerprint
    assert (rowwise_cos(built.encode(SHORT), loaded.encode(SHORT)) >= PARITY).all()
    if which == "default":
        assert (
            built.template.name == "echo" and built.config.query_instruction == default_encoder.config.query_instruction
        )


def test_a_config_naming_another_model_is_refused(tiny_model_dir, tiny_encoder):
    from echo_embeddings import EchoConfig
    from echo_embeddings.errors import ConfigError

    with pytest.raises(ConfigError, match="the config names the model 'other/model'"):
        EchoEncoder(tiny_encoder._loaded, config=EchoConfig(model_name="other/model"))


@pytest.mark.adapters
def test_a_setting_changed_after_construction_is_saved_and_read_alike_everywhere(tiny_model_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    from langchain_echo import EchoEmbeddings
    from llamaindex_echo import EchoEmbedding

    st = sentence_transformer(str(tiny_model_dir), template="echo", device=DEVICE)
    module = st[0]
    module.echo_config = module.echo_config.replace(pooling="last", truncate_dim=32, normalize=False)
    before = st.encode(SHORT)
    st.save(str(tmp_path))
    saved = json.loads((tmp_path / "echo_config.json").read_text())
    assert (saved["pooling"], saved["truncate_dim"], saved["normalize"]) == ("last", 32, False)
    folder = str(tmp_path)
    readings = {
        "EchoEncoder": EchoEncoder.from_pretrained(folder, device=DEVICE).encode(SHORT),
        "LangChain": EchoEmbeddings(model_name=folder, device=DEVICE).embed_documents(SHORT),
        "LlamaIndex": EchoEmbedding(model_name=folder, device=DEVICE).get_text_embedding_batch(SHORT),
        "load_sentence_transformer": load_sentence_transformer(folder, device=DEVICE).encode(SHORT),
        "SentenceTransformer": SentenceTransformer(folder, trust_remote_code=True, device=DEVICE).encode(SHORT),
    }
    for surface, vectors in readings.items():
        vectors = np.asarray(vectors)
        assert vectors.shape == before.shape, surface
        assert (rowwise_cos(vectors, before) >= PARITY).all(), surface
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), np.linalg.norm(before, axis=1), rtol=1e-4)


@pytest.mark.parametrize(
    "settings, remedy",
    [
        ({"max_text_tokens": 8}, "raise max_text_tokens, or set truncation='windows'"),
        ({"max_text_tokens": 2048, "max_length": 40}, "raise max_length, or set truncation='windows'"),
    ],
    ids=["max_text_tokens", "max_length"],
)
def test_the_warning_names_the_bound_that_cut(tiny_encoder, settings, remedy):
    encoder = tiny_encoder.with_settings(**settings)
    with pytest.warns(TruncationWarning, match=rf"their head kept; {re.escape(remedy)}"):
        encoder.encode(LONG)
    document = LONG[0]
    with pytest.warns(
        TruncationWarning, match=r"1 of 1 chunks were .* their head kept; raise .*, or split them smaller"
    ):
        encoder.encode_chunks([document], [[(0, len(document))]])

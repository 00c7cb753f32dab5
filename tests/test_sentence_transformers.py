"""The sentence-transformers modules: same vectors as EchoEncoder, prompts, save/load, training, evaluators."""

import json

import numpy as np
import pytest
from sentence_transformers import SentenceTransformer

from echo_embeddings import EchoEncoder, TruncationWarning, load_sentence_transformer, sentence_transformer
from echo_embeddings.errors import ConfigError

from .conftest import DATA, DEVICE

TEXTS = ["A man is playing a guitar.", "Someone plays the guitar on stage.", "", "Braces {text} stay text"]


def rowwise_cos(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


@pytest.fixture(scope="module")
def tiny_st(tiny_model_dir):
    return sentence_transformer(str(tiny_model_dir), template="echo-instruct", device=DEVICE)


@pytest.fixture(scope="module")
def tiny_echo(tiny_model_dir):
    return EchoEncoder.from_pretrained(str(tiny_model_dir), template="echo-instruct", device=DEVICE)


def test_same_vectors_as_echo_encoder(tiny_st, tiny_echo):
    assert (rowwise_cos(tiny_st.encode(TEXTS), tiny_echo.encode(TEXTS)) >= 0.9999).all()
    assert (rowwise_cos(tiny_st.encode_document(TEXTS), tiny_echo.encode_documents(TEXTS)) >= 0.9999).all()
    assert (rowwise_cos(tiny_st.encode_query(TEXTS), tiny_echo.encode_queries(TEXTS)) >= 0.9999).all()


def test_prompt_fills_the_instruction_slot(tiny_st, tiny_echo):
    st = tiny_st.encode_query(TEXTS, prompt="Retrieve recipes")
    assert (rowwise_cos(st, tiny_echo.encode_queries(TEXTS, instruction="Retrieve recipes")) >= 0.9999).all()
    assert (rowwise_cos(st, tiny_echo.encode_queries(TEXTS)) < 0.9999).any()


def test_bad_inputs(tiny_st):
    assert tiny_st.encode([]).shape[0] == 0
    with pytest.raises(TypeError, match=r"texts\[1\] is int"):
        tiny_st.encode(["fine", 5])
    with pytest.warns(TruncationWarning):
        tiny_st.encode(["word " * 5000])


def test_a_cut_names_the_bound_that_cut_it(tiny_st):
    """A trainer's per-call max_length (train_max_length) cuts training texts on purpose: where it is the bound that
    cut, its warning says to raise that, not max_text_tokens; otherwise the warning names the encoder's own settings."""
    module = tiny_st[0]
    with pytest.warns(TruncationWarning, match=r"1 of 2 texts .*max_length=96\).*raise train_max_length"):
        module.preprocess(["word " * 100, "short"], max_length=96)
    for max_length, remedy in (
        (None, "the model reads at most 2048 positions"),  # the tiny model's positions, which no setting raises
        (20_000, "raise max_text_tokens"),  # roomier than max_text_tokens (2,048): max_text_tokens cut
    ):
        with pytest.warns(TruncationWarning, match=remedy) as caught:
            module.preprocess(["word " * 5000], max_length=max_length)
        assert "train_max_length" not in str(caught[0].message)


def test_a_bad_item_is_named_by_the_callers_index(tiny_st, tmp_path):
    texts = [f"sentence {i}" for i in range(40)]
    texts[35] = None
    with pytest.raises(TypeError, match=r"texts\[35\] is NoneType"):
        tiny_st.encode(texts, batch_size=8)
    with pytest.raises(TypeError, match=r"texts\[35\] is NoneType"):
        tiny_st.encode_query(texts, batch_size=8)
    tiny_st.save(str(tmp_path))
    with pytest.raises(TypeError, match=r"texts\[35\] is NoneType"):
        load_sentence_transformer(str(tmp_path)).encode_document(texts, batch_size=8)


def test_save_and_load(tiny_st, tmp_path):
    tiny_st.save(str(tmp_path))
    config = json.loads((tmp_path / "config_sentence_transformers.json").read_text())
    assert set(config["prompts"]) >= {"query", "document"}
    assert config["requirements"]["echo-embeddings"]["specifier"].startswith(">=")
    saved = json.loads((tmp_path / "echo_config.json").read_text())
    assert saved.pop("fingerprint").startswith("echo-")  # a record of the folder, not a setting
    assert saved == {
        "template": "echo-instruct",
        "pooling": "mean",
        "max_text_tokens": 2048,
        "max_length": None,
        "normalize": True,
        "query_instruction": None,
        "document_instruction": None,
        "matryoshka_dims": None,
        "truncate_dim": None,
    }
    with pytest.raises(ValueError, match="trust_remote_code"):
        SentenceTransformer(str(tmp_path))
    expected = tiny_st.encode_query(TEXTS)
    for loaded in (
        SentenceTransformer(str(tmp_path), trust_remote_code=True),
        load_sentence_transformer(str(tmp_path)),
    ):
        assert (rowwise_cos(loaded.encode_query(TEXTS), expected) >= 0.9999).all()
        assert loaded.max_seq_length == 2048


def test_folders_saved_before_the_config_still_load(tiny_st, tmp_path):
    tiny_st.save(str(tmp_path))
    (tmp_path / "echo_config.json").write_text(json.dumps({"template": "echo-instruct", "max_seq_length": 64}))
    loaded = load_sentence_transformer(str(tmp_path))
    assert loaded[0].echo_config.max_length == 64  # the whole sequence, as the key meant then
    assert (rowwise_cos(loaded.encode_query(TEXTS), tiny_st.encode_query(TEXTS)) >= 0.9999).all()


def test_max_seq_length_is_checked_as_everywhere(tiny_st):
    with pytest.raises(ConfigError, match="max_text_tokens: Input should be greater than or equal to 1"):
        tiny_st.max_seq_length = 0
    with pytest.raises(ConfigError, match="max_length must be at most 2048"):
        sentence_transformer(str(tiny_st[0].echo_config.model_name), max_length=10**9, device=DEVICE)


def test_custom_template_survives_save(tiny_model_dir, tmp_path):
    model = sentence_transformer(str(tiny_model_dir), template="Echo: {text} / {text}", max_length=64, device=DEVICE)
    model.max_seq_length = 20
    model.save(str(tmp_path))
    loaded = load_sentence_transformer(str(tmp_path))
    assert loaded[0].template == model[0].template and loaded.max_seq_length == 20
    assert loaded[0].echo_config.max_length == 64
    assert (rowwise_cos(loaded.encode(TEXTS), model.encode(TEXTS)) >= 0.9999).all()


def test_trainer_lowers_the_loss_and_the_result_reloads(tiny_model_dir, tmp_path):
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    pairs = []
    with open(DATA / "sts" / "stsb-train.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            if row["score"] >= 4:
                pairs.append({"anchor": row["sentence1"], "positive": row["sentence2"]})
            if len(pairs) == 64:
                break
    model = sentence_transformer(str(tiny_model_dir), device=DEVICE)
    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp_path / "run"),
        num_train_epochs=6,
        per_device_train_batch_size=16,
        learning_rate=3e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        seed=0,
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(pairs), loss=MultipleNegativesRankingLoss(model)
    )
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 24
    assert np.mean(losses[-4:]) < 0.8 * np.mean(losses[:4]), losses
    model.save(str(tmp_path / "trained"))
    reloaded = load_sentence_transformer(str(tmp_path / "trained"))
    assert (rowwise_cos(reloaded.encode(TEXTS), model.encode(TEXTS)) >= 0.9999).all()


def test_embedding_similarity_evaluator_on_stsb_dev(default_encoder):
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    with open(DATA / "sts" / "stsb-dev.jsonl", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f][:100]
    evaluator = EmbeddingSimilarityEvaluator(
        [r["sentence1"] for r in rows], [r["sentence2"] for r in rows], [r["score"] / 5 for r in rows], name="stsb-dev"
    )
    results = evaluator(sentence_transformer())
    assert results["stsb-dev_spearman_cosine"] > 0.5, results


def test_encode_runs_only_what_follows_the_shared_prefix(tiny_st, tiny_echo):
    """Outside training the module uses the encoder's prefix cache: the model sees each text's own tokens only."""
    widths = []

    def record_width(module, args, kwargs, output):
        widths.append(kwargs["input_ids"].shape[1])

    handle = tiny_st[0].auto_model.register_forward_hook(record_width, with_kwargs=True)
    try:
        tiny_st.encode(TEXTS[:2])
    finally:
        handle.remove()
    prefix = len(tiny_echo.template_tokenizer.shared_prefix())
    full = max(len(item.input_ids) for item in tiny_echo.template_tokenizer(TEXTS[:2]))
    assert widths[-1] == full - prefix
    assert (rowwise_cos(tiny_st.encode(TEXTS), tiny_echo.encode(TEXTS)) >= 0.9999).all()


def test_a_model_folder_loads_as_echo_and_a_damaged_config_is_named(tiny_model_dir, tmp_path):
    from echo_embeddings import EchoEncoder

    plain = load_sentence_transformer(str(tiny_model_dir), device=DEVICE)  # no modules.json: a causal LM's folder
    expected = EchoEncoder.from_pretrained(str(tiny_model_dir), device=DEVICE).encode(TEXTS)
    assert (rowwise_cos(plain.encode(TEXTS), expected) >= 0.9999).all()
    saved = tmp_path / "saved"
    plain.save(str(saved))
    (saved / "echo_config.json").write_text("{broken")
    for load in (
        lambda: load_sentence_transformer(str(saved)),
        lambda: SentenceTransformer(str(saved), trust_remote_code=True),
    ):
        with pytest.raises(ConfigError, match=rf"{saved}/echo_config.json: unreadable echo configuration"):
            load()

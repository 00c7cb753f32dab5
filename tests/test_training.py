"""Fine-tuning: the loss falls (LoRA, full, and CoSENT on graded pairs), the saved folder loads five ways (the
encoder, sentence-transformers twice, both adapters), mining, bad rows, resume; distillation moves a one-copy
student toward its echo teacher."""

import json
import shutil

import numpy as np
import pytest
from scipy.stats import spearmanr
from sentence_transformers import SentenceTransformer

from echo_embeddings import EchoEncoder, load_sentence_transformer
from echo_embeddings.errors import ConfigError, TrainingDataError
from echo_embeddings.files import read_records
from echo_embeddings.instructions import GENERAL_INSTRUCTION, INSTRUCTIONS
from echo_embeddings.trained import TrainedModel, merge_lora
from echo_embeddings.training import TrainingRow, distill, read_training_rows, recipe_rows, train
from echo_embeddings.training.export import export_adapter
from echo_embeddings.training.mining import mine_negatives
from echo_embeddings.training.recipe import DEFAULT_ROWS, banking77_dev, scifact_dev_queries

from .conftest import DATA, DEVICE, stsb_sentences

TEXTS = ["A man is playing a guitar.", "Someone plays the guitar on stage.", "A cat sleeps.", ""]


def stsb_pairs(n: int) -> list[TrainingRow]:
    rows = []
    with open(DATA / "sts" / "stsb-train.jsonl", encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            if record["score"] >= 4:
                rows.append(TrainingRow(record["sentence1"], record["sentence2"]))
            if len(rows) == n:
                return rows
    raise AssertionError("not enough pairs")


def graded_pairs(n: int) -> list[TrainingRow]:
    """The first ``n`` STS-B train pairs with their scores, every score."""
    with open(DATA / "sts" / "stsb-train.jsonl", encoding="utf-8") as f:
        records = [json.loads(line) for line, _ in zip(f, range(n), strict=False)]
    return [TrainingRow(r["sentence1"], r["sentence2"], score=r["score"]) for r in records]


def losses(folder) -> list[float]:
    log = json.loads((folder / "training_log.json").read_text())
    return [entry["loss"] for entry in log["log"] if "loss" in entry]


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    """LoRA training on 64 STS-B pairs with one mined negative each, instruction on half of them."""
    folder = tmp_path_factory.mktemp("trained") / "lora"
    rows = stsb_pairs(64)
    rows = rows[:32] + [TrainingRow(r.anchor, r.positive, (), "Find the paraphrase") for r in rows[32:]]
    model = train(
        rows,
        output_dir=folder,
        model_name=str(tiny_model_dir),
        device=DEVICE,
        template="echo-instruct",
        pooling="last",
        steps=24,
        train_batch_size=8,
        learning_rate=1e-2,
        save_steps=12,
        eval_data=str(DATA / "sts" / "stsb-dev.jsonl"),
        eval_pairs=20,
        eval_steps=12,
    )
    return folder, model


def test_lora_loss_falls_and_logs_dev_scores(lora_run):
    folder, _ = lora_run
    values = losses(folder)
    log = json.loads((folder / "training_log.json").read_text())["log"]
    final_step = log[-1]["step"]
    assert 16 <= final_step <= 24 and len(values) == final_step  # steps is a maximum (see TrainingConfig.steps)
    assert np.mean(values[-4:]) < 0.8 * np.mean(values[:4]), values
    evaluated = [e["step"] for e in log if "eval_sts-dev_spearman_cosine" in e]
    assert evaluated == list(range(12, final_step + 1, 12))


def test_full_fine_tuning_loss_falls(tiny_model_dir, tmp_path):
    train(
        stsb_pairs(64),
        output_dir=tmp_path / "full",
        model_name=str(tiny_model_dir),
        device=DEVICE,
        lora=False,
        hard_negatives=0,
        steps=24,
        train_batch_size=8,
        learning_rate=3e-3,
    )
    values = losses(tmp_path / "full")
    assert np.mean(values[-4:]) < 0.8 * np.mean(values[:4]), values


def test_graded_pairs_train_with_cosent_beside_contrastive_rows(tiny_model_dir, tmp_path):
    """Graded pairs get batches of their own and CoSENT's loss; no negatives are mined for them; the rows kept
    for resume hold their scores."""
    graded = graded_pairs(64)
    rows = stsb_pairs(16) + graded
    train(
        rows,
        output_dir=tmp_path / "run",
        model_name=str(tiny_model_dir),
        device=DEVICE,
        steps=4,
        train_batch_size=8,
    )
    kept = read_training_rows([tmp_path / "run" / "checkpoints" / "training_rows.jsonl"])
    assert [r for r in kept if r.score is not None] == graded  # in order, scores kept, nothing mined for them
    assert any(r.negatives for r in kept if r.score is None)
    # CoSENT alone: the cosine similarities of the pairs it trained on come to rank as their scores do
    alone = tmp_path / "graded"
    settings = {"steps": 48, "train_batch_size": 8, "learning_rate": 3e-3, "lora": False}
    train(graded, output_dir=alone, model_name=str(tiny_model_dir), device=DEVICE, **settings)

    def rank_agreement(folder) -> float:
        encoder = EchoEncoder.from_pretrained(str(folder), device=DEVICE, template="echo-categorize")
        first, second = encoder.encode([r.anchor for r in graded]), encoder.encode([r.positive for r in graded])
        return float(spearmanr((first * second).sum(1), [r.score for r in graded]).statistic)

    before, after = rank_agreement(tiny_model_dir), rank_agreement(alone)
    assert after > before + 0.3, (before, after)


def test_the_folder_loads_three_ways_with_its_settings(lora_run):
    folder, model = lora_run
    saved = json.loads((folder / "echo_config.json").read_text())
    assert saved["template"] == "echo-instruct" and saved["pooling"] == "last"
    assert saved["query_instruction"] == "Find the paraphrase"
    assert not (folder / "adapter_config.json").exists()  # LoRA merged into the saved weights
    expected_docs, expected_queries = model.encode_document(TEXTS), model.encode_query(TEXTS)
    encoder = EchoEncoder.from_pretrained(str(folder), device=DEVICE)
    sentence_transformers = [
        load_sentence_transformer(str(folder), device=DEVICE),
        SentenceTransformer(str(folder), trust_remote_code=True, device=DEVICE),
    ]
    assert encoder.pooling == "last" and encoder.template.name == "echo-instruct"
    got = {
        "EchoEncoder": (encoder.encode_documents(TEXTS), encoder.encode_queries(TEXTS)),
        **{
            f"SentenceTransformer {i}": (st.encode_document(TEXTS), st.encode_query(TEXTS))
            for i, st in enumerate(sentence_transformers)
        },
    }
    for name, (docs, queries) in got.items():
        assert (_cos(docs, expected_docs) >= 0.9999).all(), name
        assert (_cos(queries, expected_queries) >= 0.9999).all(), name
    # training moved the weights: the base model reads the same texts differently
    base = EchoEncoder.from_pretrained(
        str(json.loads((folder / "training_log.json").read_text())["settings"]["model_name"]),
        device=DEVICE,
        template="echo-instruct",
        pooling="last",
    )
    assert (_cos(base.encode_documents(TEXTS), expected_docs) < 0.999).any()


@pytest.mark.adapters
def test_the_adapters_load_the_folder_with_its_settings(lora_run):
    from langchain_echo import EchoEmbeddings
    from llamaindex_echo import EchoEmbedding

    folder, model = lora_run
    expected_docs, expected_queries = model.encode_document(TEXTS), model.encode_query(TEXTS)
    langchain = EchoEmbeddings(model_name=str(folder), device=DEVICE)
    llamaindex = EchoEmbedding(model_name=str(folder), device=DEVICE)
    got = {
        "LangChain": (np.array(langchain.embed_documents(TEXTS)), np.array([langchain.embed_query(t) for t in TEXTS])),
        "LlamaIndex": (
            np.array(llamaindex.get_text_embedding_batch(TEXTS)),
            np.array([llamaindex.get_query_embedding(t) for t in TEXTS]),
        ),
    }
    for name, (docs, queries) in got.items():
        assert (_cos(docs, expected_docs) >= 0.9999).all(), name
        assert (_cos(queries, expected_queries) >= 0.9999).all(), name


def test_a_diverging_run_stops_and_saves_nothing(tiny_model_dir, tmp_path):
    from echo_embeddings.errors import TrainingError

    settings = dict(model_name=str(tiny_model_dir), device=DEVICE, steps=6, train_batch_size=8, hard_negatives=0)
    with pytest.raises(ConfigError, match="learning_rate: Input should be a finite number"):
        train(stsb_pairs(16), output_dir=tmp_path / "inf", learning_rate=float("inf"), **settings)
    with pytest.raises(TrainingError, match=r"the training (loss|grad norm) became (nan|inf) at step \d+"):
        train(stsb_pairs(16), output_dir=tmp_path / "huge", learning_rate=1e30, **settings)
    assert not list((tmp_path / "huge").glob("*.safetensors"))


def test_every_input_is_checked_before_the_model_loads(tmp_path):
    from echo_embeddings.errors import InputError

    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    nowhere = str(tmp_path / "no-such-model")  # were it loaded first, its error would come first
    rows = stsb_pairs(16)
    cases = [
        ({"output_dir": a_file}, ConfigError, "output folder .*a-file: cannot write there"),
        ({"output_dir": a_file / "under"}, ConfigError, "cannot write there"),
        ({"output_dir": "/proc/echo-run"}, ConfigError, "output folder /proc/echo-run: cannot write there"),
        ({"eval_data": str(tmp_path / "missing.jsonl")}, InputError, "missing.jsonl"),
        ({"eval_data": str(DATA / "nli" / "snli-train-triplets.jsonl")}, InputError, "no field 'sentence1'"),
        ({"train_batch_size": 32}, ConfigError, "16 training rows do not fill one batch of train_batch_size=32"),
    ]
    for settings, error, message in cases:
        with pytest.raises(error, match=message):
            train(rows, **{"output_dir": tmp_path / "run", "model_name": nowhere, **settings})


def test_lora_targets_that_match_nothing_fail_before_mining(tiny_model_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"lora_target_modules: \['qkv'\] match no module .*'q_proj'"):
        train(stsb_pairs(16), output_dir=tmp_path / "run", model_name=str(tiny_model_dir), device=DEVICE,
              lora_target_modules=["q_proj", "qkv"], steps=1)  # fmt: skip
    assert not (tmp_path / "run" / "checkpoints").exists()  # mining had not started


def test_csv_cells_are_text_as_written(tmp_path):
    path = tmp_path / "rows.csv"
    path.write_text("anchor,positive,score\nNA,001,\nnull,true,2.5\n", encoding="utf-8")
    rows = read_training_rows([path])
    assert [(r.anchor, r.positive, r.score) for r in rows] == [("NA", "001", None), ("null", "true", 2.5)]


def test_an_exported_adapter_merged_into_its_base_reads_as_the_run(tiny_model_dir, tmp_path):
    run, shipped = tmp_path / "run", tmp_path / "shipped"
    settings = {"template": "echo", "pooling": "mean", "query_instruction": "general"}
    train(stsb_pairs(64), output_dir=run, model_name=str(tiny_model_dir), device=DEVICE, **settings, steps=2,
          train_batch_size=8, learning_rate=1e-2, save_steps=1)  # fmt: skip
    digest = export_adapter(run, shipped, dtype="float32")
    assert TrainedModel(name="tests/tiny-echo", base=str(tiny_model_dir), folder=shipped).verify() == digest
    saved = json.loads((shipped / "echo_config.json").read_text())
    assert "fingerprint" not in saved  # the run's weights are not the shipped model's
    assert (saved["template"], saved["query_instruction"]) == ("echo", GENERAL_INSTRUCTION)  # a name, resolved
    merge_lora(str(tiny_model_dir), shipped / "adapter.safetensors", tmp_path / "merged")
    texts = stsb_sentences(6)
    trained = EchoEncoder.from_pretrained(str(run), device=DEVICE)
    merged = EchoEncoder.from_pretrained(str(tmp_path / "merged"), device=DEVICE, **settings)
    untrained = EchoEncoder.from_pretrained(str(tiny_model_dir), device=DEVICE, template="echo")
    for query in (False, True):
        expected = trained.encode(texts, query=query)
        assert _cos(merged.encode(texts, query=query), expected).min() >= 0.9999
        assert _cos(untrained.encode(texts, query=query), expected).min() < 0.9999  # training moved the vectors


def test_trained_folders_follow_the_umask(lora_run):
    from echo_embeddings.files import current_umask

    files = [path for path in lora_run[0].rglob("*") if path.is_file()]
    assert any(path.suffix == ".safetensors" for path in files)  # safetensors writes 0600 by itself
    assert {oct(path.stat().st_mode & 0o777) for path in files} == {oct(0o666 & ~current_umask())}


def test_checkpoints_are_kept_at_save_steps(lora_run):
    folder, _ = lora_run
    final_step = json.loads((folder / "training_log.json").read_text())["log"][-1]["step"]
    checkpoints = sorted(int(p.name.split("-")[1]) for p in (folder / "checkpoints").glob("checkpoint-*"))
    assert checkpoints == list(range(12, final_step + 1, 12))


def test_resume_continues_from_the_checkpoint(tiny_model_dir, tmp_path):
    """A run killed after its step-12 checkpoint and resumed computes the same steps 13-24 as an unbroken run:
    weights, optimizer, schedule and data order all come back."""
    run = tmp_path / "run"
    common = dict(
        model_name=str(tiny_model_dir), device=DEVICE, hard_negatives=0, train_batch_size=8, save_steps=12, steps=24
    )
    train(stsb_pairs(64), output_dir=run, **common)
    unbroken = {e["step"]: e["loss"] for e in json.loads((run / "training_log.json").read_text())["log"] if "loss" in e}
    assert max(unbroken) == 24
    with pytest.raises(ConfigError, match="already holds a trained model"):
        train(stsb_pairs(64), output_dir=run, **common)
    with pytest.raises(ConfigError, match="already holds a trained model"):  # nothing left to resume
        train([], output_dir=run, resume=True, **common)
    for path in run.iterdir():  # what a run killed after its step-12 checkpoint leaves
        if path.name != "checkpoints":
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    shutil.rmtree(run / "checkpoints" / "checkpoint-24")
    train([], output_dir=run, resume=True, **common)
    resumed = {e["step"]: e["loss"] for e in json.loads((run / "training_log.json").read_text())["log"] if "loss" in e}
    assert sorted(resumed) == list(range(1, 25))
    np.testing.assert_allclose([resumed[s] for s in range(13, 25)], [unbroken[s] for s in range(13, 25)], atol=1e-4)
    with pytest.raises(ConfigError, match="resume: no training run to resume"):
        train([], output_dir=tmp_path / "never", resume=True, **common)


def test_a_run_stopped_before_its_first_checkpoint_starts_again(tiny_model_dir, tmp_path):
    from transformers import TrainerCallback

    class CtrlC(TrainerCallback):
        """Ctrl-C at the end of step ``at``, as a user's would arrive."""

        def __init__(self, at):
            self.at = at

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == self.at:
                raise KeyboardInterrupt

    run = tmp_path / "run"
    common = dict(model_name=str(tiny_model_dir), device=DEVICE, hard_negatives=0, train_batch_size=8, steps=4)
    for resume in (False, True):
        with pytest.raises(KeyboardInterrupt):
            train(stsb_pairs(32), output_dir=run, save_steps=50, callbacks=[CtrlC(2)], **common)
        assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["training_rows.jsonl"]
        train([] if resume else stsb_pairs(32), output_dir=run, resume=resume, **common)  # the same command works
        assert len(losses(run)) == 4
        shutil.rmtree(run)
    with pytest.raises(KeyboardInterrupt):
        train(stsb_pairs(32), output_dir=run, save_steps=2, callbacks=[CtrlC(3)], **common)
    with pytest.raises(ConfigError, match=r"holds a training run stopped at checkpoint-2: --resume continues it"):
        train(stsb_pairs(32), output_dir=run, **common)


def test_distillation_moves_the_student_toward_its_teacher(lora_run, tmp_path):
    teacher, _ = lora_run
    texts = [text for row in stsb_pairs(48) for text in (row.anchor, row.positive)]
    settings = {"device": DEVICE, "steps": 20, "train_batch_size": 16, "learning_rate": 1e-2}
    distill(texts, teacher=teacher, output_dir=tmp_path / "student", **settings)
    values = losses(tmp_path / "student")
    assert np.mean(values[-4:]) < 0.8 * np.mean(values[:4]), values
    target = EchoEncoder.from_pretrained(str(teacher), device=DEVICE).encode(texts)
    student = EchoEncoder.from_pretrained(str(tmp_path / "student"), device=DEVICE)
    assert (student.config.template, student.config.pooling) == ("classical", "mean")  # stored in the folder
    start = EchoEncoder.from_pretrained(str(teacher), device=DEVICE, template="classical", pooling="mean")

    def distance(encoder: EchoEncoder) -> float:
        return float(np.mean(1 - np.sum(encoder.encode(texts) * target, axis=1)))

    assert distance(student) < 0.5 * distance(start), (distance(student), distance(start))


@pytest.mark.parametrize(
    ("setting", "message"),
    [({"scale": 20.0}, "scale: not used by distillation"), ({"resume": True}, "resume: distillation does not")],
)
def test_distillation_refuses_what_it_does_not_use(lora_run, tmp_path, setting, message):
    with pytest.raises(ConfigError, match=message):
        distill(["a text"], teacher=lora_run[0], output_dir=tmp_path / "student", **setting)


def test_distill_command(lora_run, tmp_path, capsys):
    from echo_embeddings.cli import main

    teacher = str(lora_run[0])
    (tmp_path / "texts.txt").write_text("\n".join(stsb_sentences(16)) + "\n", encoding="utf-8")
    args = ["--teacher", teacher, "--device", DEVICE, "--steps", "2", "--train-batch-size", "8"]
    assert main(["distill", str(tmp_path / "texts.txt"), "-o", str(tmp_path / "student"), *args]) == 0
    assert EchoEncoder.from_pretrained(str(tmp_path / "student")).config.template == "classical"
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"title": "no text"}\n', encoding="utf-8")
    assert main(["distill", str(tmp_path / "bad.jsonl"), "-o", str(tmp_path / "other"), *args]) == 2
    assert "bad.jsonl:2" in capsys.readouterr().err and not (tmp_path / "other").exists()
    (tmp_path / "blank.txt").write_text("a text\n\n  \n", encoding="utf-8")
    assert main(["distill", str(tmp_path / "blank.txt"), "-o", str(tmp_path / "other"), *args]) == 2
    assert "blank.txt:2: a blank text" in capsys.readouterr().err and not (tmp_path / "other").exists()
    with pytest.raises(ConfigError, match=r"texts\[1\] is ' ', not a text"):
        distill(["a text", " "], teacher=teacher, output_dir=tmp_path / "other")


def test_mined_negatives_never_equal_the_positive_or_anchor(tiny_model_dir):
    from echo_embeddings import sentence_transformer

    model = sentence_transformer(str(tiny_model_dir), device=DEVICE)
    rows = stsb_pairs(40)
    rows.append(TrainingRow(rows[0].positive, rows[0].anchor))  # the same pair reversed: a would-be self-negative
    mined, unmatched = mine_negatives(rows, model, count=2, margin=0.05, batch_size=16)
    assert len(mined) == len(rows) and [(r.anchor, r.positive) for r in mined] == [(r.anchor, r.positive) for r in rows]
    with_negatives = [r for r in mined if r.negatives]
    assert len(with_negatives) + unmatched == len(rows) and with_negatives
    for row in with_negatives:
        assert len(row.negatives) == 2
        assert row.positive not in row.negatives and row.anchor not in row.negatives


def test_a_mining_model_mines_the_negatives(tiny_model_dir, caplog):
    from echo_embeddings import sentence_transformer
    from echo_embeddings.training.config import TrainingConfig
    from echo_embeddings.training.trainer import _with_hard_negatives

    rows = stsb_pairs(40)
    trained = sentence_transformer(str(tiny_model_dir), device=DEVICE, template="classical")
    options = TrainingConfig(hard_negatives=2, mining_max_length=None, mining_model=str(tiny_model_dir))
    with caplog.at_level("INFO", logger="echo_embeddings.training.trainer"):
        mined = _with_hard_negatives(rows, trained, options)
    miner = sentence_transformer(str(tiny_model_dir), device=DEVICE)  # the folder read with its own settings
    expected, _ = mine_negatives(rows, miner, count=2, margin=options.mining_margin, batch_size=32)
    assert mined == expected and any(row.negatives for row in mined)
    assert f"mined per row by {tiny_model_dir}" in caplog.text
    assert trained.echo_transformer.template.name == "classical"  # the model being trained is left as it was


@pytest.mark.parametrize(
    ("content", "name", "message"),
    [
        ('{"anchor": "a", "positive": "b"}\n{"anchor": "a"}\n', "rows.jsonl", r"rows.jsonl:2: missing 'positive'"),
        ('{"anchor": "a", "positive": 3}\n', "rows.jsonl", r"rows.jsonl:1: 'positive' is int, expected a string"),
        ('{"anchor": " ", "positive": "b"}\n', "rows.jsonl", r"rows.jsonl:1: 'anchor' is empty"),
        (
            '{"anchor": "a", "positive": "b", "label": 1}\n',
            "rows.jsonl",
            r"rows.jsonl:1: unknown column\(s\) \['label'\]",
        ),
        ('{"anchor": "a", "positive": "b", "instruction": 5}\n', "rows.jsonl", r"rows.jsonl:1: 'instruction' is int"),
        ('{"anchor": "a", "positive": "b", "score": "4.2"}\n', "rows.jsonl", r"rows.jsonl:1: 'score' is str, expected"),
        ('{"anchor": "a", "positive": "b", "score": NaN}\n', "rows.jsonl", r"rows.jsonl:1: 'score' is nan, expected"),
        (
            "anchor,positive,score,negative\na,b,1.5,c\n",
            "rows.csv",
            r"rows.csv:2: a row with a 'score' .* no negatives",
        ),
        ("anchor,positive,negative\na,b,c\nd,e,\n", "rows.csv", r"rows.csv:3: missing 'negative'"),
        ("anchor,positive,score\na,b,0.5\nc,d,nan\n", "rows.csv", r"rows.csv:3: 'score' is nan, expected a finite"),
        ("anchor,positive,score\na,b,high\n", "rows.csv", r"rows.csv:2: 'score' is 'high', expected a number"),
        ('anchor,positive\n"two\nlines",b\n\nc,\n', "rows.csv", r"rows.csv:5: missing 'positive'"),
        ("anchor,positive\na,b,c\n", "rows.csv", r"rows.csv:2: 3 cells, but the header names 2 columns"),
        ("", "rows.jsonl", "no training rows"),
        ("a\tb\n", "rows.tsv", "unsupported table type '.tsv'"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, content, name, message):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(TrainingDataError, match=message):
        read_training_rows([path])


def test_parquet_rows_and_negative_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {"anchor": ["a", "b"], "positive": ["c", "d"], "negative_2": ["e", "f"], "negative_1": ["g", None]}
    )
    pq.write_table(table, tmp_path / "rows.parquet")
    with pytest.raises(TrainingDataError, match=r"rows.parquet: row 1: missing 'negative_1'"):
        read_training_rows([tmp_path / "rows.parquet"])
    pq.write_table(table.drop(["negative_1"]), tmp_path / "ok.parquet")
    assert read_training_rows([tmp_path / "ok.parquet"])[1] == TrainingRow("b", "d", ("f",))


def test_recipe_reads_training_splits_only_less_the_development_data():
    rows = recipe_rows(DATA, rows={"nli": 20, "stsb": 20, "scifact": 20, "banking77": 20, "stsb-scores": 30})
    assert len(rows) == 110
    scifact = rows[40:60]  # half on SciFact's instruction, half on the general one (the shipped recipe)
    assert {r.instruction for r in scifact} == {INSTRUCTIONS["scifact"], GENERAL_INSTRUCTION}
    assert all(not r.negatives for r in scifact)
    banking = rows[-50:-30]
    assert all(len(r.negatives) == 1 and r.score is None for r in banking)
    graded = rows[-30:]  # STS-B's 0-5 scores scaled to 0-1
    assert all(0 <= r.score <= 1 and not r.negatives for r in graded) and len({r.score for r in graded}) > 5
    everything = recipe_rows(DATA, rows=dict.fromkeys(DEFAULT_ROWS, 10_000))
    held_out = scifact_dev_queries(DATA)
    claims = {r["_id"]: r["text"] for r in read_records(DATA / "retrieval/scifact/queries.jsonl", {"_id": str})}
    assert held_out and not {claims[q] for q in held_out} & {r.anchor for r in everything}
    dev_texts = {r["text"] for r in banking77_dev(DATA)}
    assert dev_texts and not dev_texts & {t for r in everything for t in (r.anchor, r.positive, *r.negatives)}
    with pytest.raises(ValueError, match="unknown recipe source"):
        recipe_rows(DATA, rows={"sick": 10})


def test_the_late_chunked_source_marks_the_cited_abstract_among_two_others():
    from echo_embeddings.evaluation.retrieval import load_qrels
    from echo_embeddings.late_chunking import marked_span

    rows = recipe_rows(DATA, rows={**dict.fromkeys(DEFAULT_ROWS, 0), "scifact-late": 10_000}, general_share=0.0)
    qrels = load_qrels(DATA / "retrieval/scifact/qrels/train.tsv")
    claims = {r["_id"]: r["text"] for r in read_records(DATA / "retrieval/scifact/queries.jsonl", {"_id": str})}
    corpus = {r["_id"]: f"{r.get('title') or ''} {r['text']}".strip()
              for r in read_records(DATA / "retrieval/scifact/corpus.jsonl", {"_id": str})}  # fmt: skip
    held_out = scifact_dev_queries(DATA)
    dev_abstracts = {corpus[d] for q in held_out for d in qrels.get(q, {}) if d in corpus}
    assert rows and {r.instruction for r in rows} == {INSTRUCTIONS["scifact"]}
    for row in rows:
        query = next(q for q, text in claims.items() if text == row.anchor)
        assert query not in held_out
        document, span = marked_span(row.positive, 0)
        assert document[span[0] : span[1]] in {corpus[d] for d in qrels[query]}
        assert len(row.negatives) == 2
        for negative in row.negatives:
            same, other = marked_span(negative, 0)
            assert same == document and other != span  # another abstract of the same document
            assert document[other[0] : other[1]] not in dev_abstracts


def test_training_on_late_chunked_spans_tells_a_span_from_its_neighbours(tiny_model_dir, tmp_path):
    from echo_embeddings.late_chunking import find_spans, mark_span

    pairs = stsb_pairs(48)
    rows = []
    for i in range(16):  # each anchor's pair among two other sentences in one text; the others are its negatives
        sentences = [pairs[i].positive, pairs[i + 16].positive, pairs[i + 32].positive]
        document = " ".join(sentences)
        marked = [mark_span(document, span) for span in find_spans(document, sentences)]
        rows.append(TrainingRow(pairs[i].anchor, marked[0], (marked[1], marked[2])))
    settings = dict(model_name=str(tiny_model_dir), device=DEVICE, template="echo", pooling="mean", steps=12,
                    train_batch_size=4, learning_rate=1e-2)  # fmt: skip
    train(rows, output_dir=tmp_path / "late", **settings)
    values = losses(tmp_path / "late")
    # A row's positive and negatives are one text: read without their marks they would get one vector, and the loss
    # could not fall below ln 3 (the positive at best one of three equals). Pooled as marked, the spans part.
    assert len(values) == 12 and np.mean(values[-3:]) < 0.5 * np.log(3), values


def test_mini_batches_give_the_batch_its_own_losses(tiny_model_dir, tmp_path):
    """``mini_batch_size`` (GradCache) bounds memory, not the result: the same losses as the whole batch at once."""
    others = stsb_pairs(32)[16:]
    rows = [row.with_negatives([other.positive]) for row, other in zip(stsb_pairs(16), others, strict=True)]
    settings = dict(model_name=str(tiny_model_dir), device=DEVICE, hard_negatives=0, steps=3, train_batch_size=8)
    train(rows, output_dir=tmp_path / "whole", **settings)
    train(rows, output_dir=tmp_path / "mini", mini_batch_size=2, **settings)
    np.testing.assert_allclose(losses(tmp_path / "mini"), losses(tmp_path / "whole"), atol=1e-3)


def test_recipe_instructions_by_source():
    sizes = {"nli": 10, "stsb": 10, "scifact": 20, "banking77": 10, "stsb-scores": 10}
    by_task = recipe_rows(DATA, rows=sizes, general_share=0.0)
    expected = {"nli": "nli", "stsb": "sts", "scifact": "scifact", "banking77": "banking77", "stsb-scores": None}
    starts = np.cumsum([0, *sizes.values()])
    for (source, name), start, end in zip(expected.items(), starts[:-1], starts[1:], strict=True):
        assert {r.instruction for r in by_task[start:end]} == {INSTRUCTIONS.get(name)}, source
    release_02 = recipe_rows(DATA, rows=sizes, instructions="scifact", general_share=0.0)
    assert {r.instruction for r in release_02} == {None, INSTRUCTIONS["scifact"]}
    assert [r.anchor for r in release_02] == [r.anchor for r in by_task]  # the same rows drawn
    mixed = recipe_rows(DATA, rows=sizes, general_share=0.5)
    scifact = [r.instruction for r in mixed[starts[2] : starts[3]]]
    assert scifact.count(GENERAL_INSTRUCTION) == scifact.count(INSTRUCTIONS["scifact"]) == 10
    with pytest.raises(ValueError, match="general_share"):
        recipe_rows(DATA, general_share=1.5)


def _cos(a, b):
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def test_recipe_command_trains_echo_unless_told(tiny_model_dir, tmp_path):
    from echo_embeddings.cli import main

    # the recipe's results were measured with echo (mean); the zero-shot default template is another
    assert EchoEncoder.from_pretrained(str(tiny_model_dir)).config.template == "echo-categorize"
    sources = ("nli=8", "stsb=0", "scifact=0", "banking77=0", "stsb-scores=0")
    rows = [arg for source in sources for arg in ("--recipe-rows", source)]
    args = ["--recipe", str(DATA), *rows, "--model", str(tiny_model_dir), "--device", DEVICE, "--steps", "1",
            "--train-batch-size", "4", "--eval-pairs", "4"]  # fmt: skip
    assert main(["train", *args, "-o", str(tmp_path / "echo")]) == 0
    assert EchoEncoder.from_pretrained(str(tmp_path / "echo")).config.template == "echo"
    assert main(["train", *args, "--template", "classical", "-o", str(tmp_path / "classical")]) == 0
    assert EchoEncoder.from_pretrained(str(tmp_path / "classical")).config.template == "classical"

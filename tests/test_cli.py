"""The echo-embeddings command end to end on small slices with the tiny model, and its errors on bad files."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from echo_embeddings import EchoEncoder
from echo_embeddings.cli import main

from .conftest import DATA, HERE, stsb_sentences


@pytest.fixture(scope="module")
def texts():
    return stsb_sentences(23) + ["", "  braces {text} stay text  "]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    ("source", "target"), [("txt", "npy"), ("jsonl", "parquet"), ("csv", "jsonl"), ("parquet", "npy")]
)
def test_embed_file_in_file_out(tmp_path, capsys, tiny_model_dir, texts, source, target):
    path = tmp_path / f"in.{source}"
    if source == "txt":
        path.write_text("\n".join(texts) + "\n", encoding="utf-8")
    elif source == "jsonl":
        path.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)), encoding="utf-8")
    elif source == "csv":
        import csv

        with open(path, "w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([["text"], *[[t] for t in texts]])
    else:
        pq.write_table(pa.table({"text": texts}), path)
    out = tmp_path / f"out.{target}"
    code, _, err = run(
        capsys, "embed", path, "-o", out, "--model", tiny_model_dir, "--device", "cpu", "--batch-size", "4"
    )
    assert code == 0, err
    if target == "npy":
        vectors = np.load(out)
    elif target == "parquet":
        table = pq.read_table(out)
        assert table.column("id").to_pylist() == list(range(len(texts)))
        vectors = np.array(table.column("embedding").to_pylist(), dtype=np.float32)
    else:
        rows = [json.loads(line) for line in out.read_text().splitlines()]
        assert [r["id"] for r in rows] == list(range(len(texts)))
        vectors = np.array([r["embedding"] for r in rows], dtype=np.float32)
    expected = EchoEncoder.from_pretrained(str(tiny_model_dir), device="cpu").encode(texts)
    assert vectors.shape == expected.shape
    np.testing.assert_allclose(vectors, expected, atol=1e-5)  # row i is text i


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"text": "fine"}\n{"txt": "typo"}\n', "in.jsonl:2: no field 'text'"),
        (b'{"text": "fine"}\n{"text": 3}\n', "in.jsonl:2: field 'text' is int"),
        (b'{"text": "fine"}\n{"text": "broken"\n', "in.jsonl:2: malformed JSON"),
        (b'{"text": "fine"}\n{"text": "caf\xe9"}\n', "in.jsonl:2: not valid UTF-8"),
        (b"", "no texts"),
    ],
)
def test_bad_input_files(tmp_path, capsys, tiny_model_dir, content, message):
    path = tmp_path / "in.jsonl"
    path.write_bytes(content)
    out = tmp_path / "out.npy"
    code, _, err = run(capsys, "embed", path, "-o", out, "--model", tiny_model_dir, "--device", "cpu")
    assert code == 2
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


def test_an_existing_output_survives_a_failed_run(tmp_path, capsys, tiny_model_dir):
    out = tmp_path / "out.npy"
    np.save(out, np.ones((2, 2), dtype=np.float32))
    (tmp_path / "in.txt").write_text("ok\n", encoding="utf-8")
    (tmp_path / "bad.txt").write_bytes(b"ok\n\xff\n")
    code, _, err = run(capsys, "embed", tmp_path / "bad.txt", "-o", out, "--model", tiny_model_dir, "--device", "cpu")
    assert code == 2 and "bad.txt:2: not valid UTF-8" in err
    np.testing.assert_array_equal(np.load(out), np.ones((2, 2), dtype=np.float32))


def test_missing_column_and_bad_output_type(tmp_path, capsys, tiny_model_dir):
    pq.write_table(pa.table({"body": ["a"]}), tmp_path / "in.parquet")
    code, _, err = run(capsys, "embed", tmp_path / "in.parquet", "-o", tmp_path / "o.npy", "--model", tiny_model_dir)
    assert code == 2 and "no column 'text' (columns: body)" in err
    code, _, err = run(capsys, "embed", tmp_path / "in.parquet", "-o", tmp_path / "o.txt", "--field", "body")
    assert code == 2 and "unsupported output type '.txt'" in err
    (tmp_path / "in.txt").write_text("a\n", encoding="utf-8")
    code, _, err = run(capsys, "embed", tmp_path / "in.txt", "-o", tmp_path / "out", "--ray")
    assert code == 2 and "--ray reads Parquet or JSONL" in err


def test_eval_sts_writes_json_markdown_and_plot(tmp_path, capsys, tiny_model_dir):
    code, out, err = run(
        capsys, "eval", "sts", "--data", DATA / "sts" / "stsb-dev.jsonl", "--limit", "30", "--model", tiny_model_dir,
        "--device", "cpu", "--template", "classical", "--template", "echo", "--compute-matched", "--out", tmp_path,
    )  # fmt: skip
    assert code == 0, err
    results = json.loads((tmp_path / "results.json").read_text())
    rows = results["results"]
    assert [r["template"] for r in rows] == ["classical", "echo", "echo@half"]
    assert {r["metric"] for r in rows} == {"spearman"} and all(r["n"] == 30 for r in rows)
    assert set(rows[0]) == {"task", "dataset", "template", "pooling", "metric", "score", "n", "seconds",
                            "texts_per_second"}  # fmt: skip
    assert "| sts | stsb-dev | echo |" in (tmp_path / "results.md").read_text() and "| sts |" in out
    assert (tmp_path / "results.png").read_bytes().startswith(b"\x89PNG")


def test_eval_retrieval_sub_corpus_is_deterministic(tmp_path, capsys, tiny_model_dir):
    args = ["eval", "retrieval", "--data", DATA / "retrieval" / "scifact", "--limit", "3", "--corpus-limit", "5",
            "--max-length", "96", "--model", tiny_model_dir, "--device", "cpu"]  # fmt: skip
    assert run(capsys, *args, "--out", tmp_path / "a")[0] == 0
    assert run(capsys, *args, "--out", tmp_path / "b")[0] == 0
    a, b = (json.loads((tmp_path / d / "results.json").read_text())["results"] for d in "ab")
    assert [r["metric"] for r in a] == ["ndcg@10", "recall@100"]
    assert [r["score"] for r in a] == [r["score"] for r in b]
    assert all(0 <= r["score"] <= 100 for r in a) and a[0]["dataset"].startswith("scifact[3q/")


def test_eval_toy(tmp_path, capsys, tiny_model_dir):
    code, _, err = run(capsys, "eval", "toy", "--data", HERE / "data" / "toy_triples.jsonl", "--model", tiny_model_dir,
                       "--device", "cpu", "--out", tmp_path)  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "results.json").read_text())["results"]
    assert [r["dataset"] for r in rows] == ["shared-prefix", "shared-suffix", "all"]
    assert rows[-1]["n"] == 16


def test_eval_bad_sts_file(tmp_path, capsys, tiny_model_dir):
    path = tmp_path / "sts.jsonl"
    path.write_text('{"sentence1": "a", "sentence2": "b", "score": 1}\n{"sentence1": "a", "score": 2}\n')
    code, _, err = run(capsys, "eval", "sts", "--data", path, "--model", tiny_model_dir, "--out", tmp_path / "o")
    assert code == 2 and "sts.jsonl:2: no field 'sentence2'" in err


@pytest.mark.parametrize(("option", "value", "message"), [("--device", "tpu", "unknown device 'tpu'"),
                                                          ("--dtype", "int8", "unknown dtype 'int8'")])  # fmt: skip
def test_a_bad_device_or_dtype_is_a_usage_error(tmp_path, capsys, option, value, message):
    source = tmp_path / "in.txt"
    source.write_text("a text\n")
    code, _, err = run(capsys, "embed", source, "-o", tmp_path / "out.npy", option, value)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


# Long work says what it is doing, wherever its output goes


def _run_logged(tmp_path, *argv):
    """The command line in a subprocess with stderr sent to a file (no terminal): its exit code and that log."""
    import subprocess
    import sys

    log = tmp_path / "stderr.log"
    with open(log, "w") as stderr:
        code = subprocess.run(
            [sys.executable, "-m", "echo_embeddings.cli", *map(str, argv)], stderr=stderr, timeout=600
        ).returncode
    return code, log.read_text()


def test_embed_into_a_log_says_it_loads_and_how_far_it_is(tmp_path, tiny_model_dir):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(stsb_sentences(40)) + "\n")
    code, log = _run_logged(
        tmp_path, "embed", source, "-o", tmp_path / "o.npy", "--model", tiny_model_dir, "--batch-size", "2"
    )
    lines = log.splitlines()
    assert code == 0, log
    assert lines[0] == f"loading {tiny_model_dir} ..." and lines[1].startswith(f"loaded {tiny_model_dir} on cpu in")
    progress = [line for line in lines if line.startswith("Embedding: ")]
    assert len(progress) >= 10 and "\r" not in log  # a line each tenth, no terminal bar
    assert progress[-1].startswith("Embedding: 40/40 texts (100%)") and progress[-1].endswith("done")
    assert "ETA" in progress[0]
    code, log = _run_logged(tmp_path, "embed", source, "-o", tmp_path / "q.npy", "--model", tiny_model_dir, "--quiet")
    assert code == 0 and log.splitlines() == [f"wrote 40 embeddings of dimension 64 to {tmp_path / 'q.npy'}"]


def test_eval_into_a_log_shows_progress(tmp_path, tiny_model_dir):
    code, log = _run_logged(
        tmp_path, "eval", "sts", "--data", DATA / "sts" / "stsb-dev.jsonl", "--limit", "30", "--model",
        tiny_model_dir, "--threads", "1", "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 0, log
    assert log.startswith(f"loading {tiny_model_dir} ...") and "Embedding: " in log and "(100%)" in log


def test_the_settings_choices_are_listed_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    out = capsys.readouterr().out
    for option in ("--truncation {head,tail,error,windows}", "--precision {float32,int8,uint8,binary,ubinary}"):
        assert option in out


@pytest.mark.parametrize(
    ("module", "argv", "extra"),
    [
        ("pyarrow", ["embed", "{texts}", "-o", "{out}/vectors.parquet", "--model", "/never/loaded"], "eval"),
        ("peft", ["train", "{pairs}", "-o", "{out}/my-model", "--model", "/never/loaded"], "train"),
    ],
    ids=["parquet-output", "train"],
)
def test_a_missing_extra_is_named_before_any_work(tmp_path, capsys, monkeypatch, module, argv, extra):
    import sys

    texts, pairs, out = tmp_path / "texts.txt", tmp_path / "pairs.jsonl", tmp_path / "out"
    texts.write_text("a text\n")
    pairs.write_text('{"anchor": "a", "positive": "b"}\n' * 4)
    monkeypatch.setitem(sys.modules, module, None)  # as if not installed: find_spec and import both fail
    code, _, err = run(capsys, *(a.format(texts=texts, pairs=pairs, out=out) for a in argv))
    assert code == 2 and f'is not installed; it comes with pip install "echo-embeddings[{extra}]"' in err, err
    assert not out.exists()  # no folder left behind


def test_the_help_says_what_each_command_uses(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # lines unwrapped: argparse breaks words at hyphens
    with pytest.raises(SystemExit):
        main(["embed", "--help"])
    embed = " ".join(capsys.readouterr().out.split())
    assert "Default: the model folder's own (the default model's: echo), else echo-categorize" in embed
    assert "Default: the template's own" in embed and "--query-instruction" in embed and "--quiet" in embed
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    train = capsys.readouterr().out
    assert "--precision" not in train and "--truncate-dim" not in train and "--threads" in train
    # the encoder's batch (mining) is told apart from the training batch
    assert "while mining hard negatives, and the saved model's setting (the training batch is --train-batch-size)" in (
        " ".join(train.split())
    )


def test_an_unknown_setting_gets_the_closest_name():
    from echo_embeddings.errors import ConfigError

    with pytest.raises(ConfigError, match=r"templte: Extra inputs are not permitted; did you mean 'template'\?"):
        EchoEncoder.from_pretrained("/never/loaded", templte="echo")

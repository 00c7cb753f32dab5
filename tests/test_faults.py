"""Every failure a user can cause gets one clear line through the surface where it happens, and no file is lost,
clobbered or left half-written (issue: user faults)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from echo_embeddings import EchoEncoder, TruncationWarning, load_model
from echo_embeddings.cli import main
from echo_embeddings.errors import EchoEmbeddingsError, InputError, ModelError
from echo_embeddings.files import read_texts
from echo_embeddings.loading import bundled_base_gguf
from echo_embeddings.model_cache import MANIFEST, converted_gguf
from echo_embeddings.model_cache import intact as _intact

from .conftest import stsb_sentences

CLI = [sys.executable, "-m", "echo_embeddings.cli"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


PROGRESS = re.compile(r"loading .* \.\.\.$|loaded .* in \d+ s$|Embedding: .*")
"""The lines a command reports its progress with, off a terminal: not errors."""


def one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.fullmatch(line)]
    assert len(lines) == 1 and lines[0].startswith("echo-embeddings: error: "), err
    assert "Traceback" not in err
    return lines[0]


# The model cache and model loading


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:1000]),
        lambda f: (f / "config.json").write_text("{broken"),
        lambda f: (f / "model.safetensors").unlink(),
        lambda f: (f / "tokenizer.json").write_text((f / "tokenizer.json").read_text()[:5000]),
    ],
    ids=["truncated-weights", "broken-config", "missing-weights", "truncated-tokenizer"],
)
def test_a_damaged_converted_cache_is_detected(tmp_path, damage):
    converted = converted_gguf(bundled_base_gguf())
    copy = tmp_path / converted.name  # a copy: the user's cache is never touched
    shutil.copytree(converted, copy)
    assert _intact(copy)
    damage(copy)
    assert not _intact(copy)


def test_a_damaged_cache_is_rebuilt_on_load(tmp_path):
    cache = tmp_path / "cache"
    converted = converted_gguf(bundled_base_gguf())
    shutil.copytree(converted, cache / "gguf" / converted.name)
    weights = cache / "gguf" / converted.name / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    env = {**os.environ, "ECHO_EMBEDDINGS_CACHE": str(cache)}
    code = "import echo_embeddings as e; print(e.EchoEncoder.from_pretrained(e.BASE_MODEL).encode(['ok']).shape)"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and "(1, 576)" in result.stdout, result.stderr[-2000:]
    assert "de-quantizing" not in result.stderr  # the library's line says what runs; transformers' bar is off
    assert "is damaged; building it again" in result.stderr and _intact(cache / "gguf" / converted.name)
    from echo_embeddings.files import current_umask

    modes = {oct(path.stat().st_mode & 0o777) for path in (cache / "gguf" / converted.name).iterdir()}
    assert modes == {oct(0o666 & ~current_umask())}  # a shared cache is readable by others (safetensors wrote 0600)


def test_a_truncated_weights_file_is_named_on_every_surface(tiny_model_dir, tmp_path):
    from echo_embeddings import load_sentence_transformer, sentence_transformer
    from echo_embeddings.cli import main
    from echo_embeddings.errors import ModelError
    from langchain_echo import EchoEmbeddings

    folder = tmp_path / "model"
    sentence_transformer(str(tiny_model_dir), device="cpu").save(str(folder))  # a model folder every surface loads
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    message = rf"{folder}: the weights in {folder} are damaged or incomplete"
    for load in (
        lambda: EchoEncoder.from_pretrained(str(folder), device="cpu"),
        lambda: EchoEmbeddings(model_name=str(folder), device="cpu"),
        lambda: load_sentence_transformer(str(folder), device="cpu"),
    ):
        with pytest.raises(ModelError, match=message):
            load()
    texts = tmp_path / "texts.txt"
    texts.write_text("a text\n")
    assert main(["embed", str(texts), "-o", str(tmp_path / "out.npy"), "--model", str(folder)]) == 1


@pytest.fixture(scope="module")
def bert_dir(sp_tokenizer_dir, tmp_path_factory):
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("bert")
    config = BertConfig(
        vocab_size=1000, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64
    )
    BertModel(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(sp_tokenizer_dir).save_pretrained(path)
    return path


def test_an_encoder_model_is_refused_at_load(bert_dir):
    with pytest.raises(ModelError, match=f"{bert_dir} is a BertModel, not a causal \\(decoder-only\\) language"):
        EchoEncoder.from_pretrained(str(bert_dir), device="cpu")


def test_an_encoder_model_is_refused_by_the_cli(bert_dir, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("hello\n")
    code, _, err = run(capsys, "embed", source, "-o", tmp_path / "out.npy", "--model", bert_dir, "--device", "cpu")
    assert code == 1 and "is a BertModel, not a causal (decoder-only) language model" in one_error_line(err)


def test_an_encoder_decoder_model_is_refused(sp_tokenizer_dir, tmp_path):
    from transformers import AutoTokenizer, T5Config, T5Model

    config = T5Config(vocab_size=1000, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=2)
    T5Model(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(sp_tokenizer_dir).save_pretrained(tmp_path)
    with pytest.raises(ModelError, match="is a T5Model, an encoder-decoder model, not a causal"):
        EchoEncoder.from_pretrained(str(tmp_path), device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="about machines without CUDA")
def test_a_missing_device_names_the_devices(tiny_model_dir, tmp_path, capsys):
    from langchain_echo import EchoEmbeddings

    with pytest.raises(ModelError, match=r"device 'cuda' is not available here; devices: cpu"):
        EchoEncoder.from_pretrained(str(tiny_model_dir), device="cuda")
    with pytest.raises(ModelError, match=r"device 'cuda:1' is not available here"):
        EchoEmbeddings(model_name=str(tiny_model_dir), device="cuda:1")
    source = tmp_path / "in.txt"
    source.write_text("hello\n")
    code, _, err = run(capsys, "embed", source, "-o", tmp_path / "o.npy", "--model", tiny_model_dir, "--device", "cuda")
    assert code == 1 and "device 'cuda' is not available here; devices: cpu" in one_error_line(err)


def test_missing_models_fail_fast_and_say_what_is_missing(tmp_path):
    with pytest.raises(ModelError, match=r"/nonexistent/model: no such folder"):
        load_model("/nonexistent/model")
    (tmp_path / "notes.txt").write_text("not a model")
    with pytest.raises(ModelError, match=r"not a model folder \(no config.json in it\)"):
        load_model(str(tmp_path))
    # Our own check answers (one request, no retries), naming the model and the way to skip the network.
    with pytest.raises(ModelError, match="someone/no-such-model-here: .*not reachable.*set HF_HUB_OFFLINE=1"):
        load_model("someone/no-such-model-here")


# Inputs


@pytest.mark.parametrize(
    ("texts", "kind"), [({"a": "b"}, "dict"), ({"a", "b"}, "set"), (None, "NoneType"), (3, "int"), (iter(["a"]), "")]
)
def test_texts_must_be_an_ordered_sequence(tiny_encoder, texts, kind):
    with pytest.raises(TypeError, match=f"texts must be a sequence of str \\(a list or tuple\\), got {kind}"):
        tiny_encoder.encode(texts)


def test_arrays_are_sequences(tiny_encoder):
    texts = ["one", "two"]
    np.testing.assert_allclose(tiny_encoder.encode(np.array(texts)), tiny_encoder.encode(texts), atol=1e-5)


def test_embed_refuses_to_overwrite_its_input(tmp_path, capsys):
    same = tmp_path / "same.jsonl"
    same.write_text('{"text": "hello"}\n')
    code, _, err = run(capsys, "embed", same, "-o", same)
    assert code == 2 and "the output would overwrite the input" in one_error_line(err)
    assert same.read_text() == '{"text": "hello"}\n'


@pytest.mark.parametrize(
    "argv",
    [
        ["eval", "sts", "--data", "x.jsonl", "--out", "o", "--limit", "0"],
        ["eval", "sts", "--data", "x.jsonl", "--out", "o", "--limit", "-5"],
        ["eval", "retrieval", "--data", "x", "--out", "o", "--corpus-limit", "-1"],
    ],
)
def test_counts_must_be_positive(capsys, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2 and "must be a positive integer" in capsys.readouterr().err


def test_input_edge_cases(tmp_path, capsys):
    bom = tmp_path / "bom.txt"
    bom.write_bytes("\ufeffhello\nworld\n".encode())
    assert list(read_texts(bom)) == [([0, 1], ["hello", "world"])]
    trailing = tmp_path / "trailing.jsonl"
    trailing.write_text('{"text": "a"}\n{"text": "b"}\n\n\n')
    assert list(read_texts(trailing)) == [([0, 1], ["a", "b"])]
    middle = tmp_path / "middle.jsonl"
    middle.write_text('{"text": "a"}\n\n{"text": "b"}\n')
    with pytest.raises(InputError, match=r"middle.jsonl:2: blank line"):
        list(read_texts(middle))
    with pytest.raises(InputError, match=r": is a folder, not a file"):
        list(read_texts(tmp_path))
    with pytest.raises(InputError, match=r"--field 'body' does not apply to .txt"):
        list(read_texts(bom, "body"))
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"text\nfine\n\xff\xfe bad\n")
    with pytest.raises(InputError, match=r"broken.csv: unreadable"):
        list(read_texts(broken))
    with_ids = tmp_path / "ids.jsonl"
    with_ids.write_text('{"id": "doc-7", "text": "a"}\n{"id": "doc-9", "text": "b"}\n')
    assert list(read_texts(with_ids)) == [(["doc-7", "doc-9"], ["a", "b"])]


def test_parquet_output_keeps_the_inputs_ids(tmp_path, capsys, tiny_model_dir):
    import pyarrow.parquet as pq

    source = tmp_path / "ids.jsonl"
    source.write_text('{"id": "doc-7", "text": "a"}\n{"id": "doc-9", "text": "b"}\n')
    code, _, err = run(capsys, "embed", source, "-o", tmp_path / "out.parquet", "--model", tiny_model_dir)
    assert code == 0, err
    assert pq.read_table(tmp_path / "out.parquet").column("id").to_pylist() == ["doc-7", "doc-9"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (
            '{"id": 3, "text": "a"}\n{"id": "doc-9", "text": "b"}\n',
            r":2: id 'doc-9' is a string, but line 1's is an int",
        ),
        ('{"id": "doc-7", "text": "a"}\n{"text": "b"}\n', r":2: id 1 is an int or none, but line 1's is a string"),
        ('{"id": [1], "text": "a"}\n', r":1: id \[1\] is list: use a string or an int"),
    ],
)
def test_ids_of_two_kinds_are_refused_before_the_model_loads(tmp_path, capsys, lines, message):
    source = tmp_path / "ids.jsonl"
    source.write_text(lines)
    missing_model = tmp_path / "no-model"  # were it loaded first, its error would come first
    code, _, err = run(capsys, "embed", source, "-o", tmp_path / "out.parquet", "--model", missing_model)
    assert code == 2 and re.search(message, err) and not (tmp_path / "out.parquet").exists(), err


# Outputs and signals


def test_outputs_follow_the_umask_and_keep_their_mode(tmp_path, capsys, tiny_model_dir):
    source = tmp_path / "in.txt"
    source.write_text("hello\n")
    old = os.umask(0o022)
    try:
        assert run(capsys, "embed", source, "-o", tmp_path / "new.npy", "--model", tiny_model_dir)[0] == 0
        kept = tmp_path / "kept.npy"
        kept.write_bytes(b"old")
        kept.chmod(0o640)
        assert run(capsys, "embed", source, "-o", kept, "--model", tiny_model_dir)[0] == 0
    finally:
        os.umask(old)
    assert (tmp_path / "new.npy").stat().st_mode & 0o777 == 0o644
    assert kept.stat().st_mode & 0o777 == 0o640 and np.load(kept).shape == (1, 64)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_keeps_the_old_output_and_leaves_no_partial_file(tmp_path, tiny_model_dir, signum, code):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(stsb_sentences(2000) * 10) + "\n")
    output = tmp_path / "out.npy"
    output.write_bytes(b"the previous output")
    process = subprocess.Popen(
        [*CLI, "embed", str(source), "-o", str(output), "--model", str(tiny_model_dir), "--batch-size", "2"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.npy.*.partial")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(tmp_path.glob(".out.npy.*.partial")), "the run never started writing"
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code
    assert one_error_line(err) == f"echo-embeddings: error: {'terminated' if code == 143 else 'interrupted'}"
    assert output.read_bytes() == b"the previous output"
    assert not list(tmp_path.glob(".out.npy.*"))


def test_a_killed_runs_partial_file_is_removed_by_the_next_run(tmp_path, capsys, tiny_model_dir):
    source = tmp_path / "in.txt"
    source.write_text("hello\n")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".out.npy.{int(dead.stdout)}.partial"  # as a SIGKILLed run leaves it
    stale.write_bytes(b"x" * 1000)
    assert run(capsys, "embed", source, "-o", tmp_path / "out.npy", "--model", tiny_model_dir)[0] == 0
    assert not stale.exists()


def test_output_locations_are_checked_before_any_work(tmp_path, capsys):
    blocked = tmp_path / "a-file"  # a folder cannot be made under a file, even by root (CI runs as root)
    blocked.write_text("")
    sts = tmp_path / "sts.jsonl"
    sts.write_text('{"sentence1": "a", "sentence2": "b", "score": 1}\n' * 3)
    # --model names no model: an error about the output (exit 2), not the model (exit 1), shows the order
    code, _, err = run(capsys, "eval", "sts", "--data", sts, "--out", blocked / "results", "--model", "/nonexistent")
    assert code == 2 and "cannot write there (" in one_error_line(err) and "is not a writable folder" in err
    code, _, err = run(capsys, "embed", sts, "-o", tmp_path / "out.txt", "--model", "/nonexistent")
    assert code == 2 and "unsupported output type '.txt'" in one_error_line(err)


# The CLI and noise


def test_version_help_and_unexpected_errors(capsys, tmp_path):
    assert main(["--version"]) == 0 and capsys.readouterr().out.startswith("echo-embeddings 0.")
    with pytest.raises(SystemExit) as exit_info:  # argparse's own action, where the option is not alone
        main(["--version", "embed"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.startswith("echo-embeddings 0.")
    assert main([]) == 2 and "usage: echo-embeddings" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": 5}\n')
    code, _, err = run(capsys, "embed", bad, "-o", tmp_path / "o.npy")
    assert code == 2 and one_error_line(err).endswith("bad.jsonl:1: field 'text' is int")
    assert issubclass(InputError, EchoEmbeddingsError) and issubclass(ModelError, EchoEmbeddingsError)


def test_truncation_warning_points_at_the_callers_line(tiny_encoder):
    short = tiny_encoder.with_settings(max_length=48)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        short.encode_queries(["word " * 200])
    (warning,) = [w for w in caught if w.category is TruncationWarning]
    assert warning.filename == __file__


def test_loading_prints_no_progress_bar_unless_asked(tiny_model_dir):
    code = f"from echo_embeddings import EchoEncoder; EchoEncoder.from_pretrained({str(tiny_model_dir)!r})"
    quiet = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 0 and "Loading weights" not in quiet.stderr and "LOAD REPORT" not in quiet.stderr
    loud = code.replace(")", ", show_progress=True)")
    shown = subprocess.run([sys.executable, "-c", loud], capture_output=True, text=True, timeout=120)
    assert "Loading weights" in shown.stderr


def test_manifest_is_written_last(tmp_path):
    converted = converted_gguf(bundled_base_gguf())
    manifest = json.loads((converted / MANIFEST).read_text())
    assert set(manifest) == {p.name for p in Path(converted).iterdir() if p.is_file() and p.name != MANIFEST}


# Since the newer settings (issue: wrong vectors that nothing reports)


def test_a_utf16_csv_is_named(tmp_path, capsys):
    source = tmp_path / "texts.csv"
    source.write_bytes("text\nhello\n".encode("utf-16"))
    code, _, err = run(capsys, "embed", source, "-o", tmp_path / "out.npy", "--model", "/not/loaded")
    assert code == 2 and f"{source}: not valid UTF-8 (invalid start byte at byte 0)" in one_error_line(err)


@pytest.mark.parametrize("score", ["NaN", "Infinity", "-Infinity"])
def test_eval_sts_refuses_a_score_that_is_not_finite(tmp_path, capsys, tiny_model_dir, score):
    path = tmp_path / "sts.jsonl"
    path.write_text(f'{{"sentence1": "a", "sentence2": "b", "score": 1}}\n{{"sentence1": "a", "sentence2": "c", '
                    f'"score": {score}}}\n')  # fmt: skip
    code, _, err = run(capsys, "eval", "sts", "--data", path, "--model", tiny_model_dir, "--out", tmp_path / "o")
    assert code == 2 and "sts.jsonl:2: field 'score' is" in err and "expected a finite number" in err


def test_eval_reads_binary_vectors_as_their_bits(tiny_encoder):
    from echo_embeddings.evaluation.arm import Arm

    texts = stsb_sentences(8)
    floats = tiny_encoder.encode(texts)
    signs = np.where(floats > 0, 1.0, -1.0)
    for precision in ("binary", "ubinary"):
        vectors = Arm(tiny_encoder.with_settings(precision=precision)).encode(texts)
        np.testing.assert_array_equal(vectors, signs)
    ranges = tiny_encoder.quantization_ranges(texts)
    int8 = Arm(tiny_encoder.with_settings(precision="int8", quantization_ranges=ranges)).encode(texts)
    uint8 = Arm(tiny_encoder.with_settings(precision="uint8", quantization_ranges=ranges)).encode(texts)
    np.testing.assert_allclose(uint8, int8, atol=1)  # uint8 centred reads as int8


def test_named_instructions_on_the_command_line(tmp_path, capsys, tiny_model_dir):
    from echo_embeddings import INSTRUCTIONS

    source = tmp_path / "in.txt"
    source.write_text("a claim about cells\n")
    common = ["--model", tiny_model_dir, "--device", "cpu", "--template", "echo-instruct", "--query"]
    assert run(capsys, "embed", source, "-o", tmp_path / "a.npy", *common, "--query-instruction", "scifact")[0] == 0
    assert run(capsys, "embed", source, "-o", tmp_path / "b.npy", *common, "--instruction", "scifact")[0] == 0
    encoder = EchoEncoder.from_pretrained(str(tiny_model_dir), device="cpu", template="echo-instruct")
    expected = encoder.encode(["a claim about cells"], query=True, instruction=INSTRUCTIONS["scifact"])
    for name in ("a.npy", "b.npy"):
        np.testing.assert_allclose(np.load(tmp_path / name), expected, atol=1e-5)
    with pytest.warns(UserWarning, match=r"'scifactt' names no instruction \(did you mean 'scifact'\?"):
        EchoEncoder.from_pretrained(str(tiny_model_dir), device="cpu", query_instruction="scifactt")


def test_a_device_type_torch_does_not_know_is_named(tiny_model_dir):
    with pytest.raises(ModelError, match=r"device 'npu' is not available here; devices: cpu"):
        EchoEncoder.from_pretrained(str(tiny_model_dir), device="npu")

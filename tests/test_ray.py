"""Ray Data corpus embedding on a local Ray: every row once, same vectors as one process, bad rows reported."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from echo_embeddings import EchoEncoder
from echo_embeddings.cli import main
from echo_embeddings.ray_data import embed_dataset, read_jsonl, split_errors

from .conftest import stsb_sentences

BAD_ROWS = {7, 500, 1999}


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    sentences = stsb_sentences(500)
    texts = [None if i in BAD_ROWS else sentences[i % len(sentences)] + f" #{i}" for i in range(2000)]
    path = tmp_path_factory.mktemp("corpus") / "corpus.parquet"
    pq.write_table(pa.table({"doc_id": [f"d{i}" for i in range(2000)], "text": texts}), path, row_group_size=300)
    return path, texts


def by_id(rows, column):
    return {row["doc_id"]: row[column] for row in rows}


def test_every_row_once_same_vectors_errors_listed(corpus, tiny_model_dir):
    path, texts = corpus
    # Two actors take both CPUs of this local Ray, so the rows come from memory rather than from read tasks, in
    # several blocks so that both actors get some.
    table = pq.read_table(path)
    blocks = [table.slice(start, 250) for start in range(0, table.num_rows, 250)]
    embedded = embed_dataset(
        ray.data.from_arrow(blocks), model_name=str(tiny_model_dir), device="cpu", concurrency=2
    ).materialize()
    good, bad = split_errors(embedded)
    good_rows, bad_rows = good.take_all(), bad.take_all()
    assert sorted(r["doc_id"] for r in bad_rows) == sorted(f"d{i}" for i in BAD_ROWS)
    assert all("missing" in r["error"] and set(r) == {"doc_id", "text", "error"} for r in bad_rows)
    ids = [r["doc_id"] for r in good_rows]
    assert len(ids) == len(set(ids)) == 2000 - len(BAD_ROWS)
    assert good.schema().base_schema.field("embedding").type == pa.list_(pa.float32(), 64)
    expected = EchoEncoder.from_pretrained(str(tiny_model_dir), device="cpu")
    good_index = [i for i in range(2000) if i not in BAD_ROWS]
    reference = expected.encode([texts[i] for i in good_index])
    vectors = by_id(good_rows, "embedding")
    got = np.array([vectors[f"d{i}"] for i in good_index], dtype=np.float32)
    cosine = (got * reference).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() >= 0.9999


def test_default_model_matches_one_process(default_encoder):
    texts = stsb_sentences(12)
    ds = ray.data.from_arrow(pa.table({"doc_id": [str(i) for i in range(12)], "text": texts}))
    good, bad = split_errors(embed_dataset(ds, num_cpus=2).materialize())  # one actor on both CPUs
    assert bad.count() == 0
    vectors = by_id(good.take_all(), "embedding")
    got = np.array([vectors[str(i)] for i in range(12)], dtype=np.float32)
    assert ((got * default_encoder.encode(texts)).sum(1) >= 0.9999).all()


def test_missing_column_is_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="no column 'body'"):
        embed_dataset(ray.data.from_items([{"text": "a"}]), text_column="body", model_name=str(tiny_model_dir))


def test_cli_parquet_and_jsonl(corpus, tiny_model_dir, tmp_path, capsys):
    path, _ = corpus
    out = tmp_path / "embedded"
    # Two actors take both CPUs of this local Ray: the command must still get its read tasks done.
    args = ["embed", str(path), "-o", str(out), "--ray", "--concurrency", "2"]
    code = main([*args, "--model", str(tiny_model_dir), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "2000 input rows = 1997 embedded" in captured.err and "+ 3 errors" in captured.err
    assert pq.read_table(out).num_rows == 1997
    assert sorted(pq.read_table(tmp_path / "embedded.errors").column("doc_id").to_pylist()) == ["d1999", "d500", "d7"]

    jsonl = tmp_path / "docs.jsonl"
    rows = [{"doc_id": "a", "text": "fine"}, {"doc_id": "b", "text": 3}, {"doc_id": "c"}, {"doc_id": "d", "text": "ok"}]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert [r["text"] for r in read_jsonl(str(jsonl)).take_all()] == ["fine", None, None, "ok"]
    out = tmp_path / "from_jsonl"
    code = main(["embed", str(jsonl), "-o", str(out), "--ray", "--model", str(tiny_model_dir), "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "4 input rows = 2 embedded" in captured.err
    assert sorted(pq.read_table(tmp_path / "from_jsonl.errors").column("doc_id").to_pylist()) == ["b", "c"]

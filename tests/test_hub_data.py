"""The sets by Hugging Face Hub id: written into the folder layout the evaluations and the recipe read.

The hub is out of reach here, so the loader is given ``datasets`` Datasets built from the fixtures, with the
columns the hub's copies have (MTEB's and sentence-transformers'); everything after the loader is the real path.
"""

import json

import pytest
from datasets import Dataset

from echo_embeddings.errors import InputError
from echo_embeddings.hub_data import resolve_data

from .conftest import DATA


def rows(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def qrels(split):
    lines = (DATA / "retrieval" / "scifact" / "qrels" / f"{split}.tsv").read_text().splitlines()[1:]
    return [dict(zip(("query-id", "corpus-id", "score"), line.split("\t"), strict=True)) for line in lines]


class Hub:
    """``datasets.load_dataset``'s signature over Datasets in the hub's columns; counts its calls."""

    def __init__(self):
        self.calls = 0
        sts = {s: rows(DATA / "sts" / f"stsb-{f}.jsonl") for s, f in (("train", "train"), ("validation", "dev"),
                                                                      ("test", "test"))}  # fmt: skip
        banking = {s: rows(DATA / "classification" / "banking77" / f"{s}.jsonl") for s in ("train", "test")}
        labels = sorted({r["label"] for r in banking["train"]})
        self.sets = {
            **{
                ("mteb/stsbenchmark-sts", None, s): [{"split": s, "genre": "x", **r} for r in v] for s, v in sts.items()
            },
            ("mteb/scifact", "corpus", "corpus"): rows(DATA / "retrieval" / "scifact" / "corpus.jsonl"),
            ("mteb/scifact", "queries", "queries"): [
                {"_id": r["_id"], "text": r["text"]} for r in rows(DATA / "retrieval" / "scifact" / "queries.jsonl")
            ],
            **{
                ("mteb/scifact", "default", s): [{**r, "score": float(r["score"])} for r in qrels(s)]
                for s in ("train", "test")
            },  # fmt: skip
            **{
                ("mteb/banking77", None, s): [
                    {"text": r["text"], "label": labels.index(r["label"]), "label_text": r["label"]} for r in v
                ]
                for s, v in banking.items()
            },  # fmt: skip
            ("sentence-transformers/all-nli", "triplet", "train"): rows(DATA / "nli" / "snli-train-triplets.jsonl"),
        }

    def __call__(self, path, name=None, *, split):
        self.calls += 1
        if (path, name, split) not in self.sets:
            raise ValueError(f"no {path} {name} {split}")
        return Dataset.from_list(self.sets[(path, name, split)])


def test_hub_ids_are_written_in_the_folder_layout(tmp_path):
    from echo_embeddings.evaluation.retrieval import load_qrels
    from echo_embeddings.training import recipe_rows

    hub = Hub()
    folder = resolve_data("hub", load=hub, cache=tmp_path)
    assert folder == tmp_path
    for relative in ("sts/stsb-test.jsonl", "sts/stsb-dev.jsonl", "nli/snli-train-triplets.jsonl"):
        assert rows(folder / relative) == rows(DATA / relative)
    assert rows(folder / "classification/banking77/train.jsonl") == rows(DATA / "classification/banking77/train.jsonl")
    scifact = folder / "retrieval" / "scifact"
    for split in ("train", "test"):
        assert load_qrels(scifact / "qrels" / f"{split}.tsv") == load_qrels(
            DATA / "retrieval/scifact/qrels" / f"{split}.tsv"
        )
    sizes = {"nli": 10, "stsb": 10, "scifact": 10, "banking77": 10, "stsb-scores": 10}
    assert recipe_rows(folder, rows=sizes) == recipe_rows(DATA, rows=sizes)
    calls = hub.calls
    assert (
        resolve_data("mteb/scifact", load=hub, cache=tmp_path) == scifact and hub.calls == calls
    )  # kept, not reloaded
    assert resolve_data(DATA, load=hub, cache=tmp_path) == DATA  # a path is read as it is


def test_a_failed_load_names_the_set_and_leaves_nothing(tmp_path):
    def offline(path, name=None, *, split):
        raise ConnectionError("no network")

    with pytest.raises(InputError, match="mteb/scifact: could not load it from the Hugging Face Hub"):
        resolve_data("mteb/scifact", load=offline, cache=tmp_path)
    assert not any(tmp_path.rglob("*.jsonl")) and not any(tmp_path.glob(".*.done"))

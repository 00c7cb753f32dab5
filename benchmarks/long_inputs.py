"""Long inputs on the default model: what the new read budget buys, what late chunking buys, and what length costs.

    python benchmarks/long_inputs.py [--data ../shared/data] [--out docs/results/long] [--sections ...]

Sections (each written to results.json as soon as it ends, so a cut run keeps what it measured):
- ``needle``: documents of three SciFact abstracts (about 1,000 tokens), the one relevant to a SciFact test claim at
  position 1, 2 or 3, the other two drawn by a fixed seed; one document per claim, the claims as queries; nDCG@10 by
  position for each template, at the new default (2,048 text tokens) and at the old ``max_length=512``.
- ``scifact``: SciFact test (50 queries, 151 abstracts, as the README's tables) at both settings: every abstract read
  whole against abstracts cut to the old budget.
- ``llamaindex``: long documents (six abstracts each) through ``SentenceSplitter``'s defaults into a
  ``VectorStoreIndex``; hit rate at 5 of the node holding the claim's abstract, with ``EchoEmbedding()`` as it is
  now, with the old ``max_length=512``, and with ``EchoLateChunking``.
- ``late``: the same 151 abstracts split into pieces of about 64 tokens, a piece relevant when it comes from a
  relevant abstract; each piece embedded alone against late chunking (one pass per abstract).
- ``peer``: the default model (trained) against all-MiniLM-L6-v2 (which reads 256 word pieces of a text): the
  needle documents (nDCG@10 by position) and the LlamaIndex pipeline (hit@5 through ``SentenceSplitter``'s 1,024-token
  nodes), each model alone through the same code.
- ``cost``: texts/s and peak memory of echo and classical at 64, 256, 1,024 and 2,048 text tokens, each arm in a
  process of its own (one run: compare within it).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from llama_index.core.base.embeddings.base import BaseEmbedding

from echo_embeddings import BASE_MODEL, EchoEncoder
from echo_embeddings.evaluation.arm import Arm
from echo_embeddings.evaluation.metrics import ndcg_at_k
from echo_embeddings.evaluation.retrieval import evaluate_retrieval, load_qrels
from echo_embeddings.files import read_records
from echo_embeddings.late_chunking import find_spans

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ("echo-categorize", "echo", "classical", "prompteol")
SETTINGS = {"default": {}, "max_length=512": {"max_length": 512}}
SECTIONS = ("cost", "needle", "scifact", "late", "llamaindex", "peer")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "long")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--queries", type=int, default=30, help="claims in the needle and LlamaIndex sections")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cost-arm", help=argparse.SUPPRESS)  # a cost arm, run in its own process
    args = parser.parse_args()
    if args.cost_arm:
        print(json.dumps(cost_arm(**json.loads(args.cost_arm))))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "results.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results.setdefault("runs", []).append(
        {"command": shlex.join(["python", "benchmarks/long_inputs.py", *sys.argv[1:]]), "sections": args.sections}
    )
    corpus = SciFact(args.data / "retrieval" / "scifact")
    encoder = EchoEncoder.from_pretrained(BASE_MODEL)  # the zero-shot reading: how the untrained model reads long texts
    for section in args.sections:
        start = time.perf_counter()
        print(f"{section} ...", file=sys.stderr, flush=True)
        if section == "cost":
            results[section] = cost()
        elif section == "needle":
            results[section] = needle(encoder, corpus, args.queries, args.seed)
        elif section == "scifact":
            results[section] = scifact(encoder, args.data / "retrieval" / "scifact")
        elif section == "late":
            results[section] = late(encoder, corpus)
        elif section == "peer":
            results[section] = peer(corpus, args.queries, args.seed)
        else:
            results[section] = llamaindex(corpus, args.queries, args.seed)
        results[section]["minutes"] = round((time.perf_counter() - start) / 60, 1)
        path.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results[section])[:2000], file=sys.stderr, flush=True)
    write_report(results, args.out)


class SciFact:
    """SciFact claims of a split (``only``: those of them) with their relevant abstracts, and the whole corpus, as
    ``title + " " + text``."""

    def __init__(self, folder: Path, split: str = "test", only: set[str] | None = None) -> None:
        qrels = load_qrels(folder / "qrels" / f"{split}.tsv")
        self.qrels = {q: docs for q, docs in qrels.items() if only is None or q in only}
        claims = read_records(folder / "queries.jsonl", {"_id": str, "text": str})
        self.claims = {r["_id"]: r["text"] for r in claims if r["_id"] in self.qrels}
        records = read_records(folder / "corpus.jsonl", {"_id": str, "text": str})
        self.docs = {r["_id"]: f"{r.get('title') or ''} {r['text']}".strip() for r in records}
        self.relevant = {doc for docs in self.qrels.values() for doc in docs}

    def sample(self, n: int, seed: int) -> tuple[list[str], list[str]]:
        """``n`` claims (with one relevant abstract each, in the corpus) and that abstract, drawn by ``seed``."""
        ids = sorted((q for q in self.claims if any(d in self.docs for d in self.qrels[q])), key=int)
        chosen = random.Random(seed).sample(ids, n)
        return chosen, [next(d for d in sorted(self.qrels[q]) if d in self.docs) for q in chosen]

    def others(self, n: int, rng: random.Random) -> list[str]:
        """``n`` abstracts relevant to none of the claims."""
        pool = sorted(d for d in self.docs if d not in self.relevant)
        return rng.sample(pool, n)


def needle_documents(corpus: SciFact, n: int, seed: int) -> tuple[list[str], dict[int, list[str]]]:
    """``n`` claims, and for each position 1-3 one document per claim: its relevant abstract at that position
    among two others (the same two at every position)."""
    claims, targets = corpus.sample(n, seed)
    rng = random.Random(seed + 1)
    fillers = [corpus.others(2, rng) for _ in claims]
    by_position = {}
    for position in (1, 2, 3):
        documents = []
        for target, (a, b) in zip(targets, fillers, strict=True):
            parts = [corpus.docs[a], corpus.docs[b]]
            parts.insert(position - 1, corpus.docs[target])
            documents.append("\n\n".join(parts))
        by_position[position] = documents
    return [corpus.claims[q] for q in claims], by_position


def needle_ndcg(queries: np.ndarray, documents: np.ndarray) -> float:
    """nDCG@10 x100 of each query's own document (query i's is document i) among all."""
    ranked = np.argsort(-(queries @ documents.T), axis=1, kind="stable")
    return 100 * float(np.mean([ndcg_at_k([str(j) for j in row], {str(i): 1}, 10) for i, row in enumerate(ranked)]))


def needle(encoder: EchoEncoder, corpus: SciFact, n: int, seed: int) -> dict:
    queries, by_position = needle_documents(corpus, n, seed)
    tokens = [len(ids) for ids in encoder.tokenizer(by_position[1], add_special_tokens=False)["input_ids"]]
    scores: dict[str, dict[str, list[float]]] = {}
    for documents in by_position.values():
        for template in TEMPLATES:
            for name, setting in SETTINGS.items():
                arm = encoder.with_settings(template=template, **setting)
                docs, stats = arm.encode_documents(documents, return_stats=True, show_progress=True)
                ndcg = needle_ndcg(arm.encode_queries(queries), docs)
                scores.setdefault(f"{template} | {name}", {}).setdefault("ndcg@10", []).append(ndcg)
                scores[f"{template} | {name}"].setdefault("tokens read", []).append(int(stats.read_tokens.mean()))
    return {
        "claims": n,
        "document tokens": {"mean": int(np.mean(tokens)), "min": min(tokens), "max": max(tokens)},
        "by position (1, 2, 3)": scores,
    }


def peer(corpus: SciFact, n: int, seed: int) -> dict:
    """The default model against all-MiniLM-L6-v2 on the needle's documents and through the LlamaIndex pipeline."""
    from peer import PEER, PeerEncoder

    from llamaindex_echo import EchoEmbedding

    default, minilm = EchoEncoder.from_pretrained(), PeerEncoder()
    queries, by_position = needle_documents(corpus, n, seed)
    needles = {"default": [], PEER: []}
    for documents in by_position.values():
        for name, encoder in (("default", default), (PEER, minilm)):
            docs = encoder.encode(documents, show_progress=True)
            needles[name].append(needle_ndcg(encoder.encode(queries, query=True), docs))
    claims, targets, documents, where = llamaindex_documents(corpus, n, seed)
    models = {"EchoEmbedding() (the default)": EchoEmbedding(), PEER: PeerEmbedding(encoder=minilm)}
    hits = {name: hit_rate(model, None, corpus, claims, targets, documents, where)[0] for name, model in models.items()}
    return {
        "claims": n,
        "needle ndcg@10 by position (1, 2, 3)": needles,
        "llamaindex hit@5": hits,
        "peer reads": f"{minilm.model.max_seq_length} word pieces of each text",
    }


class PeerEmbedding(BaseEmbedding):
    """all-MiniLM-L6-v2 as a LlamaIndex embedding model (queries and texts read alike)."""

    encoder: Any

    def _get_query_embedding(self, query: str) -> list[float]:
        return self.encoder.encode([query])[0].tolist()

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_query_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self.encoder.encode([text])[0].tolist()

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode(texts).tolist()


def scifact(encoder: EchoEncoder, folder: Path) -> dict:
    rows = {}
    for template in TEMPLATES:
        for name, setting in SETTINGS.items():
            arm = encoder.with_settings(template=template, **setting)
            result = evaluate_retrieval([Arm(arm)], folder, "test", 50, 100, 0)[0]
            rows[f"{template} | {name}"] = round(result.score, 1)
    cut = encoder.with_settings(template="echo", max_length=512)
    docs = list(SciFact(folder).docs.values())
    counts = [len(ids) for ids in encoder.tokenizer(docs, add_special_tokens=False)["input_ids"]]
    budget = cut.template_tokenizer.budget()
    return {
        "dataset": "scifact test, 50 queries / 151 abstracts",
        "ndcg@10": rows,
        "abstracts longer than the old echo budget": f"{sum(c > budget for c in counts)} of {len(counts)} "
        f"(budget {budget} tokens)",
    }


def late(encoder: EchoEncoder, corpus: SciFact) -> dict:
    from llama_index.core.node_parser import SentenceSplitter

    folder_queries = [q for q in corpus.claims if any(d in corpus.docs for d in corpus.qrels[q])]
    queries = sorted(folder_queries, key=int)[:50]
    relevant = {d for q in queries for d in corpus.qrels[q] if d in corpus.docs}
    others = sorted(d for d in corpus.docs if d not in relevant)
    doc_ids = sorted(relevant | set(random.Random(0).sample(others, 100)))
    splitter = SentenceSplitter(chunk_size=64, chunk_overlap=0)
    pieces = {d: splitter.split_text(corpus.docs[d]) for d in doc_ids}
    owners = [d for d in doc_ids for _ in pieces[d]]
    texts = [p for d in doc_ids for p in pieces[d]]
    scores = {}
    for template in ("echo-categorize", "echo", "classical"):
        arm = encoder.with_settings(template=template)
        alone = arm.encode_documents(texts, show_progress=True)
        spans = [find_spans(corpus.docs[d], pieces[d]) for d in doc_ids]
        lately = np.concatenate(arm.encode_chunks([corpus.docs[d] for d in doc_ids], spans, show_progress=True))
        query_vectors = arm.encode_queries([corpus.claims[q] for q in queries])
        for name, vectors in (("alone", alone), ("late chunking", lately)):
            ranked = np.argsort(-(query_vectors @ vectors.T), axis=1, kind="stable")[:, :10]
            ndcg = [
                ndcg_at_k([str(j) for j in row], {str(j): 1 for j, d in enumerate(owners) if d in corpus.qrels[q]}, 10)
                for row, q in zip(ranked, queries, strict=True)
            ]
            scores[f"{template} | {name}"] = round(100 * float(np.mean(ndcg)), 1)
    return {"queries": len(queries), "abstracts": len(doc_ids), "pieces": len(texts), "ndcg@10": scores}


def llamaindex_documents(corpus: SciFact, n: int, seed: int) -> tuple[list[str], list[str], list, dict]:
    """``n`` claims, their relevant abstracts, and long documents of six abstracts each (those and 3n others,
    shuffled), with where each abstract lies: ``abstract -> (document index, start character)``."""
    from llama_index.core import Document

    claims, targets = corpus.sample(n, seed)
    abstracts = targets + corpus.others(3 * n, random.Random(seed + 2))
    random.Random(seed + 3).shuffle(abstracts)
    documents, where = [], {}
    for start in range(0, len(abstracts), 6):
        text, group = "", abstracts[start : start + 6]
        for doc in group:
            where[doc] = (len(documents), len(text) + (2 if text else 0))
            text = f"{text}\n\n{corpus.docs[doc]}" if text else corpus.docs[doc]
        documents.append(Document(text=text, doc_id=f"doc-{len(documents)}"))
    return claims, targets, documents, where


def hit_rate(embed_model, mode, corpus: SciFact, claims, targets, documents, where) -> tuple[float, int]:
    """hit@5 x100 of the node holding each claim's abstract, through a VectorStoreIndex of ``documents`` split by
    SentenceSplitter's defaults (or late chunking, ``mode="late"``); and the number of nodes."""
    from llama_index.core import VectorStoreIndex
    from llama_index.core.node_parser import SentenceSplitter

    from llamaindex_echo import EchoLateChunking

    transformations = [EchoLateChunking(embed_model=embed_model)] if mode else [SentenceSplitter()]
    index = VectorStoreIndex.from_documents(
        documents, embed_model=embed_model, transformations=transformations, show_progress=True
    )
    retriever = index.as_retriever(similarity_top_k=5)
    found = []
    for claim, target in zip(claims, targets, strict=True):
        doc_index, start = where[target]
        end = start + len(corpus.docs[target])
        found.append(any(_holds(node.node, f"doc-{doc_index}", start, end) for node in retriever.retrieve(
            corpus.claims[claim])))  # fmt: skip
    return round(100 * float(np.mean(found)), 1), len(index.docstore.docs)


def llamaindex(corpus: SciFact, n: int, seed: int) -> dict:
    from llamaindex_echo import EchoEmbedding

    claims, targets, documents, where = llamaindex_documents(corpus, n, seed)
    zero_shot = EchoEmbedding(model_name=BASE_MODEL)  # the results were measured on the untrained model
    arms = {
        "EchoEmbedding() (now)": (zero_shot, None),
        "EchoEmbedding(max_length=512) (before)": (EchoEmbedding(model_name=BASE_MODEL, max_length=512), None),
        "EchoLateChunking": (zero_shot, "late"),
    }
    hits, nodes_count = {}, 0
    for name, (embed_model, mode) in arms.items():
        hits[name], nodes_count = hit_rate(embed_model, mode, corpus, claims, targets, documents, where)
    tokens = [len(ids) for ids in zero_shot.encoder.tokenizer([d.text for d in documents])["input_ids"]]
    return {
        "claims": n,
        "documents": len(documents),
        "document tokens (mean)": int(np.mean(tokens)),
        "nodes": nodes_count,
        "splitter": "SentenceSplitter() defaults (chunk_size 1024, overlap 200)",
        "hit@5": hits,
    }


def _holds(node, doc_id: str, start: int, end: int) -> bool:
    """Whether ``node`` (of document ``doc_id``) holds at least half of ``[start, end)``, or is half made of it."""
    if node.ref_doc_id != doc_id or node.start_char_idx is None:
        return False
    overlap = min(end, node.end_char_idx) - max(start, node.start_char_idx)
    return overlap >= min(end - start, node.end_char_idx - node.start_char_idx) / 2


def cost() -> dict:
    rows = []
    for tokens, count in ((64, 64), (256, 32), (1024, 8), (2048, 4)):
        for template in ("echo", "classical"):
            spec = json.dumps({"template": template, "tokens": tokens, "count": count})
            command = [sys.executable, __file__, "--cost-arm", spec]
            out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    for row in rows:
        classical = next(r for r in rows if r["tokens"] == row["tokens"] and r["template"] == "classical")
        row["time vs classical"] = round(classical["texts/s"] / row["texts/s"], 2)
    return {"rows": rows, "note": "each arm in a fresh process: peak RSS of the process, and its rise during encode"}


def cost_arm(template: str, tokens: int, count: int) -> dict:
    encoder = EchoEncoder.from_pretrained(template=template)
    source = " ".join(SciFact(ROOT.parent / "shared" / "data" / "retrieval" / "scifact").docs.values())
    ids = encoder.tokenizer(source[: 40 * tokens * count], add_special_tokens=False)["input_ids"]
    texts = [encoder.tokenizer.decode(ids[i * tokens : (i + 1) * tokens]) for i in range(count)]
    encoder.encode(texts[:1])  # warm: the prefix cache and the first pass's allocations
    before = _memory("VmRSS")
    start = time.perf_counter()
    _, stats = encoder.encode(texts, return_stats=True)
    seconds = time.perf_counter() - start
    return {
        "template": template,
        "tokens": tokens,
        "texts": count,
        "tokens read (mean)": int(stats.read_tokens.mean()),
        "texts/s": round(count / seconds, 3),
        "peak RSS MiB": round(_memory("VmHWM") / 1024),
        "rise during encode MiB": round((_memory("VmHWM") - before) / 1024),
    }


def _memory(field: str) -> int:
    """A ``/proc/self/status`` memory field in KiB."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+)", text, re.M).group(1))


def write_report(results: dict, out: Path) -> None:
    lines = ["# Long inputs (zero-shot: the untrained base model, CPU, fp32; the peer section: the default)", ""]
    runs = [f"- `{r['command']}`: {', '.join(r['sections'])}" + (f" ({r['note']})" if "note" in r else "")
            for r in results["runs"]]  # fmt: skip
    lines += ["Runs:", "", *runs, ""]
    if "needle" in results:
        section = results["needle"]
        title = (f"## Needle in a long document ({section['claims']} claims, documents of "
                 f"{section['document tokens']['mean']} tokens on average)")  # fmt: skip
        lines += [
            title,
            "",
            "| template, setting | position 1 | 2 | 3 | text tokens read |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, row in section["by position (1, 2, 3)"].items():
            cells = " | ".join(f"{v:.1f}" for v in row["ndcg@10"])
            lines.append(f"| {name.replace(' | ', ', ')} | {cells} | {row['tokens read'][0]} |")
        lines += ["", "![nDCG@10 by the relevant abstract's position](needle.png)", ""]
        plot_needle(section, out / "needle.png")
    for key, title in (("scifact", "SciFact test, every abstract whole"), ("late", "Late chunking")):
        if key in results:
            lines += [f"## {title}", "", "| arm | nDCG@10 |", "|---|---:|"]
            lines += [f"| {name.replace(' | ', ', ')} | {score} |" for name, score in results[key]["ndcg@10"].items()]
            lines += ["", ", ".join(f"{k}: {v}" for k, v in results[key].items() if k != "ndcg@10"), ""]
    if "llamaindex" in results:
        section = results["llamaindex"]
        lines += ["## LlamaIndex end to end", "", "| embedding | hit@5 |", "|---|---:|"]
        lines += [f"| {name} | {score} |" for name, score in section["hit@5"].items()]
        lines += ["", ", ".join(f"{k}: {v}" for k, v in section.items() if k != "hit@5"), ""]
    if "peer" in results:
        section = results["peer"]
        title = f"## Against all-MiniLM-L6-v2 ({section['claims']} claims; the peer reads {section['peer reads']})"
        lines += [title, "", "| model | needle, position 1 | 2 | 3 | LlamaIndex hit@5 |", "|---|---:|---:|---:|---:|"]
        for (name, row), hits in zip(section["needle ndcg@10 by position (1, 2, 3)"].items(),
                                     section["llamaindex hit@5"].values(), strict=True):  # fmt: skip
            lines.append(f"| {name} | {' | '.join(f'{v:.1f}' for v in row)} | {hits} |")
        lines.append("")
    if "cost" in results:
        rows = results["cost"]["rows"]
        lines += ["## Cost against length (one run)", "", "| template | text tokens | texts/s | time vs classical | "
                  "peak RSS MiB | rise during encode MiB |", "|---|---:|---:|---:|---:|---:|"]  # fmt: skip
        lines += [
            f"| {r['template']} | {r['tokens']} | {r['texts/s']} | {r['time vs classical']} | {r['peak RSS MiB']} | "
            f"{r['rise during encode MiB']} |"
            for r in rows
        ]
        lines.append("")
    (out / "results.md").write_text("\n".join(lines))


def plot_needle(section: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4))
    colors = dict(zip(TEMPLATES, ("C0", "C1", "C2", "C3"), strict=True))
    for name, row in section["by position (1, 2, 3)"].items():
        template, setting = name.split(" | ")
        ax.plot([1, 2, 3], row["ndcg@10"], marker="o", color=colors[template],
                linestyle="-" if setting == "default" else "--", label=name)  # fmt: skip
    ax.set_xticks([1, 2, 3])
    ax.set_xlabel("position of the relevant abstract in its document")
    ax.set_ylabel("nDCG@10")
    ax.set_title("Needle retrieval: new default (solid) vs max_length=512 (dashed)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

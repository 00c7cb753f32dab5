"""Long documents compared fairly: all-MiniLM-L6-v2 as its users run it beside the default model's readings.

    python benchmarks/long_peer.py [--data ../shared/data] [--out docs/results/long-peer] [--documents 100]

The peer runs as LangChain and LlamaIndex users run a 256-word-piece encoder on long documents: LlamaIndex's
``SentenceSplitter(chunk_size=256)`` with its usual overlap (a fifth of the chunk, as its 200-of-1,024 default), each
chunk embedded, a document scored by its best chunk. Its first-256-word-pieces reading (what a whole document gives
it) is shown for reference. The default model reads each document whole (one vector), its chunks alone, or its
chunks late-chunked (one pass over the document, each chunk pooled where the model has read all of it), each at
several node sizes, a document again scored by its best chunk.

Documents: ``--documents`` documents of three SciFact abstracts each (about 1,100 SmolLM2 tokens): the relevant
abstract of every SciFact test claim that has a single one (277 claims, 228 abstracts) and abstracts relevant to no
test claim, shuffled; every claim ranks every document. Scores: nDCG@10 of the claim's document by its abstract's
position (about 92 claims a cell, over all ``--documents`` documents), and hit@5 of the node: the claim's
abstract in one of the 5 best nodes of all documents, as a LlamaIndex retriever over these nodes returns them
(a node holds the abstract when it covers half of it or is half made of it). Seconds per reading: embedding the
documents on this machine, one reading at a time.

Writes results.json, results.md and needle.png to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from long_inputs import SciFact
from peer import PEER, PeerEncoder

from echo_embeddings import EchoEncoder
from echo_embeddings.evaluation.metrics import ndcg_at_k

ROOT = Path(__file__).resolve().parents[1]
PEER_NODE = 256
ALONE_NODES = (128, 256, 512)
LATE_NODES = (64, 128, 256, 512, 1024)
OVERLAP = 0.2
TOP_NODES = 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "results" / "long-peer")
    parser.add_argument("--documents", type=int, default=100, help="documents of three abstracts (at least 76)")
    parser.add_argument("--seed", type=int, default=0, help="draws the other abstracts and the order of all")
    parser.add_argument("--report", action="store_true", help="only rewrite results.md and the plot from results.json")
    args = parser.parse_args()
    if args.report:
        write_report(json.loads((args.out / "results.json").read_text()), args.out)
        return
    corpus = SciFact(args.data / "retrieval" / "scifact")
    claims, documents, where = build(corpus, args.documents, args.seed)
    results = {
        "command": shlex.join(["python", "benchmarks/long_peer.py", *sys.argv[1:]]),
        "machine": f"{_cpu()}, {_cores()} cores, float32",
        "documents": len(documents),
        "claims per position": {p: sum(where[c][3] == p for c in claims) for p in (1, 2, 3)},
        "seed": args.seed,
        "readings": {},
    }
    encoder = EchoEncoder.from_pretrained(device="cpu", dtype="float32")
    tokens = [len(ids) for ids in encoder.tokenizer(documents, add_special_tokens=False)["input_ids"]]
    results["document tokens"] = {"mean": int(np.mean(tokens)), "min": min(tokens), "max": max(tokens)}
    args.out.mkdir(parents=True, exist_ok=True)
    readings = results["readings"]

    def record(name: str, scores: dict) -> None:
        readings[name] = scores
        (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")  # a cut run keeps what it has
        print(name, scores, flush=True)

    peer = PeerEncoder()
    peer_queries = peer.encode([corpus.claims[c] for c in claims])
    start = time.perf_counter()
    whole = peer.encode(documents)
    record(f"{PEER}, first 256 word pieces", doc_scores(peer_queries, whole, list(range(len(documents))), claims,
                                                        where, time.perf_counter() - start))  # fmt: skip
    nodes = split(documents, PEER_NODE)
    start = time.perf_counter()
    vectors = peer.encode([documents[d][s:e] for d, s, e in nodes])
    record(f"{PEER}, chunks of {PEER_NODE} (best chunk)",
           chunk_scores(peer_queries, vectors, nodes, claims, where, time.perf_counter() - start))  # fmt: skip

    queries = encoder.encode_queries([corpus.claims[c] for c in claims])
    start = time.perf_counter()
    whole = encoder.encode_documents(documents, show_progress=True)
    record("default, whole document", doc_scores(queries, whole, list(range(len(documents))), claims, where,
                                                 time.perf_counter() - start))  # fmt: skip
    by_size = {size: split(documents, size) for size in LATE_NODES}
    start = time.perf_counter()  # one pass a document gives the chunk vectors of every node size
    spans = [[(s, e) for size in LATE_NODES for dd, s, e in by_size[size] if dd == d] for d in range(len(documents))]
    late = encoder.encode_chunks(documents, spans, show_progress=True)
    seconds = time.perf_counter() - start
    offsets = {d: 0 for d in range(len(documents))}
    for size in LATE_NODES:
        rows = []
        for d, _, _ in by_size[size]:
            rows.append(late[d][offsets[d]])
            offsets[d] += 1
        record(f"default, late-chunked chunks of {size} (best chunk)",
               chunk_scores(queries, np.stack(rows), by_size[size], claims, where, seconds))  # fmt: skip
    for size in ALONE_NODES:
        start = time.perf_counter()
        texts = [documents[d][s:e] for d, s, e in by_size[size]]
        vectors = encoder.encode_documents(texts, show_progress=True)
        record(f"default, chunks of {size} read alone (best chunk)",
               chunk_scores(queries, vectors, by_size[size], claims, where, time.perf_counter() - start))  # fmt: skip
    write_report(results, args.out)


def build(corpus: SciFact, n: int, seed: int) -> tuple[list[str], list[str], dict[str, tuple[int, int, int, int]]]:
    """The claims with a single relevant abstract, and ``n`` documents of three abstracts: every such claim's abstract
    (228 for the 277 SciFact test claims) and others relevant to no claim, shuffled by ``seed``;
    ``where[claim] = (document, start, end, position)`` of its abstract."""
    single = [q for q, docs in corpus.qrels.items() if q in corpus.claims and len(docs) == 1]
    claims = sorted((q for q in single if next(iter(corpus.qrels[q])) in corpus.docs), key=int)
    targets = sorted({next(iter(corpus.qrels[q])) for q in claims}, key=int)
    rng = random.Random(seed)
    abstracts = targets + corpus.others(3 * n - len(targets), rng)
    rng.shuffle(abstracts)
    documents, placed = [], {}
    for d in range(n):
        text = ""
        for position, abstract in enumerate(abstracts[3 * d : 3 * d + 3]):
            start = len(text) + (2 if text else 0)
            text = f"{text}\n\n{corpus.docs[abstract]}" if text else corpus.docs[abstract]
            placed[abstract] = (d, start, start + len(corpus.docs[abstract]), position + 1)
        documents.append(text)
    return claims, documents, {q: placed[next(iter(corpus.qrels[q]))] for q in claims}


def split(documents: list[str], size: int) -> list[tuple[int, int, int]]:
    """Every document's nodes as LlamaIndex's ``SentenceSplitter(chunk_size=size)`` makes them (overlap a fifth of
    the chunk): ``(document, start, end)`` characters."""
    from llama_index.core import Document
    from llama_index.core.node_parser import SentenceSplitter

    splitter = SentenceSplitter(chunk_size=size, chunk_overlap=int(size * OVERLAP))
    nodes = []
    for d, text in enumerate(documents):
        for node in splitter.get_nodes_from_documents([Document(text=text)]):
            if node.get_content().strip():
                nodes.append((d, node.start_char_idx, node.end_char_idx))
    return nodes


def doc_scores(queries, vectors, owners, claims, where, seconds) -> dict:
    """nDCG@10 by position with one vector per document (``owners[i]`` the document of row i)."""
    return chunk_scores(queries, vectors, [(d, 0, 0) for d in owners], claims, where, seconds, hits=False)


def chunk_scores(queries, vectors, nodes, claims, where, seconds, *, hits: bool = True) -> dict:
    """nDCG@10 by position (a document scored by its best node) and the nodes' hit@5."""
    similarity = queries @ vectors.T
    owners = np.array([d for d, _, _ in nodes])
    documents = int(owners.max()) + 1
    best = np.full((len(queries), documents), -np.inf, dtype=np.float32)
    for d in range(documents):
        best[:, d] = similarity[:, owners == d].max(axis=1)
    ranked = np.argsort(-best, axis=1, kind="stable")[:, :10]
    ndcg = {}
    for position in (1, 2, 3):
        rows = [i for i, c in enumerate(claims) if where[c][3] == position]
        values = [ndcg_at_k([str(j) for j in ranked[i]], {str(where[claims[i]][0]): 1}, 10) for i in rows]
        ndcg[str(position)] = round(100 * float(np.mean(values)), 1)
    scores = {"ndcg@10 by position": ndcg, "seconds": round(seconds, 1), "nodes": len(nodes)}
    if hits:
        top = np.argsort(-similarity, axis=1, kind="stable")[:, :TOP_NODES]
        found = [any(_holds(nodes[j], where[c]) for j in top[i]) for i, c in enumerate(claims)]
        scores["node hit@5"] = round(100 * float(np.mean(found)), 1)
    return scores


def _holds(node: tuple[int, int, int], abstract: tuple[int, int, int, int]) -> bool:
    """Whether the node covers half of the abstract or is half made of it (long_inputs.py's rule)."""
    d, start, end = node
    doc, a_start, a_end, _ = abstract
    if d != doc:
        return False
    overlap = min(end, a_end) - max(start, a_start)
    return overlap >= min(a_end - a_start, end - start) / 2


def _cpu() -> str:
    """This CPU's model name."""
    info = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines() if line.startswith("model name")]
    return names[0] if names else platform.machine()


def _cores() -> int:
    import os

    return len(os.sched_getaffinity(0))


def write_report(results: dict, out: Path) -> None:
    tokens, n = results["document tokens"], results["documents"]
    per = ", ".join(str(v) for v in results["claims per position"].values())
    claims = sum(results["claims per position"].values())
    lines = [
        "# Long documents, compared fairly",
        "",
        f"`{results['command']}` ({results['machine']}). {n} documents of three SciFact test abstracts "
        f"({tokens['mean']:,} SmolLM2 tokens on average, {tokens['min']:,}-{tokens['max']:,}), each abstract relevant "
        f"to no claim or to SciFact test claims with that one relevant abstract: {claims} claims ({per} by the "
        f"abstract's position 1, 2, 3), each ranking all {n} documents; seed {results['seed']}.",
        "",
        "| reading | nDCG@10, abstract 1st | 2nd | 3rd | node hit@5 | nodes | seconds |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results["readings"].items():
        ndcg = row["ndcg@10 by position"]
        hit = row.get("node hit@5", "")
        lines.append(
            f"| {name} | {ndcg['1']} | {ndcg['2']} | {ndcg['3']} | {hit} | {row['nodes']} | {row['seconds']} |"
        )
    lines += [
        "",
        "The late-chunked rows share one pass over each document, which gives every node size's chunk vectors (their "
        "seconds are that pass's). A document's score is its best node's cosine with the claim; node hit@5: the "
        "claim's abstract in one of the 5 best of all nodes, as a LlamaIndex retriever returns them.",
        "",
        "![nDCG@10 by the abstract's position](needle.png)",
        "",
    ]
    (out / "results.md").write_text("\n".join(lines))
    plot(results, out / "needle.png")


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["readings"])
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(names) + 1.5))
    for p, offset in zip(("1", "2", "3"), (-0.27, 0, 0.27), strict=True):
        values = [results["readings"][n]["ndcg@10 by position"][p] for n in names]
        ax.barh(np.arange(len(names)) + offset, values, height=0.26, label=f"abstract {p}")
    ax.set_yticks(np.arange(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("nDCG@10")
    ax.set_xlim(0, 100)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Long documents: the claim's abstract at each position")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

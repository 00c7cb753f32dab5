"""``echo-embeddings embed``: the texts of a file into a file of vectors, in one process or on Ray Data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import InputError, TextTooLongError
from ..instructions import INSTRUCTIONS, resolve_instruction
from . import report
from .options import SETTING_OPTIONS, encoder_from, model_options, positive_int, run_options

if TYPE_CHECKING:
    from ..encoder import EchoEncoder

VECTOR_KEYS = (
    "template", "pooling", "max_text_tokens", "max_length", "truncation", "normalize", "query_instruction",
    "document_instruction", "truncate_dim", "precision", "dtype",
)  # fmt: skip
"""The settings recorded with the output, beside the fingerprint."""


def register(commands: Any) -> None:
    """Add ``embed`` to the command line's subparsers."""
    embed = commands.add_parser(
        "embed",
        help="embed the texts of a file",
        description="Embed INPUT (.txt: a text per line; .jsonl; .csv; .parquet) into OUTPUT (.npy; .parquet with "
        "id + embedding; .jsonl). Row i of the output is row i of the input. The output appears only when complete.",
    )
    embed.add_argument("input", type=Path, help="input file")
    embed.add_argument("-o", "--output", type=Path, required=True, help="output file (.npy, .parquet or .jsonl)")
    embed.add_argument("--field", default="text", help="JSONL field or CSV/Parquet column with the text")
    embed.add_argument("--query", action="store_true", help="use the template's query form")
    embed.add_argument(
        "--instruction",
        default=None,
        type=resolve_instruction,
        help="instruction for this run's {instruction} slot, in place of --query-instruction or "
        f"--document-instruction: the text, or a name ({', '.join(INSTRUCTIONS)})",
    )
    model_options(embed)
    run_options(embed)
    embed.add_argument(
        "--quantization-ranges",
        type=Path,
        default=None,
        help="--precision int8/uint8: a JSON file of [minimums, maximums] per dimension "
        "(EchoEncoder.quantization_ranges of a sample of the corpus)",
    )
    distributed = embed.add_argument_group(
        "Ray", "with --ray, INPUT is a Parquet or JSONL file or folder and OUTPUT a folder of Parquet files"
    )
    distributed.add_argument("--ray", action="store_true", help="embed on Ray Data (pip install echo-embeddings[ray])")
    distributed.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    distributed.add_argument("--concurrency", type=positive_int, default=1, help="actors, each with its own model")
    distributed.add_argument("--num-gpus", type=float, default=0, help="GPUs per actor")
    distributed.add_argument("--num-cpus", type=float, default=1, help="CPUs per actor (its torch threads on CPU)")
    distributed.add_argument("--errors", type=Path, default=None, help="folder for bad rows (default: OUTPUT.errors)")
    embed.set_defaults(run=run)


def run(args: argparse.Namespace) -> None:
    """Embed ``args.input`` into ``args.output``: every row or, with ``--ray``, every good row and the bad apart."""
    if args.ray:
        return _run_on_ray(args)
    from ..files import EmbeddingWriter, check_output, count_rows, read_texts
    from ..progress import progress_bar

    check_output(args.output, args.input)  # where the output goes is checked before anything is read
    rows = count_rows(args.input, args.field)  # a bad row fails here, before the model loads or anything is written
    encoder = encoder_from(args, template=args.template)
    _check_lengths(encoder, args)
    metadata = {
        "fingerprint": encoder.fingerprint,
        "model": encoder.model_name,
        "form": "query" if args.query else "document",
        "instruction": args.instruction,
        "settings": encoder.config.model_dump(include=set(VECTOR_KEYS)),
    }
    with (
        EmbeddingWriter(args.output, rows, encoder.dim, metadata=metadata) as writer,
        progress_bar(rows, desc="Embedding", unit="text", disable=args.quiet) as bar,
    ):
        for ids, texts in read_texts(args.input, args.field):
            vectors = encoder.encode(texts, query=args.query, instruction=args.instruction, show_progress=bar)
            writer.write(ids, vectors)
    report(f"wrote {rows} embeddings of dimension {encoder.dim} to {args.output}")


def _check_lengths(encoder: EchoEncoder, args: argparse.Namespace) -> None:
    """With --truncation error, refuse a text longer than the encoder reads, by file and row, before any pass."""
    from ..files import read_texts

    if encoder.config.truncation != "error":
        return
    for ids, texts in read_texts(args.input, args.field):
        try:
            encoder.check_lengths(texts, query=args.query, instruction=args.instruction)
        except TextTooLongError as err:
            bound = encoder.template_tokenizer.binding_bound(query=args.query, instruction=args.instruction)
            raise InputError(
                f"{args.input}: row {ids[err.index]} has {err.tokens} tokens, more than the {err.limit} read "
                f"(--truncation error); {_remedy(bound)}"
            ) from None


def _remedy(bound: str) -> str:
    """What to do about a text too long for ``bound``, as ``TemplateTokenizer.binding_bound`` names it."""
    if bound == "positions":
        return "the model reads no more: choose --truncation windows, head or tail"
    return f"raise {SETTING_OPTIONS[bound]}, or choose another --truncation"


def _run_on_ray(args: argparse.Namespace) -> None:
    import ray

    from ..ray_data import embed_dataset, read_jsonl, split_errors

    source = str(args.input)
    is_parquet = args.input.suffix == ".parquet" or (args.input.is_dir() and any(args.input.glob("*.parquet")))
    is_jsonl = args.input.suffix == ".jsonl" or (args.input.is_dir() and any(args.input.glob("*.jsonl")))
    if not (is_parquet or is_jsonl):
        raise InputError(f"{args.input}: --ray reads Parquet or JSONL files, or folders of them")
    ray.init(address=args.address, log_to_driver=False, ignore_reinit_error=True)
    dataset = ray.data.read_parquet(source) if is_parquet else read_jsonl(source, args.field)
    # Read before the actors start: actors holding every CPU would leave none for read tasks, and Ray Data hangs
    # (ray-project/ray#44687). It also lets the final row count reuse these blocks instead of reading again.
    dataset = dataset.materialize()
    embedded = embed_dataset(
        dataset, text_column=args.field, query=args.query, concurrency=args.concurrency, num_gpus=args.num_gpus,
        num_cpus=args.num_cpus, **{name: getattr(args, name) for name in SETTING_OPTIONS},
    ).materialize()  # fmt: skip
    good, bad = split_errors(embedded)
    errors_path = args.errors or args.output.with_name(args.output.name + ".errors")
    good.write_parquet(str(args.output))
    bad.write_parquet(str(errors_path))
    rows, embedded_rows, error_rows = dataset.count(), good.count(), bad.count()
    report(f"{rows} input rows = {embedded_rows} embedded ({args.output}) + {error_rows} errors ({errors_path})")
    if embedded_rows + error_rows != rows:
        raise RuntimeError(f"rows do not reconcile: {rows} in, {embedded_rows} + {error_rows} out")

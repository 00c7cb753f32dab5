"""The ``echo-embeddings`` command: embed files, and evaluate templates on STS, retrieval and the toy triples."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
from dataclasses import asdict
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from . import BASE_MODEL, __version__
from .config import validated
from .errors import ConfigError, EchoEmbeddingsError, MissingDependencyError, TextTooLongError, TrainingDataError
from .extras import missing_dependency
from .files import InputError

EXIT_USAGE, EXIT_FAILURE, EXIT_INTERRUPTED, EXIT_TERMINATED = 2, 1, 130, 143
"""Exit codes: 2 for what the user gave (arguments, settings, input files), 1 for a failure at run time, 130 and 143
for SIGINT and SIGTERM (after cleaning up)."""

DEBUG_ENV = "ECHO_EMBEDDINGS_DEBUG"


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every ``with`` block (temporary outputs) cleans up."""


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = _parser()
    if not argv:
        parser.print_help()
        return EXIT_USAGE
    args = parser.parse_args(argv)
    args.command_line = shlex.join(["echo-embeddings", *argv])
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        args.run(args)
    except (InputError, ConfigError, TrainingDataError, TextTooLongError) as err:
        return _fail(err, EXIT_USAGE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    except _Terminated:
        return _fail("terminated", EXIT_TERMINATED)
    except Exception as err:
        if os.environ.get(DEBUG_ENV):
            raise
        missing = missing_dependency(err) if isinstance(err, ModuleNotFoundError) else None
        if missing is not None or isinstance(err, MissingDependencyError):
            return _fail(missing or err, EXIT_USAGE)
        known = isinstance(err, (EchoEmbeddingsError, OSError, ValueError))
        return _fail(err if known else f"{type(err).__name__}: {err} (set {DEBUG_ENV}=1 for a traceback)", EXIT_FAILURE)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _fail(error: object, code: int) -> int:
    print(f"echo-embeddings: error: {error}", file=sys.stderr)
    return code


def _raise_terminated(signum: int, frame: Any) -> None:
    raise _Terminated


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="echo-embeddings",
        description="Echo embeddings from any causal LM: embed files and evaluate templates.",
    )
    parser.add_argument("--version", action="version", version=f"echo-embeddings {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

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
    embed.add_argument("--instruction", default=None, help="instruction for the template's {instruction} slot")
    _model_options(embed, single_template=True)
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
    distributed.add_argument("--concurrency", type=_positive_int, default=1, help="actors, each with its own model")
    distributed.add_argument("--num-gpus", type=float, default=0, help="GPUs per actor")
    distributed.add_argument("--num-cpus", type=float, default=1, help="CPUs per actor (its torch threads on CPU)")
    distributed.add_argument("--errors", type=Path, default=None, help="folder for bad rows (default: OUTPUT.errors)")
    embed.set_defaults(run=_embed)

    evaluate = commands.add_parser("eval", help="evaluate templates", description="Evaluate templates.")
    tasks = evaluate.add_subparsers(dest="task", required=True)
    sts = tasks.add_parser(
        "sts",
        help="STS: Spearman of cosine similarity x100",
        description="STS JSONL files with sentence1, sentence2, score; Spearman of cosine similarity x100.",
    )
    sts.add_argument(
        "--data", type=Path, action="append", required=True,
        help="STS JSONL file, or mteb/stsbenchmark-sts from the Hugging Face Hub (repeatable)",
    )  # fmt: skip
    sts.add_argument("--limit", type=_positive_int, default=None, help="use the first N pairs of each file")
    sts.set_defaults(run=_eval)
    retrieval = tasks.add_parser(
        "retrieval",
        help="BEIR retrieval: nDCG@10 and Recall@100 x100",
        description="A BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv). With --corpus-limit N, the corpus "
        "is every document relevant to the evaluated queries plus N others drawn with --seed (deterministic).",
    )
    retrieval.add_argument("--data", type=Path, required=True, help="BEIR dataset folder, or mteb/scifact (Hub)")
    retrieval.add_argument("--split", default="test", help="qrels split (default: test)")
    retrieval.add_argument("--limit", type=_positive_int, default=None, help="evaluate the first N judged queries")
    retrieval.add_argument(
        "--corpus-limit", type=_positive_int, default=None, help="sub-corpus: relevant docs + N others"
    )
    retrieval.add_argument("--seed", type=int, default=0, help="seed for the sub-corpus draw")
    retrieval.set_defaults(run=_eval)
    toy = tasks.add_parser(
        "toy",
        help="the paper's Section 3 triples",
        description="JSONL triples q, s+, s-, structure: accuracy of cos(q, s+) > cos(q, s-) per structure.",
    )
    toy.add_argument("--data", type=Path, required=True, help="triples JSONL file")
    toy.set_defaults(run=_eval)
    for task in (sts, retrieval, toy):
        _model_options(task, single_template=False)
        task.add_argument("--out", type=Path, required=True, help="folder for results.json, .md and .png")
        task.add_argument(
            "--compute-matched",
            action="store_true",
            help="also run each echo template on the first half of each text's tokens (same tokens as classical)",
        )
    ablations = tasks.add_parser(
        "ablations",
        help="the paper's ablations and echo + summary-token candidates, in one run",
        description="On one model: prompt sensitivity (8 echo, classical and PromptEOL wordings), 1-4 copies x "
        "pooled copy, the bidirectional baseline, the toy triples, and echo + summary-token candidates chosen on "
        "development data then scored on the test sets; --other-model adds echo/classical/PromptEOL test scores of "
        "more models. DATA: the evaluation data folder (sts/, retrieval/scifact/, classification/banking77/).",
    )
    ablations.add_argument(
        "--data",
        type=Path,
        required=True,
        help="evaluation data folder, or 'hub' for the sets from the Hugging Face Hub",
    )
    ablations.add_argument("--toy", type=Path, required=True, help="toy triples JSONL file")
    from .config import EchoConfig

    for name in ("model_name", "device"):
        kwargs = _option(name, EchoConfig.model_fields[name])
        if name == "model_name":  # the paper's ablations read untrained models
            kwargs.update(default=BASE_MODEL, help=f"the model, read zero-shot. Default: {BASE_MODEL}")
        ablations.add_argument(SETTING_OPTIONS[name], **kwargs)
    ablations.add_argument("--other-model", action="append", default=[], help="another model to compare (repeatable)")
    ablations.add_argument("--out", type=Path, required=True, help="folder for results.json, .md and the plots")
    from .evaluation.ablations import SECTIONS, Sizes

    ablations.add_argument(
        "--sections",
        nargs="+",
        choices=SECTIONS,
        default=list(SECTIONS),
        help="run only these (default: all); the others keep their rows from OUT/results.json, which must hold an "
        "earlier run of the same model and sizes",
    )

    for name, default in asdict(Sizes()).items():
        ablations.add_argument(
            "--" + name.replace("_", "-"), type=_positive_int, default=default, help=f"default: {default}"
        )
    ablations.set_defaults(run=_ablations)

    train = commands.add_parser(
        "train",
        help="fine-tune a model contrastively (the paper's recipe)",
        description="Fine-tune with InfoNCE over in-batch and hard negatives, and CoSENT on graded pairs (LoRA by "
        "default), and save one model folder that every surface loads by path. DATA: .jsonl/.csv/.parquet files "
        "with anchor, positive, optional negative (or negative_1, ...), instruction and score (a graded pair) "
        "columns; or --recipe with the project's data folder.",
    )
    train.add_argument("data", type=Path, nargs="*", help="training files")
    train.add_argument("-o", "--output", type=Path, required=True, help="folder for the trained model")
    train.add_argument(
        "--recipe",
        type=Path,
        default=None,
        help="build the documented mix from this data folder, or 'hub' for the sets from the Hugging Face Hub",
    )
    train.add_argument(
        "--recipe-rows",
        action="append",
        default=[],
        metavar="SOURCE=N",
        help="rows drawn from one recipe source, e.g. nli=600 or stsb-scores=1600 (an unknown source's error lists "
        "them); repeatable",
    )
    _model_options(train, single_template=True, defaults={"model_name": f"{BASE_MODEL} (untrained)"})
    from .training.config import TrainingConfig

    _config_options(train, TrainingConfig, "training")
    train.set_defaults(run=_train)

    distill = commands.add_parser(
        "distill",
        help="distill a fine-tuned echo model into a student that reads each text once",
        description="Train a student (the classical template by default, starting from the teacher's weights) to "
        "reproduce the teacher's embeddings of unlabeled texts (MSE), and save one model folder: echo's quality at "
        "classical's inference cost. TEXTS: .txt (a text per line), .jsonl, .csv or .parquet files.",
    )
    distill.add_argument("texts", type=Path, nargs="+", help="files of unlabeled texts")
    distill.add_argument("--field", default="text", help="JSONL field or CSV/Parquet column with the text")
    distill.add_argument("--teacher", required=True, help="the fine-tuned echo model folder (or name)")
    distill.add_argument("-o", "--output", type=Path, required=True, help="folder for the student")
    student_defaults = {"model_name": "the teacher", "template": "classical", "pooling": "mean"}
    _model_options(distill, single_template=True, defaults=student_defaults)
    _config_options(distill, TrainingConfig, "training")
    distill.set_defaults(run=_distill)

    serve = commands.add_parser(
        "serve",
        help="serve OpenAI-compatible embeddings over HTTP",
        description="Serve POST /v1/embeddings in OpenAI's format (plus input_type/instruction, and model "
        "'<name>:query' for the query form), GET /v1/models, /health and Prometheus /metrics, with dynamic "
        "batching of concurrent requests. SIGINT/SIGTERM finish in-flight requests, then exit.",
    )
    _model_options(serve, single_template=True)
    from .server_config import ServerConfig

    _config_options(serve, ServerConfig, "server")
    serve.set_defaults(run=_serve)
    return parser


# The settings recorded with embed's output, beside the fingerprint.
VECTOR_KEYS = (
    "template", "pooling", "max_text_tokens", "max_length", "truncation", "normalize", "query_instruction",
    "document_instruction", "truncate_dim", "precision", "dtype",
)  # fmt: skip

# The EchoConfig settings every model-using command offers, under their option names. Type, choices, help and
# default come from the config's own field, so an option never disagrees with the setting it sets.
SETTING_OPTIONS = {
    "model_name": "--model",
    "template": "--template",
    "pooling": "--pooling",
    "batch_size": "--batch-size",
    "max_text_tokens": "--max-text-tokens",
    "max_length": "--max-length",
    "truncation": "--truncation",
    "truncate_dim": "--truncate-dim",
    "precision": "--precision",
    "device": "--device",
    "dtype": "--dtype",
}


def _model_options(
    parser: argparse.ArgumentParser, single_template: bool, defaults: dict[str, str] | None = None
) -> None:
    """The SETTING_OPTIONS; ``defaults`` names the command's own defaults where they are not the settings'."""
    from .config import EchoConfig

    for name, option in SETTING_OPTIONS.items():
        kwargs = _option(name, EchoConfig.model_fields[name])
        if defaults and name in defaults:
            kwargs["help"] = f"{EchoConfig.model_fields[name].description} Default: {defaults[name]}"
        if name == "template" and not single_template:
            kwargs.update(action="append", help=kwargs["help"] + ". Repeatable.")
        parser.add_argument(option, **kwargs)


def _config_options(parser: argparse.ArgumentParser, config: type, title: str) -> None:
    """An option per field of the pydantic ``config``: ``--field-name``, its type, description and default."""
    group = parser.add_argument_group(title)
    for name, field in config.model_fields.items():
        group.add_argument("--" + name.replace("_", "-"), **_option(name, field))


def _option(name: str, field: Any) -> dict[str, Any]:
    """argparse keywords for a pydantic field: its type or choices, its description and default (None when not
    given, so the setting's own default applies)."""
    kwargs: dict[str, Any] = {"dest": name, "default": None, "help": f"{field.description} Default: {field.default}"}
    kind = _option_type(field.annotation)
    choices = [c for arg in get_args(field.annotation) if get_origin(arg) is Literal for c in get_args(arg)]
    if choices:
        kwargs["choices"] = choices
    elif kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif kind is list:
        kwargs["nargs"] = "+"
        if _list_item_type(field.annotation) is int:
            kwargs["type"] = int
    elif kind in (int, float):
        kwargs["type"] = kind
    return kwargs


def _option_type(annotation: Any) -> Any:
    """The plain type behind a field's annotation: ``StrictInt | None`` -> int, ``list[str] | None`` -> list."""
    kind = _declared_type(annotation)
    return get_origin(kind) or kind


def _list_item_type(annotation: Any) -> Any:
    """The item type of a list field: ``list[StrictInt] | None`` -> int."""
    return _option_type(get_args(_declared_type(annotation))[0])


def _declared_type(annotation: Any) -> Any:
    """A field's annotation without ``| None`` and ``Annotated``: ``StrictInt | None`` -> int."""
    kinds = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    kind = next(arg for arg in kinds if arg is not type(None))
    return get_args(kind)[0] if get_origin(kind) is Annotated else kind


def _training_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The model and training options given on the command line (the others keep their settings' defaults)."""
    from .training import TrainingConfig

    names = [*SETTING_OPTIONS, *TrainingConfig.model_fields]
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def _train(args: argparse.Namespace) -> None:
    from .training import recipe_rows, train
    from .training.recipe import RECIPE_TEMPLATE

    if bool(args.data) == bool(args.recipe):
        raise InputError("give training files or --recipe DATA_FOLDER (one of the two)")
    settings = _training_settings(args)
    data = args.data
    if args.recipe:
        from .hub_data import resolve_data

        args.recipe = resolve_data(args.recipe)
        rows = dict(_count(item) for item in args.recipe_rows)
        data = recipe_rows(args.recipe, rows=rows, seed=settings.get("seed", 0))
        settings.setdefault("eval_data", str(args.recipe / "sts" / "stsb-dev.jsonl"))
        settings.setdefault("template", RECIPE_TEMPLATE)
    train(data, output_dir=args.output, **settings)
    print(f"saved the trained model to {args.output}", file=sys.stderr)


def _distill(args: argparse.Namespace) -> None:
    from .files import read_texts
    from .training import distill

    texts = []
    for path in args.texts:
        for ids, chunk in read_texts(path, args.field):
            for row, text in zip(ids, chunk, strict=True):
                if not text.strip():
                    where = f"{path}:{row + 1}" if path.suffix in (".txt", ".jsonl") else f"{path}: row {row}"
                    raise InputError(f"{where}: a blank text; distillation learns from texts")
                texts.append(text)
    distill(texts, teacher=args.teacher, output_dir=args.output, **_training_settings(args))
    print(f"saved the student to {args.output}", file=sys.stderr)


def _serve(args: argparse.Namespace) -> None:
    from .server_config import API_KEY_ENV, ServerConfig

    settings = {name: getattr(args, name) for name in ServerConfig.model_fields if getattr(args, name) is not None}
    settings.setdefault("api_key", os.environ.get(API_KEY_ENV) or None)
    config = validated(ServerConfig, **settings)
    from .server import bind, serve

    sock = bind(config)  # a busy port or a bad host fails here, before the model loads
    encoder = _encoder(args, args.template)
    key = "an API key" if config.api_key else "no API key"
    print(f"serving {encoder.model_name} at http://{config.host}:{config.port}/v1 ({key})", file=sys.stderr, flush=True)
    try:
        serve(encoder, config, sock)
    except (_Terminated, KeyboardInterrupt):  # uvicorn re-raises the signal once in-flight requests are done
        print("echo-embeddings: stopped", file=sys.stderr)


def _count(item: str) -> tuple[str, int]:
    name, _, count = item.partition("=")
    if not count.isdigit():
        raise InputError(f"--recipe-rows {item!r}: expected SOURCE=N, e.g. stsb=500")
    return name, int(count)


def _encoder(args: argparse.Namespace, template: str | None):
    from .encoder import EchoEncoder

    settings = {name: getattr(args, name) for name in SETTING_OPTIONS}
    ranges = getattr(args, "quantization_ranges", None)
    if ranges is not None:
        try:
            settings["quantization_ranges"] = json.loads(ranges.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(f"{ranges}: cannot read quantization ranges ({err})") from None
    return EchoEncoder.from_pretrained(**{**settings, "template": template})


def _embed(args: argparse.Namespace) -> None:
    if args.ray:
        return _embed_on_ray(args)
    from tqdm.auto import tqdm

    from .files import EmbeddingWriter, check_output, count_rows, read_texts

    check_output(args.output, args.input)  # where the output goes is checked before anything is read
    rows = count_rows(args.input, args.field)  # a bad row fails here, before the model loads or anything is written
    encoder = _encoder(args, args.template)
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
        tqdm(total=rows, unit="text", disable=not sys.stderr.isatty()) as bar,
    ):
        for ids, texts in read_texts(args.input, args.field):
            vectors = encoder.encode(texts, query=args.query, instruction=args.instruction, show_progress=bar)
            writer.write(ids, vectors)
    print(f"wrote {rows} embeddings of dimension {encoder.dim} to {args.output}", file=sys.stderr)


def _check_lengths(encoder: Any, args: argparse.Namespace) -> None:
    """With --truncation error, refuse a text longer than the encoder reads, by file and row, before any pass."""
    from .files import read_texts

    if encoder.config.truncation != "error":
        return
    for ids, texts in read_texts(args.input, args.field):
        try:
            encoder.check_lengths(texts, query=args.query, instruction=args.instruction)
        except TextTooLongError as err:
            raise InputError(
                f"{args.input}: row {ids[err.index]} has {err.tokens} tokens, more than the {err.limit} read "
                "(--truncation error); raise --max-text-tokens, or choose another --truncation"
            ) from None


def _embed_on_ray(args: argparse.Namespace) -> None:
    import ray

    from .ray import embed_dataset, read_jsonl, split_errors

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
    print(f"{rows} input rows = {embedded_rows} embedded ({args.output}) + {error_rows} errors ({errors_path})")
    if embedded_rows + error_rows != rows:
        raise RuntimeError(f"rows do not reconcile: {rows} in, {embedded_rows} + {error_rows} out")


def _eval(args: argparse.Namespace) -> None:
    from .files import check_output_folder

    check_output_folder(args.out)  # before minutes of computing, not after
    from .evaluation.arm import Arm
    from .hub_data import resolve_data

    args.data = [resolve_data(d) for d in args.data] if isinstance(args.data, list) else resolve_data(args.data)
    from .evaluation.report import markdown_table, write_report

    show_progress = sys.stderr.isatty()
    arms = []
    for template in args.template or [None]:
        encoder = _encoder(args, template)  # every template shares the one loaded model
        arms.append(Arm(encoder))
        if args.compute_matched and encoder.template.document.count("text") > 1:
            arms.append(Arm(encoder, compute_matched=True))
    if args.task == "sts":
        from .evaluation.sts import evaluate_sts

        results = [r for path in args.data for r in evaluate_sts(arms, path, args.limit, show_progress)]
    elif args.task == "retrieval":
        from .evaluation.retrieval import evaluate_retrieval

        results = evaluate_retrieval(
            arms, args.data, args.split, args.limit, args.corpus_limit, args.seed, show_progress
        )
    else:
        from .evaluation.toy import evaluate_toy

        results = evaluate_toy(arms, args.data)
    model = arms[0].encoder.model_name
    write_report(args.out, model, results, args.command_line)
    print(markdown_table(model, results, args.command_line))


def _ablations(args: argparse.Namespace) -> None:
    from .evaluation.ablations import SECTIONS, Sizes, run_ablations
    from .evaluation.ablations_report import write_ablations
    from .files import check_output_folder

    check_output_folder(args.out)  # before an hour of computing, not after
    from .hub_data import resolve_data

    args.data = resolve_data(args.data)
    sizes = Sizes(**{name: getattr(args, name) for name in asdict(Sizes())})
    earlier = None
    if set(args.sections) != set(SECTIONS):
        previous = args.out / "results.json"
        if not previous.is_file():
            raise ConfigError(f"--sections {' '.join(args.sections)} updates {previous}, which does not exist: "
                             "run every section first")  # fmt: skip
        earlier = json.loads(previous.read_text(encoding="utf-8"))
    results = run_ablations(
        args.model_name, data=args.data, triples=args.toy, sizes=sizes, other_models=args.other_model,
        device=args.device, sections=args.sections, earlier=earlier,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
    )  # fmt: skip
    write_ablations(args.out, results, args.command_line)
    print(f"wrote {args.out / 'results.md'}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

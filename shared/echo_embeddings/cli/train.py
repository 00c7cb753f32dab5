"""``echo-embeddings train`` and ``distill``: fine-tune a model contrastively, or distill one into a one-copy
student; each saves one model folder that every surface loads by path."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..shipped import BASE_MODEL
from ..training.config import TrainingConfig
from . import report
from .options import INFERENCE_ONLY, SETTING_OPTIONS, apply_threads, config_options, given, model_options, run_options


def register(commands: Any) -> None:
    """Add ``train`` and ``distill`` to the command line's subparsers."""
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
    model_options(
        train,
        defaults={"model_name": f"{BASE_MODEL} (untrained)", "template": "echo-categorize; echo with --recipe"},
        helps={
            "batch_size": "Texts per forward pass while mining hard negatives, and the saved model's setting (the "
            "training batch is --train-batch-size)."
        },  # fmt: skip
        leave_out=INFERENCE_ONLY,
    )
    config_options(train, TrainingConfig, "training")
    run_options(train, quiet=False)
    train.set_defaults(run=run_train)

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
    model_options(
        distill,
        defaults={"model_name": "the teacher", "template": "classical", "pooling": "mean"},
        helps={"batch_size": "The saved student's texts per forward pass (the training batch is --train-batch-size)."},
        leave_out=INFERENCE_ONLY,
    )
    config_options(distill, TrainingConfig, "training")
    run_options(distill, quiet=False)
    distill.set_defaults(run=run_distill)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """The model and training options given on the command line."""
    return given(args, [*SETTING_OPTIONS, *TrainingConfig.model_fields])


def run_train(args: argparse.Namespace) -> None:
    """Fine-tune on the files given, or on the recipe's mix, and save the model to ``--output``."""
    from ..instructions import GENERAL_INSTRUCTION
    from ..training import recipe_rows, train
    from ..training.recipe import RECIPE_TEMPLATE

    if bool(args.data) == bool(args.recipe):
        raise InputError("give training files or --recipe DATA_FOLDER (one of the two)")
    apply_threads(args)
    settings = _settings(args)
    data = args.data
    if args.recipe:
        from ..hub_data import resolve_data

        recipe = resolve_data(args.recipe)
        rows = dict(_count(item) for item in args.recipe_rows)
        data = recipe_rows(recipe, rows=rows, seed=settings.get("seed", 0))
        settings.setdefault("eval_data", str(recipe / "sts" / "stsb-dev.jsonl"))
        settings.setdefault("template", RECIPE_TEMPLATE)
        settings.setdefault("query_instruction", GENERAL_INSTRUCTION)  # what the model's queries carry unless told
    train(data, output_dir=args.output, **settings)
    report(f"saved the trained model to {args.output}")


def run_distill(args: argparse.Namespace) -> None:
    """Distill ``--teacher`` into a student on the texts of the files given, saved to ``--output``."""
    from ..files import read_texts
    from ..training import distill

    apply_threads(args)
    texts = []
    for path in args.texts:
        for ids, chunk in read_texts(path, args.field):
            for row, text in zip(ids, chunk, strict=True):
                if not text.strip():
                    where = f"{path}:{row + 1}" if path.suffix in (".txt", ".jsonl") else f"{path}: row {row}"
                    raise InputError(f"{where}: a blank text; distillation learns from texts")
                texts.append(text)
    distill(texts, teacher=args.teacher, output_dir=args.output, **_settings(args))
    report(f"saved the student to {args.output}")


def _count(item: str) -> tuple[str, int]:
    name, _, count = item.partition("=")
    if not count.isdigit():
        raise InputError(f"--recipe-rows {item!r}: expected SOURCE=N, e.g. stsb=500")
    return name, int(count)

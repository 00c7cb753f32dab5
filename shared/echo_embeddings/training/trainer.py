"""``train``: contrastive fine-tuning of an echo model on sentence-transformers' trainer, saved as one model folder.

The paper's recipe (Springer et al., Section 4): a template and pooling (echo with mean pooling, echo-instruct with
the EOS token pooled, or classical as the baseline, all through the same code), InfoNCE with in-batch and hard
negatives at temperature 1/50 (``MultipleNegativesRankingLoss(scale=50)``, or its gradient-cached variant for large
batches), LoRA r=16/alpha=16 through peft, no duplicate texts within a batch, and rows grouped so that a batch
shares one instruction. Graded pairs (rows with a ``score``, such as STS-B train) train with ``CoSENTLoss``
instead, in batches of their own (beyond the paper; the README's fine-tuning results measure it).

The result is a sentence-transformers folder whose root is also a plain transformers model with its
``echo_config.json``: ``EchoEncoder.from_pretrained(folder)``, both adapters, ``load_sentence_transformer(folder)``
and ``SentenceTransformer(folder, trust_remote_code=True)`` all read it with no settings repeated. LoRA weights
are merged into the saved model, so loading it needs neither peft nor the base model, and it runs as fast as the
base. ``folder/checkpoints`` holds what ``resume`` needs (the trainable weights, optimizer and data order) and
``folder/training_log.json`` the losses and dev scores by step.

Training that outgrows one machine runs as sentence-transformers training does: ``torchrun --nproc_per_node N``
or ``accelerate launch`` on a script that calls [train][].
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from sentence_transformers import SentenceTransformerTrainer
from transformers import TrainerCallback

from ..config import EchoConfig, validated
from ..errors import ConfigError, TrainingError
from ..extras import TRAIN_MODULES, require
from ..files import follow_umask
from ..shipped import BASE_MODEL
from ..tokenization import TruncationWarning
from .config import TrainingConfig
from .data import TrainingRow, group_rows, read_training_rows

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict
    from peft import PeftModel
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator
    from transformers import PreTrainedModel

    from ..st import EchoSentenceTransformer

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
ROWS_FILE = "training_rows.jsonl"
"""The rows trained on, hard negatives included, so that ``resume`` trains on the same data without mining again."""
TRAINABLE_FILE = "trainable.safetensors"
LOG_FILE = "training_log.json"
TRAINED_KEYS = {"matryoshka_dims"}
"""Training options that are also model settings: trained for here, then written into the saved folder."""


def train(
    data: Sequence[str | os.PathLike] | Sequence[TrainingRow],
    *,
    output_dir: str | os.PathLike,
    callbacks: Sequence[TrainerCallback] = (),
    **settings: Any,
) -> EchoSentenceTransformer:
    """Fine-tune and save to ``output_dir``; returns the trained ``SentenceTransformer``.

    ``data`` is training files (``.jsonl``/``.csv``/``.parquet``, see ``echo_embeddings.training.data``) or rows.
    ``settings`` are [EchoConfig][echo_embeddings.config.EchoConfig] fields (``model_name``, ``template``, ``pooling``,
    ``max_length``, ``device``, ``dtype``, ...; ``model_name`` defaults to the untrained
    [BASE_MODEL][echo_embeddings.BASE_MODEL]) and [TrainingConfig][] fields (``steps``,
    ``train_batch_size``, ``lora``, ``hard_negatives``, ``eval_data``, ``resume``, ``seed``, ...). Every
    setting and every row is checked before the model loads. ``callbacks`` are transformers ``TrainerCallback``s.
    """
    model_settings = {k: v for k, v in settings.items() if k in EchoConfig.model_fields and k not in TRAINED_KEYS}
    if model_settings.get("model_name") is None:
        model_settings["model_name"] = BASE_MODEL  # the recipe starts from the untrained model
    options = validated(TrainingConfig, **{k: v for k, v in settings.items() if k not in model_settings})
    EchoConfig.create(**model_settings)  # fail on a bad model setting before anything loads
    require(TRAIN_MODULES, "train")  # before any row is read or folder made
    output_dir = Path(output_dir)
    checkpoints = output_dir / CHECKPOINTS
    check_output(output_dir, options.resume)
    if options.resume:
        rows = read_training_rows([checkpoints / ROWS_FILE])
    else:
        rows = list(data) if data and isinstance(data[0], TrainingRow) else read_training_rows(data)  # type: ignore[arg-type]
    preflight(rows, options, output_dir)

    from transformers import set_seed

    from ..st import sentence_transformer

    set_seed(options.seed)
    model = sentence_transformer(**model_settings)
    transformer = model.echo_transformer
    if options.lora:
        check_lora_targets(transformer.auto_model, options)
    dim = transformer.get_embedding_dimension()
    if options.matryoshka_dims and not all(0 < d <= dim for d in options.matryoshka_dims):
        raise ConfigError(f"matryoshka_dims: each must be from 1 to the model's {dim}, got {options.matryoshka_dims}")
    if not options.resume:
        rows = _with_hard_negatives(rows, model, options)
        checkpoints.mkdir(parents=True, exist_ok=True)
        _write_rows(rows, checkpoints / ROWS_FILE)
    if options.lora:
        transformer.replace_model(with_lora(transformer.auto_model, options))
    trainer = _trainer(model, rows, options, checkpoints, callbacks)
    trainer.train(resume_from_checkpoint=_latest_checkpoint(checkpoints) if options.resume else None)  # None: step 0
    if options.matryoshka_dims:  # the sizes the server may cut its vectors to
        transformer.echo_config = transformer.echo_config.replace(matryoshka_dims=sorted(options.matryoshka_dims))
    instructions = {row.instruction for row in rows} - {None}
    if len(instructions) == 1 and transformer.echo_config.query_instruction is None:
        # The one instruction the queries were trained with becomes the folder's default for queries.
        transformer.echo_config = transformer.echo_config.replace(query_instruction=instructions.pop())
    save_trained(model, trainer, options, output_dir, {"settings": settings, "rows": len(rows)})
    return model


def save_trained(
    model: EchoSentenceTransformer,
    trainer: SentenceTransformerTrainer,
    options: TrainingConfig,
    output_dir: Path,
    about: dict[str, Any],
) -> None:
    """Merge LoRA adapters into the weights, save the servable folder, and write its training log (``about``
    plus the options and the trainer's log)."""
    transformer = model.echo_transformer
    if options.lora:
        # peft's PeftModel forwards merge_and_unload to its LoraModel, which gives the model it wrapped back.
        transformer.replace_model(transformer.auto_model.merge_and_unload())  # type: ignore[operator]
    model.eval()
    model.save(str(output_dir))
    log = {**about, "training": options.model_dump(), "log": trainer.state.log_history}
    (output_dir / LOG_FILE).write_text(json.dumps(log, indent=2, default=str) + "\n", encoding="utf-8")
    follow_umask(output_dir)  # checkpoints and weights written 0600 by safetensors


def check_output(output_dir: Path, resume: bool) -> None:
    """Refuse a folder that holds a trained model, or a run with checkpoints unless resuming it.

    A run stopped before its first checkpoint (interrupted, or failed after mining) left nothing to resume: the same
    command starts it again, and so does ``resume`` when the run's rows are kept.
    """
    checkpoints = output_dir / CHECKPOINTS
    if (output_dir / "modules.json").exists():
        raise ConfigError(f"{output_dir} already holds a trained model; choose another folder")
    latest = _latest_checkpoint(checkpoints)
    if resume:
        if latest is None and not (checkpoints / ROWS_FILE).is_file():
            raise ConfigError(f"resume: no training run to resume in {output_dir}")
    elif latest is not None:
        raise ConfigError(
            f"{output_dir} holds a training run stopped at {Path(latest).name}: --resume continues it, or choose "
            "another folder"
        )
    elif checkpoints.exists():
        logger.warning("%s: a run stopped before its first checkpoint; starting it again", output_dir)
        shutil.rmtree(checkpoints)


def preflight(rows: list[TrainingRow], options: TrainingConfig, output_dir: Path) -> None:
    """What can be checked before the model loads: the rows fill a batch, the evaluation data parses, and the
    output folder can be made (created here; a run that fails leaves it empty or restartable)."""
    if len(rows) < options.train_batch_size:
        raise ConfigError(
            f"{len(rows)} training rows do not fill one batch of train_batch_size={options.train_batch_size}: "
            "give more rows or a smaller batch"
        )
    if options.eval_data:
        from ..evaluation.sts import load_sts

        load_sts(Path(options.eval_data), options.eval_pairs)  # a missing or foreign file fails here, by name
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
        probe = output_dir / ".echo-write-check"
        probe.touch()
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"output folder {output_dir}: cannot write there ({err.strerror or err})") from None


def check_lora_targets(model: torch.nn.Module, options: TrainingConfig) -> None:
    """Every ``lora_target_modules`` name ends some module's name (as peft matches them), before mining."""
    if not options.lora_target_modules:
        return
    names = [name for name, _ in model.named_modules()]
    missing = [t for t in options.lora_target_modules if not any(n == t or n.endswith("." + t) for n in names)]
    if missing:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)})
        raise ConfigError(f"lora_target_modules: {missing} match no module of the model; its linear layers: {linear}")


def _with_hard_negatives(
    rows: list[TrainingRow], model: EchoSentenceTransformer, options: TrainingConfig
) -> list[TrainingRow]:
    if not options.hard_negatives or all(row.negatives or row.score is not None for row in rows):
        return rows
    from .mining import mine_negatives

    if options.mining_model is not None:
        from ..st import sentence_transformer

        model = sentence_transformer(options.mining_model, device=str(model.echo_transformer.auto_model.device))
    transformer = model.echo_transformer
    config = transformer.echo_config
    transformer.echo_config = config.replace(max_length=options.mining_max_length)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", TruncationWarning)  # cut on purpose (mining_max_length)
            rows, unmatched = mine_negatives(
                rows, model, count=options.hard_negatives, margin=options.mining_margin, batch_size=config.batch_size
            )
    finally:
        transformer.echo_config = config
    logger.info(
        "hard negatives: %d mined per row by %s; %d row(s) had none within the margin",
        options.hard_negatives,
        options.mining_model or "the model before training",
        unmatched,
    )
    return rows


def with_lora(model: PreTrainedModel | PeftModel, options: TrainingConfig) -> PeftModel:
    """``model`` wrapped by peft with the options' LoRA adapters."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=options.lora_r,
        lora_alpha=options.lora_alpha,
        lora_dropout=options.lora_dropout,
        target_modules=options.lora_target_modules or "all-linear",
    )
    return get_peft_model(model, config)


def _datasets(rows: list[TrainingRow]) -> tuple[Any, set[str], dict[str, dict[str, str]], dict[str, dict[str, str]]]:
    """A DatasetDict with one dataset per row group, the names of the graded groups, and the per-dataset prompts
    and query/document routing."""
    from datasets import Dataset, DatasetDict

    datasets, graded, prompts, routes = {}, set(), {}, {}
    logger.info("training groups (a batch is drawn from one group):")
    for i, ((instruction, negatives, scored), group) in enumerate(group_rows(rows)):
        name = f"group{i}"
        kind = "graded pairs (CoSENT)" if scored else f"{negatives} negative(s) each"
        logger.info("  %s: %d rows, %s, instruction: %r", name, len(group), kind, instruction)
        columns: dict[str, list[str | float | None]] = {
            "anchor": [r.anchor for r in group],
            "positive": [r.positive for r in group],
        }
        for k in range(negatives):
            columns[f"negative_{k + 1}"] = [r.negatives[k] for r in group]
        if scored:
            columns["score"] = [r.score for r in group]  # sentence-transformers reads a "score" column as the label
            graded.add(name)
        datasets[name] = Dataset.from_dict(columns)
        if instruction is not None:  # asymmetric: the anchor is a query with this instruction
            prompts[name] = {"anchor": instruction}
            routes[name] = {"anchor": "query"}
    return DatasetDict(datasets), graded, prompts, routes


def _trainer(
    model: EchoSentenceTransformer,
    rows: list[TrainingRow],
    options: TrainingConfig,
    checkpoints: Path,
    callbacks: Sequence[TrainerCallback],
) -> SentenceTransformerTrainer:
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        CoSENTLoss,
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )
    from sentence_transformers.sentence_transformer.training_args import BatchSamplers

    datasets, graded, prompts, routes = _datasets(rows)
    loss: torch.nn.Module
    if options.mini_batch_size is None:
        loss = MultipleNegativesRankingLoss(model, scale=options.scale)
    else:
        loss = CachedMultipleNegativesRankingLoss(model, scale=options.scale, mini_batch_size=options.mini_batch_size)
    cosent: torch.nn.Module | None = CoSENTLoss(model) if graded else None  # at its own default scale, 20
    if options.matryoshka_dims:  # every loss at each prefix size as well as the full one
        dims = sorted({model.echo_transformer.get_embedding_dimension(), *options.matryoshka_dims}, reverse=True)
        loss = MatryoshkaLoss(model, loss, matryoshka_dims=dims)
        cosent = MatryoshkaLoss(model, cosent, matryoshka_dims=dims) if cosent else None
    losses: torch.nn.Module | dict[str, torch.nn.Module] = loss
    if cosent is not None:  # a loss per dataset: CoSENT for graded pairs, InfoNCE for the rest
        losses = {name: cosent if name in graded else loss for name in datasets}
    arguments = {
        "batch_sampler": BatchSamplers.NO_DUPLICATES,
        "dataloader_drop_last": True,  # a short last batch would have fewer in-batch negatives
        "prompts": prompts or None,
        "router_mapping": routes,
    }
    return checkpoint_trainer(model, datasets, losses, options, checkpoints, callbacks, **arguments)


def checkpoint_trainer(
    model: EchoSentenceTransformer,
    dataset: Dataset | DatasetDict,
    loss: torch.nn.Module | dict[str, torch.nn.Module],
    options: TrainingConfig,
    checkpoints: Path,
    callbacks: Sequence[TrainerCallback],
    **arguments: Any,
) -> SentenceTransformerTrainer:
    """The sentence-transformers trainer for ``options``: steps, batch, learning rate, seed, STS evaluation,
    checkpoints of the trainable weights, and ``train_max_length``; ``arguments`` add to or replace its training
    arguments."""
    from sentence_transformers import SentenceTransformerTrainingArguments

    evaluator = _sts_evaluator(options) if options.eval_data else None
    device = model.echo_transformer.auto_model.device
    defaults = {
        "output_dir": str(checkpoints),
        "max_steps": options.steps or -1,
        "num_train_epochs": 1,
        "per_device_train_batch_size": options.train_batch_size,
        "learning_rate": options.learning_rate,
        "warmup_steps": options.warmup_ratio,
        "lr_scheduler_type": "linear",
        "eval_strategy": "steps" if evaluator else "no",
        "eval_steps": options.eval_steps,
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": options.save_steps,
        "save_total_limit": 2,
        "seed": options.seed,
        "data_seed": options.seed,
        "use_cpu": device.type == "cpu",
        "bf16": model.echo_transformer.auto_model.dtype == torch.bfloat16,
        "report_to": "none",
    }
    args = SentenceTransformerTrainingArguments(**{**defaults, **arguments})
    trainer = _CheckpointTrainer(
        model=model,
        args=args,
        train_dataset=dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=[_StopOnNonFiniteLoss(), *callbacks],
    )
    trainer.data_collator.max_length = options.train_max_length  # passed to EchoTransformer.preprocess
    return trainer


def _sts_evaluator(options: TrainingConfig) -> EmbeddingSimilarityEvaluator:
    from sentence_transformers.sentence_transformer.evaluation import EmbeddingSimilarityEvaluator

    from ..evaluation.sts import load_sts

    first, second, scores = load_sts(Path(options.eval_data), options.eval_pairs)  # type: ignore[arg-type]
    return EmbeddingSimilarityEvaluator(first, second, [s / 5 for s in scores], name="sts-dev")


def _latest_checkpoint(checkpoints: Path) -> str | None:
    found = [p for p in checkpoints.glob("checkpoint-*") if (p / TRAINABLE_FILE).is_file()]
    return str(max(found, key=lambda p: int(p.name.split("-")[1]))) if found else None


def _write_rows(rows: list[TrainingRow], path: Path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            record = {
                "anchor": row.anchor,
                "positive": row.positive,
                "instruction": row.instruction,
                "score": row.score,
            }
            record.update({f"negative_{k + 1}": text for k, text in enumerate(row.negatives)})
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


class _StopOnNonFiniteLoss(TrainerCallback):
    """Stops training with a [TrainingError][] at the first logged loss or gradient norm that is not a finite
    number (both logged every step), before anything is saved: a diverged model would otherwise be saved as if
    trained (a non-finite gradient makes every weight NaN while the loss can still read 0)."""

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        for name in ("loss", "grad_norm"):
            value = (logs or {}).get(name)
            if value is not None and not math.isfinite(value):
                raise TrainingError(
                    f"the training {name.replace('_', ' ')} became {value} at step {state.global_step} (peak "
                    f"learning rate {args.learning_rate:g}); nothing was saved: lower the learning rate, or train "
                    "in float32"
                )


class _CheckpointTrainer(SentenceTransformerTrainer):
    """Checkpoints hold the trainable weights (LoRA adapters, or every weight), enough to resume; the servable
    model is saved once, merged, when training ends."""

    def _save(self, output_dir: str | None = None, state_dict: Any = None) -> None:
        from safetensors.torch import save_file
        from transformers.trainer import TRAINING_ARGS_NAME

        folder = output_dir or self.args.output_dir
        assert folder is not None  # checkpoint_trainer sets output_dir
        os.makedirs(folder, exist_ok=True)
        trainable = {n: p.detach().cpu().contiguous() for n, p in self.model.named_parameters() if p.requires_grad}
        save_file(trainable, os.path.join(folder, TRAINABLE_FILE))
        torch.save(self.args, os.path.join(folder, TRAINING_ARGS_NAME))

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Any = None) -> None:
        from safetensors.torch import load_file

        state = load_file(os.path.join(resume_from_checkpoint, TRAINABLE_FILE))
        unexpected = self.model.load_state_dict(state, strict=False).unexpected_keys
        if unexpected:
            raise ConfigError(f"{resume_from_checkpoint} does not match this model: unexpected {unexpected[:3]}")

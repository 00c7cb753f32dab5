"""``distill``: echo's quality at classical's cost.

Echo reads every text twice, so it costs about 2.5x the tokens of the classical template at inference. A student
that reads each text once (the classical template by default) learns to reproduce a fine-tuned echo teacher's
embeddings of unlabeled texts: sentence-transformers' ``MSELoss`` against the teacher's vectors, computed once
before training. The student starts from the teacher's own weights unless ``model_name`` says otherwise, and is
saved as one model folder like [train][echo_embeddings.training.train]'s.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import EchoConfig, validated
from ..errors import ConfigError
from ..extras import TRAIN_MODULES, require
from .config import TrainingConfig
from .trainer import CHECKPOINTS, check_output, checkpoint_trainer, save_trained, with_lora

if TYPE_CHECKING:
    from transformers import TrainerCallback

    from ..st import EchoSentenceTransformer

CONTRASTIVE_ONLY = frozenset({"mini_batch_size", "scale", "hard_negatives", "mining_margin", "mining_model"})
"""TrainingConfig fields of the contrastive loss, which distillation does not use (nor ``save_steps``)."""


def distill(
    texts: Sequence[str],
    *,
    teacher: str | os.PathLike,
    output_dir: str | os.PathLike,
    callbacks: Sequence[TrainerCallback] = (),
    **settings: Any,
) -> EchoSentenceTransformer:
    """Train a student to embed ``texts`` as ``teacher`` does, save it to ``output_dir`` and return it.

    ``teacher`` is a model folder or name that [EchoEncoder.from_pretrained][] loads with its own settings.
    ``settings`` are the student's [EchoConfig][echo_embeddings.config.EchoConfig] fields (``model_name`` defaults
    to the teacher, ``template`` to ``classical``, ``pooling`` to ``mean``) and [TrainingConfig][] fields
    (``steps``, ``train_batch_size``, ``learning_rate``, ``lora``, ``eval_data``, ``seed``, ...). The texts are
    embedded in the document form. Settings of the contrastive loss, and ``resume``, are refused.
    """
    student = {"model_name": str(teacher), "template": "classical", "pooling": "mean"}
    student.update({k: v for k, v in settings.items() if k in EchoConfig.model_fields})
    options = validated(TrainingConfig, **{k: v for k, v in settings.items() if k not in EchoConfig.model_fields})
    unused = sorted(options.model_fields_set & (CONTRASTIVE_ONLY | {"save_steps"}))
    if unused:
        raise ConfigError(f"{', '.join(unused)}: not used by distillation (no contrastive loss, no checkpoints)")
    if options.resume:
        raise ConfigError("resume: distillation does not keep its teacher's vectors between runs; start again")
    EchoConfig.create(**student)  # fail on a bad student setting before the teacher loads
    require(TRAIN_MODULES, "train")
    output_dir = Path(output_dir)
    check_output(output_dir, resume=False)
    texts = list(texts)
    if not texts:
        raise ConfigError("distill: no texts to learn from")
    blank = next((i for i, text in enumerate(texts) if not isinstance(text, str) or not text.strip()), None)
    if blank is not None:
        raise ConfigError(f"distill: texts[{blank}] is {texts[blank]!r:.40}, not a text to learn from")

    from datasets import Dataset
    from sentence_transformers.sentence_transformer.losses import MSELoss
    from transformers import set_seed

    from ..encoder import EchoEncoder
    from ..st import sentence_transformer

    teacher_encoder = EchoEncoder.from_pretrained(
        str(teacher), device=student.get("device"), dtype=student.get("dtype")
    )
    targets = teacher_encoder.encode(texts, show_progress=True)
    set_seed(options.seed)
    model = sentence_transformer(**student)
    if options.lora:
        model.echo_transformer.replace_model(with_lora(model.echo_transformer.auto_model, options))
    dataset = Dataset.from_dict({"text": texts, "label": targets.tolist()})
    checkpoints = output_dir / CHECKPOINTS
    # No checkpoints: without the teacher's vectors they could not resume anything.
    trainer = checkpoint_trainer(model, dataset, MSELoss(model), options, checkpoints, callbacks, save_strategy="no")
    trainer.train()
    about = {"teacher": str(teacher), "settings": settings, "texts": len(texts)}
    save_trained(model, trainer, options, output_dir, about)
    return model

"""TrainingConfig: every fine-tuning option, declared once (default, validation, description).

The model side (model, template, pooling, max_length, ...) is [EchoConfig][echo_embeddings.config.EchoConfig]; this is
how it is trained. The defaults are the paper's recipe where it has one (LoRA r=16, alpha=16, InfoNCE at
temperature 1/50 with in-batch and hard negatives), sized for a CPU where it does not.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, model_validator

LORA_LEARNING_RATE = 8e-4
FULL_LEARNING_RATE = 5e-5


class TrainingConfig(BaseModel):
    """How to fine-tune: steps, batch, loss, LoRA, hard negatives, evaluation and checkpoints."""

    model_config = ConfigDict(extra="forbid")

    steps: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Optimizer steps, at most (None: one pass over the data). A group of rows whose texts repeat can "
        "fill fewer duplicate-free batches than it has rows for, and the trainer then ends its passes early.",
    )
    train_batch_size: StrictInt = Field(
        default=16, ge=2, description="Rows per step; each row's positive is every other row's in-batch negative."
    )
    mini_batch_size: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Gradient caching (CachedMultipleNegativesRankingLoss): forward/backward this many rows at a "
        "time, so train_batch_size can exceed memory. None: plain MultipleNegativesRankingLoss.",
    )
    train_max_length: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Tokens per training sequence, longer texts cut (cheaper steps on long documents); None: the "
        "model's max_length. The saved model keeps max_length.",
    )
    learning_rate: float | None = Field(
        default=None,
        gt=0,
        allow_inf_nan=False,
        description=f"Peak learning rate, linear warmup and decay. None: {LORA_LEARNING_RATE:g} with LoRA, "
        f"{FULL_LEARNING_RATE:g} when every weight trains.",
    )
    warmup_ratio: float = Field(default=0.1, ge=0, lt=1, description="Fraction of the steps spent warming up.")
    scale: float = Field(default=50.0, gt=0, description="Similarity scale of the InfoNCE loss: 1/temperature.")
    lora: StrictBool = Field(default=True, description="Train LoRA adapters (merged at the end); False: every weight.")
    lora_r: StrictInt = Field(default=16, ge=1, description="LoRA rank.")
    lora_alpha: StrictInt = Field(default=16, ge=1, description="LoRA alpha (scaling alpha/r).")
    lora_dropout: float = Field(default=0.05, ge=0, lt=1, description="Dropout on the LoRA path.")
    lora_target_modules: list[str] | None = Field(
        default=None, description="Module names to adapt (e.g. q_proj v_proj); None: every linear layer."
    )
    matryoshka_dims: list[StrictInt] | None = Field(
        default=None,
        description="Also train each loss on the vectors' first N dimensions for each N here (MatryoshkaLoss), so "
        "that truncate_dim to these sizes keeps most of the quality; saved as the folder's matryoshka_dims.",
    )
    hard_negatives: StrictInt = Field(
        default=1,
        ge=0,
        description="Negatives mined per row that has none, by the model before training or mining_model (0: none).",
    )
    mining_model: str | None = Field(
        default=None,
        description="The model that mines the hard negatives (a name or folder, read with its own settings, e.g. a "
        "trained one for a second round); None: the model being trained, before training.",
    )
    mining_max_length: StrictInt | None = Field(
        default=512,
        ge=1,
        description="Tokens per whole sequence when mining hard negatives (long documents cut: the untrained model "
        "only ranks candidates, and reading them whole costs several times more); None: the model's max_length.",
    )
    mining_margin: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="A mined negative must score this fraction below the row's positive (skips near-duplicates).",
    )
    eval_data: str | None = Field(default=None, description="STS JSONL file scored (Spearman) during training.")
    eval_pairs: StrictInt = Field(default=200, ge=2, description="Pairs of eval_data used (the first ones).")
    eval_steps: StrictInt = Field(default=25, ge=1, description="Evaluate and log every this many steps.")
    save_steps: StrictInt = Field(default=50, ge=1, description="Checkpoint every this many steps.")
    resume: StrictBool = Field(default=False, description="Continue from the latest checkpoint in the output folder.")
    seed: StrictInt = Field(default=0, description="Seed for data order, LoRA init and dropout.")

    @model_validator(mode="after")
    def _learning_rate_for_the_mode(self) -> TrainingConfig:
        # LoRA's few fresh weights need a rate that would wreck a pretrained model's own weights.
        if self.learning_rate is None:
            self.learning_rate = LORA_LEARNING_RATE if self.lora else FULL_LEARNING_RATE
        return self

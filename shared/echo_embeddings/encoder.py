"""EchoEncoder: texts in, one vector per text out, through a template, a causal LM and a pooling."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .batching import collate, plan_batches
from .config import LOADING_KEYS, EchoConfig
from .errors import ConfigError
from .models import LoadedModel, is_causal, load_model
from .packing import can_pack, collate_packed, unpack
from .pooling import pool
from .prefix_cache import PrefixCache
from .templates import PoolingName, Template
from .texts import check_texts
from .tokenization import ModelInput, TemplateTokenizer, TruncationWarning

__all__ = ["EchoEncoder", "TruncationWarning"]

TOKENS_PER_TEXT = 256
"""A batch holds ``batch_size`` texts and at most ``batch_size * TOKENS_PER_TEXT`` padded tokens."""

CHUNK_TEXTS = 4096
"""Texts tokenized, sorted and batched together; bounds the memory of ``encode`` on huge inputs."""


class EchoEncoder:
    """Embeds texts with a causal LM by mean-pooling the second copy of each text (echo embeddings).

    Build one with :meth:`from_pretrained`; :meth:`with_settings` gives another reading of the same loaded model.
    Texts are batched length-sorted under a token budget, and a batch runs as one packed pass where the model
    allows (:mod:`echo_embeddings.packing`). Thread-safe: concurrent ``encode`` calls give the same vectors as
    sequential ones.
    """

    def __init__(self, loaded: LoadedModel, *, config: EchoConfig | None = None) -> None:
        config = config or EchoConfig(model_name=loaded.name)
        check_max_length(config.max_length, loaded)
        self.config = config
        self.template: Template = config.resolved_template
        self.pooling: PoolingName = config.resolved_pooling
        self._loaded = loaded
        self.template_tokenizer = TemplateTokenizer(loaded.tokenizer, self.template, config.max_length)
        self._prefix_cache = PrefixCache(loaded.model)
        self._packs = can_pack(loaded.model, config.max_length)

    @classmethod
    def from_pretrained(
        cls, model_name: str | os.PathLike | None = None, *, show_progress: bool = False, **settings: Any
    ) -> EchoEncoder:
        """Load a causal LM (hub id, local folder or ``.gguf`` file; None for the default model) and wrap it.

        ``settings`` are :class:`~echo_embeddings.config.EchoConfig` fields: ``template`` (a preset name, a pattern
        string or a mapping), ``pooling`` (default: the template's), ``max_length`` (the whole sequence: template
        and every copy), ``normalize``, ``batch_size``, ``query_instruction``, ``document_instruction``,
        ``device``, ``dtype``, ``model_kwargs`` (to ``AutoModel.from_pretrained``) and ``cache_folder``. A model
        folder's own ``echo_config.json`` (a fine-tuned model's) supplies the defaults. The loaded model is shared
        with any other encoder that loaded the same one. ``show_progress`` shows transformers' loading bar.
        """
        config = EchoConfig.create(model_name, **settings)
        loaded = load_model(config.model_name, **config.loading_options(), show_progress=show_progress)
        return cls(loaded, config=config)

    def with_settings(self, **settings: Any) -> EchoEncoder:
        """An encoder on the same loaded model with some settings changed (template, pooling, max_length, ...)."""
        loading = {"model_name", *LOADING_KEYS} & set(settings)
        if loading:
            raise ConfigError(f"{sorted(loading)} choose which model is loaded: use EchoEncoder.from_pretrained")
        return EchoEncoder(self._loaded, config=self.config.replace(**settings))

    @property
    def model(self) -> Any:
        """The underlying transformers model (no LM head)."""
        return self._loaded.model

    @property
    def tokenizer(self) -> Any:
        """The model's Hugging Face tokenizer."""
        return self._loaded.tokenizer

    @property
    def model_name(self) -> str:
        return self._loaded.name

    @property
    def dim(self) -> int:
        """The embedding dimension (the model's hidden size)."""
        return self._loaded.dim

    @property
    def device(self) -> torch.device:
        return self._loaded.device

    @property
    def max_length(self) -> int:
        return self.config.max_length

    @property
    def normalize(self) -> bool:
        return self.config.normalize

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the recipe, not the weights: unpickling loads the model, or reuses it if this process has it."""
        return (_from_recipe, (self._loaded.load_kwargs, self.config))

    def __repr__(self) -> str:
        return (
            f"EchoEncoder(model_name={self.model_name!r}, template={self.template.name!r}, pooling={self.pooling!r}, "
            f"max_length={self.max_length}, normalize={self.normalize}, device='{self.device}')"
        )

    def encode_queries(self, texts: Sequence[str], **options: Any) -> np.ndarray:
        """Embed queries with the template's query form: :meth:`encode` with ``query=True``."""
        return self.encode(texts, query=True, **options)

    def encode_documents(self, texts: Sequence[str], **options: Any) -> np.ndarray:
        """Embed documents with the template's document form: :meth:`encode` with ``query=False``."""
        return self.encode(texts, query=False, **options)

    def encode(
        self,
        texts: Sequence[str],
        *,
        query: bool = False,
        instruction: str | None = None,
        batch_size: int | None = None,
        show_progress: bool | Any = False,
    ) -> np.ndarray:
        """Embed ``texts``: a float32 array of shape ``(len(texts), dim)``, row i for ``texts[i]``.

        Uses the document form unless ``query``. ``instruction`` fills the ``{instruction}`` slot, or leads the
        prompt when the form has none; None means the config's ``query_instruction``/``document_instruction``,
        then the template's own. ``batch_size`` defaults to the config's. ``show_progress``: True for a progress
        bar, or a tqdm bar of the caller's to advance after every batch. Texts too long for ``max_length`` are
        cut (a :class:`TruncationWarning` says how many); a text with no tokens (``""``) is embedded as the EOS
        token in its place.
        """
        texts = check_texts(texts)
        batch_size = self.config.batch_size if batch_size is None else batch_size
        if type(batch_size) is not int or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        if instruction is None:
            instruction = self.config.query_instruction if query else self.config.document_instruction
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        prefix = self.template_tokenizer.shared_prefix(query=query, instruction=instruction)
        if not is_causal(self.model):  # the prefix's states depend on what follows: nothing to reuse
            prefix = ()
        truncated = 0
        from tqdm.auto import tqdm

        if hasattr(show_progress, "update"):
            progress = contextlib.nullcontext(show_progress)
        else:
            progress = tqdm(total=len(texts), disable=not show_progress, unit="text", desc="Embedding")
        with progress as bar:
            for chunk_start in range(0, len(texts), CHUNK_TEXTS):
                chunk = texts[chunk_start : chunk_start + CHUNK_TEXTS]
                items = self.template_tokenizer(chunk, query=query, instruction=instruction)
                truncated += sum(item.truncated for item in items)
                lengths = [len(item.input_ids) for item in items]
                for batch in plan_batches(lengths, batch_size, batch_size * TOKENS_PER_TEXT):
                    vectors = self._forward(prefix, [items[i] for i in batch])
                    if not np.isfinite(vectors).all():
                        bad = [chunk_start + batch[r] for r in np.nonzero(~np.isfinite(vectors).all(1))[0]]
                        raise FloatingPointError(
                            f"the model produced non-finite values for texts at indices {bad} "
                            f"(dtype {self.model.dtype}; try dtype='float32')"
                        )
                    out[[chunk_start + i for i in batch]] = vectors
                    bar.update(len(batch))
        self.template_tokenizer.warn_truncated(truncated, len(texts))
        return out

    @torch.inference_mode()
    def _forward(self, prefix: tuple[int, ...], items: list[ModelInput]) -> np.ndarray:
        """The pooled vectors of ``items``: one packed pass where the model allows it, else a padded batch."""
        device, pad_id = self.device, self.template_tokenizer.pad_id
        if self._packs:
            batch = collate_packed(items, pad_id, len(prefix), self.model.dtype)
            hidden = self._prefix_cache.forward(
                prefix,
                batch["input_ids"].to(device),
                batch["attention_mask"].to(device),
                batch["position_ids"].to(device),
            )
            hidden, token_mask = unpack(hidden, batch["gather_index"].to(device)), batch["token_mask"]
        else:
            batch = collate(items, pad_id, len(prefix))
            token_mask = batch["attention_mask"]
            hidden = self._prefix_cache.forward(prefix, batch["input_ids"].to(device), token_mask.to(device))
        vectors = pool(hidden, batch["pool_mask"].to(device), token_mask.to(device), self.pooling)
        if self.config.normalize:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors.cpu().numpy()


def _from_recipe(load_kwargs: dict[str, Any], config: EchoConfig) -> EchoEncoder:
    return EchoEncoder(load_model(config.model_name, **load_kwargs), config=config)


def check_max_length(max_length: int, loaded: LoadedModel) -> None:
    """``max_length`` must fit the model's position embeddings."""
    limit = getattr(loaded.model.config, "max_position_embeddings", None)
    if limit and max_length > limit:
        raise ConfigError(f"max_length must be at most {limit} for {loaded.name}, got {max_length!r}")

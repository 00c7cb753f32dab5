"""EchoEncoder: texts in, one vector per text out, through a template, a causal LM and a pooling."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .batching import collate, plan_batches
from .models import DType, LoadedModel, load_model
from .pooling import POOLING_METHODS, PoolingMethod, pool
from .prefix_cache import PrefixCache
from .templates import Template, TemplateLike, resolve_template
from .texts import check_texts
from .tokenization import TemplateTokenizer, TruncationWarning

__all__ = ["EchoEncoder", "TruncationWarning"]

TOKENS_PER_TEXT = 256
"""A batch holds ``batch_size`` texts and at most ``batch_size * TOKENS_PER_TEXT`` padded tokens."""

CHUNK_TEXTS = 4096
"""Texts tokenized, sorted and batched together; bounds the memory of ``encode`` on huge inputs."""


class EchoEncoder:
    """Embeds texts with a causal LM by mean-pooling the second copy of each text (echo embeddings).

    Build one with :meth:`from_pretrained`. Thread-safe: concurrent ``encode`` calls give the same vectors as
    sequential ones.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        template: TemplateLike = "echo",
        pooling: PoolingMethod | None = None,
        max_length: int = 512,
        normalize: bool = True,
    ) -> None:
        self.template: Template = resolve_template(template)
        pooling = pooling or self.template.pooling
        if pooling not in POOLING_METHODS:
            raise ValueError(f"unknown pooling {pooling!r}: use one of {', '.join(POOLING_METHODS)}")
        limit = getattr(loaded.model.config, "max_position_embeddings", None)
        if not isinstance(max_length, int) or max_length < 1 or (limit and max_length > limit):
            raise ValueError(
                f"max_length must be an int in [1, {limit or 'inf'}] for {loaded.name}, got {max_length!r}"
            )
        self._loaded = loaded
        self.pooling: PoolingMethod = pooling
        self.max_length = max_length
        self.normalize = normalize
        self.template_tokenizer = TemplateTokenizer(loaded.tokenizer, self.template, max_length)
        self._prefix_cache = PrefixCache(loaded.model)

    @classmethod
    def from_pretrained(
        cls,
        model_name: str | os.PathLike | None = None,
        *,
        template: TemplateLike = "echo",
        pooling: PoolingMethod | None = None,
        max_length: int = 512,
        normalize: bool = True,
        device: str | torch.device | None = None,
        dtype: DType = None,
        model_kwargs: dict[str, Any] | None = None,
        cache_folder: str | os.PathLike | None = None,
    ) -> EchoEncoder:
        """Load a causal LM (hub id, local folder or ``.gguf`` file; None for the default model) and wrap it.

        ``template`` is a preset name (see ``TEMPLATES``), a pattern string or a :class:`Template`; ``pooling``
        ("mean" or "last") defaults to the template's own (mean for every preset but prompteol); ``max_length``
        bounds the whole sequence (template and every copy of the text); ``model_kwargs`` go to
        ``AutoModel.from_pretrained``. The model is shared with any other encoder that loaded the same one.
        """
        loaded = load_model(
            model_name, device=device, dtype=dtype, model_kwargs=model_kwargs, cache_folder=cache_folder
        )
        return cls(loaded, template=template, pooling=pooling, max_length=max_length, normalize=normalize)

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

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the recipe, not the weights: unpickling loads the model, or reuses it if this process has it."""
        settings = dict(
            template=self.template, pooling=self.pooling, max_length=self.max_length, normalize=self.normalize
        )
        return (_from_recipe, (self.model_name, self._loaded.load_kwargs, settings))

    def __repr__(self) -> str:
        return (
            f"EchoEncoder(model_name={self.model_name!r}, template={self.template.name!r}, pooling={self.pooling!r}, "
            f"max_length={self.max_length}, normalize={self.normalize}, device='{self.device}')"
        )

    def encode_queries(
        self, texts: Sequence[str], instruction: str | None = None, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        """Embed queries with the template's query form; ``instruction`` fills its ``{instruction}`` slot."""
        return self.encode(texts, batch_size, show_progress, query=True, instruction=instruction)

    def encode_documents(
        self, texts: Sequence[str], instruction: str | None = None, batch_size: int = 32, show_progress: bool = False
    ) -> np.ndarray:
        """Embed documents with the template's document form (the same as :meth:`encode`)."""
        return self.encode(texts, batch_size, show_progress, query=False, instruction=instruction)

    def encode(
        self,
        texts: Sequence[str],
        batch_size: int = 32,
        show_progress: bool = False,
        *,
        query: bool = False,
        instruction: str | None = None,
    ) -> np.ndarray:
        """Embed ``texts``: a float32 array of shape ``(len(texts), dim)``, row i for ``texts[i]``.

        Uses the document form unless ``query``. An ``instruction`` fills the ``{instruction}`` slot, or leads the
        prompt when the template has none. Texts too long for ``max_length`` are cut (a :class:`TruncationWarning`
        says how many); a text with no tokens (``""``) is embedded as the EOS token in its place.
        """
        texts = check_texts(texts)
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        prefix = self.template_tokenizer.shared_prefix(query=query, instruction=instruction)
        truncated = 0
        from tqdm.auto import tqdm

        with tqdm(total=len(texts), disable=not show_progress, unit="text", desc="Embedding") as bar:
            for chunk_start in range(0, len(texts), CHUNK_TEXTS):
                chunk = texts[chunk_start : chunk_start + CHUNK_TEXTS]
                items = self.template_tokenizer(chunk, query=query, instruction=instruction)
                truncated += sum(item.truncated for item in items)
                lengths = [len(item.input_ids) for item in items]
                for batch in plan_batches(lengths, batch_size, batch_size * TOKENS_PER_TEXT):
                    batch_items = [items[i] for i in batch]
                    vectors = self._forward(prefix, collate(batch_items, self.template_tokenizer.pad_id, len(prefix)))
                    if not np.isfinite(vectors).all():
                        bad = [chunk_start + batch[r] for r in np.nonzero(~np.isfinite(vectors).all(1))[0]]
                        raise FloatingPointError(
                            f"the model produced non-finite values for texts at indices {bad} "
                            f"(dtype {self.model.dtype}; try dtype='float32')"
                        )
                    out[[chunk_start + i for i in batch]] = vectors
                    bar.update(len(batch))
        self.template_tokenizer.warn_truncated(truncated, len(texts), stacklevel=2)
        return out

    @torch.inference_mode()
    def _forward(self, prefix: tuple[int, ...], batch: dict[str, torch.Tensor]) -> np.ndarray:
        device = self.device
        hidden = self._prefix_cache.forward(prefix, batch["input_ids"].to(device), batch["attention_mask"].to(device))
        vectors = pool(hidden, batch["pool_mask"].to(device), batch["attention_mask"].to(device), self.pooling)
        if self.normalize:
            vectors = torch.nn.functional.normalize(vectors, dim=-1)
        return vectors.cpu().numpy()


def _from_recipe(model_name: str, load_kwargs: dict[str, Any], settings: dict[str, Any]) -> EchoEncoder:
    return EchoEncoder(load_model(model_name, **load_kwargs), **settings)

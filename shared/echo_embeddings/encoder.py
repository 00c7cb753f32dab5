"""EchoEncoder: texts in, one vector per text out, through a template, a causal LM and a pooling."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np
import torch

from .collation import can_pack, collate, collate_packed, plan_batches
from .config import LOADING_KEYS, EchoConfig
from .core import EchoCore
from .errors import ConfigError
from .loading import LoadedModel, load_model
from .progress import progress_bar
from .quantization import shrink
from .templates import PoolingName, Template
from .texts import check_texts
from .tokenization import ModelInput, TemplateTokenizer, TruncationWarning

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = ["EchoEncoder", "EncodeStats", "TruncationWarning"]

TOKENS_PER_TEXT = 256
"""A batch holds ``batch_size`` texts and at most ``batch_size * TOKENS_PER_TEXT`` padded tokens."""

CHUNK_TEXTS = 4096
"""Texts tokenized, sorted and batched together; bounds the memory of ``encode`` on huge inputs."""


@dataclass(frozen=True)
class EncodeStats:
    """What [EchoEncoder.encode][] read of each text: arrays with one entry per text, in input order."""

    text_tokens: np.ndarray
    """Tokens of each text as given (no template)."""
    read_tokens: np.ndarray
    """Tokens of each text the vector was computed from (all of them unless it was cut)."""
    windows: np.ndarray
    """Inputs each text was read as: 1, or more with ``truncation="windows"``."""

    @property
    def truncated(self) -> np.ndarray:
        """Whether each text was cut (boolean array)."""
        return self.read_tokens < self.text_tokens


class EchoEncoder:
    """Embeds texts with a causal LM by pooling the states of each text's second copy (echo embeddings), the
    template's way.

    Build one with [from_pretrained][echo_embeddings.EchoEncoder.from_pretrained];
    [with_settings][echo_embeddings.EchoEncoder.with_settings] gives another reading of the same loaded model. On
    top of the inference core ([EchoCore][echo_embeddings.core.EchoCore]) it plans length-sorted batches under a
    token budget, runs a batch as one packed pass where the model allows, reads long texts in windows, checks that
    the output is finite and quantizes. Thread-safe: concurrent ``encode`` calls give the same vectors as sequential
    ones.
    """

    def __init__(self, loaded: LoadedModel, *, config: EchoConfig | None = None) -> None:
        self._core = EchoCore.for_model(loaded, config)
        self.config = self._core.config
        self.template: Template = self._core.template
        self.pooling: PoolingName = self._core.pooling
        self._loaded = loaded
        self._packs = can_pack(loaded.model, self.template_tokenizer.longest())

    @classmethod
    def from_pretrained(
        cls, model_name: str | os.PathLike | None = None, *, show_progress: bool = False, **settings: Any
    ) -> EchoEncoder:
        """Load a causal LM and wrap it.

        Args:
            model_name: A hub id, a local folder or a ``.gguf`` file; None for the default model.
            show_progress: Show transformers' loading bar.
            **settings: [EchoConfig][echo_embeddings.EchoConfig] fields (``template``, ``max_text_tokens``,
                ``device``, ...: the settings table of the usage guide). A model folder's own
                ``echo_config.json`` (a fine-tuned model's) supplies the defaults.

        The loaded model is shared with any other encoder that loaded the same one.
        """
        return cls.from_config(EchoConfig.create(model_name, **settings), show_progress=show_progress)

    @classmethod
    def from_config(cls, config: EchoConfig, *, show_progress: bool = False) -> EchoEncoder:
        """Load ``config``'s model (or reuse it, if loaded) and read it with ``config``, already validated (e.g.
        before a slow load)."""
        loaded = load_model(config.model_name, **config.loading_options(), show_progress=show_progress)
        return cls(loaded, config=config)

    def with_settings(self, **settings: Any) -> EchoEncoder:
        """An encoder on the same loaded model with some settings changed (template, pooling, max_length, ...)."""
        loading = {"model_name", *LOADING_KEYS} & set(settings)
        if loading:
            raise ConfigError(f"{sorted(loading)} choose which model is loaded: use EchoEncoder.from_pretrained")
        return EchoEncoder(self._loaded, config=self.config.replace(**settings))

    @property
    def template_tokenizer(self) -> TemplateTokenizer:
        """How texts become token ids: the template's forms, the read budget and truncation."""
        return self._core.tokenizer()

    @property
    def model(self) -> PreTrainedModel:
        """The underlying transformers model (no LM head)."""
        return self._loaded.model

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The model's Hugging Face tokenizer."""
        return self._loaded.tokenizer

    @property
    def model_name(self) -> str:
        return self._loaded.name

    @property
    def dim(self) -> int:
        """Dimensions of a vector: ``truncate_dim``, else the model's hidden size."""
        return self.config.truncate_dim or self._loaded.dim

    @property
    def fingerprint(self) -> str:
        """A stable identifier of everything that decides this encoder's vectors (weights, template, pooling,
        lengths, truncation, normalization, instructions, dimension, precision, dtype): equal fingerprints, equal
        vectors; use it to key caches of vectors (see [echo_embeddings.fingerprint][])."""
        return self._core.fingerprint()

    @property
    def device(self) -> torch.device:
        return self._loaded.device

    @property
    def max_length(self) -> int | None:
        """Tokens per whole sequence (template and every copy): the setting, else the model's position limit."""
        return self.template_tokenizer.max_length

    @property
    def max_text_tokens(self) -> int | None:
        """Tokens of a text this encoder reads in its document form without an instruction (None: no bound)."""
        return self.template_tokenizer.budget()

    @property
    def normalize(self) -> bool:
        return self.config.normalize

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the recipe, not the weights: unpickling loads the model, or reuses it if this process has it."""
        return (_from_recipe, (self._loaded.load_kwargs, self.config))

    def __repr__(self) -> str:
        return (
            f"EchoEncoder(model_name={self.model_name!r}, template={self.template.name!r}, pooling={self.pooling!r}, "
            f"max_text_tokens={self.max_text_tokens}, truncation={self.config.truncation!r}, "
            f"normalize={self.normalize}, device='{self.device}')"
        )

    def encode_queries(self, texts: Sequence[str], **options: Any) -> np.ndarray:
        """Embed queries with the template's query form: [encode][] with ``query=True``."""
        return self.encode(texts, query=True, **options)

    def encode_documents(self, texts: Sequence[str], **options: Any) -> np.ndarray:
        """Embed documents with the template's document form: [encode][] with ``query=False``."""
        return self.encode(texts, query=False, **options)

    @overload
    def encode(
        self,
        texts: Sequence[str],
        *,
        query: bool = ...,
        instruction: str | None = ...,
        batch_size: int | None = ...,
        show_progress: bool | Any = ...,
        return_stats: Literal[False] = ...,
    ) -> np.ndarray: ...

    @overload
    def encode(
        self,
        texts: Sequence[str],
        *,
        query: bool = ...,
        instruction: str | None = ...,
        batch_size: int | None = ...,
        show_progress: bool | Any = ...,
        return_stats: Literal[True],
    ) -> tuple[np.ndarray, EncodeStats]: ...

    def encode(
        self,
        texts: Sequence[str],
        *,
        query: bool = False,
        instruction: str | None = None,
        batch_size: int | None = None,
        show_progress: bool | Any = False,
        return_stats: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, EncodeStats]:
        """Embed ``texts``, one vector per text, in order.

        A text longer than ``max_text_tokens`` is handled as ``truncation`` says: cut (one [TruncationWarning][]
        per call says how many), refused before any forward pass, or read in windows whose unit vectors are
        averaged. A text with no tokens (``""``) is embedded as the EOS token in its place.

        Args:
            texts: The texts (a list, tuple, array or Series of str).
            query: Use the template's query form instead of its document form.
            instruction: Fills the ``{instruction}`` slot, or leads the prompt when the form has none; None (or
                ``""``) means the config's ``query_instruction`` or ``document_instruction``, then the template's.
            batch_size: Texts per forward pass; None: the config's.
            show_progress: True for a progress bar counting texts (plain lines where stderr is no terminal: a log), or
                a bar of the caller's to advance (anything with ``update``).
            return_stats: Also return an [EncodeStats][], which says which texts were cut, instead of the warning.

        Returns:
            An array of shape ``(len(texts), dim)``: float32, or as ``precision`` says (int8/uint8; binary/ubinary
            pack 8 dimensions a byte); with ``return_stats``, the array and the stats.
        """
        texts = check_texts(texts)
        batch_size = self._batch_size(batch_size)
        instruction = self._core.instruction(query, instruction)
        self.template_tokenizer.check_lengths(texts, query=query, instruction=instruction)
        budget = self.template_tokenizer.budget(query=query, instruction=instruction)
        out = np.empty((len(texts), self._loaded.dim), dtype=np.float32)
        text_tokens = np.zeros(len(texts), dtype=np.int64)
        read_tokens = np.zeros(len(texts), dtype=np.int64)
        windows = np.zeros(len(texts), dtype=np.int64)
        prefix = self._core.shared_prefix(query=query, instruction=instruction)
        if hasattr(show_progress, "update"):
            progress = contextlib.nullcontext(show_progress)
        else:
            progress = progress_bar(len(texts), desc="Embedding", unit="text", disable=not show_progress)
        with progress as bar:
            for chunk_start in range(0, len(texts), CHUNK_TEXTS):
                chunk = texts[chunk_start : chunk_start + CHUNK_TEXTS]
                items = self.template_tokenizer(chunk, query=query, instruction=instruction, first_index=chunk_start)
                owners = np.array([chunk_start + item.text for item in items])
                np.add.at(windows, owners, 1)
                text_tokens[owners] = [item.text_tokens for item in items]
                read_tokens[owners] = [
                    budget if item.truncated and budget is not None else item.text_tokens for item in items
                ]
                vectors = self._encode_items(prefix, items, batch_size, bar, windows[owners], chunk_start)
                alone = windows[owners] == 1
                out[owners[alone]] = vectors[alone]
                if not alone.all():  # a text read in windows: the mean of its windows' unit vectors
                    unit = vectors[~alone] / np.linalg.norm(vectors[~alone], axis=1, keepdims=True)
                    windowed, row = np.unique(owners[~alone], return_inverse=True)
                    means = np.zeros((len(windowed), self._loaded.dim), dtype=np.float32)
                    np.add.at(means, row, unit)
                    means /= windows[windowed, None]
                    if self.config.normalize:
                        means /= np.linalg.norm(means, axis=1, keepdims=True)
                    out[windowed] = means
        out = shrink(out, self.config)
        if return_stats:
            return out, EncodeStats(text_tokens, read_tokens, windows)
        self.template_tokenizer.warn_truncated(
            int((read_tokens < text_tokens).sum()), len(texts), query=query, instruction=instruction
        )
        return out

    def _encode_items(
        self,
        prefix: tuple[int, ...],
        items: list[ModelInput],
        batch_size: int,
        bar: Any,
        shares: np.ndarray,
        first_index: int,
    ) -> np.ndarray:
        """The pooled vectors of ``items``, in order, run as length-sorted batches under the token budget.

        ``shares[i]`` is how many inputs ``items[i]``'s text was split into: the bar advances by texts.
        ``first_index`` is the index of the items' first text in the call, for errors.
        """
        out = np.empty((len(items), self._loaded.dim), dtype=np.float32)
        lengths = [len(item.input_ids) for item in items]
        for batch in plan_batches(lengths, batch_size, batch_size * TOKENS_PER_TEXT, alone_from=self._core.whole_from):
            vectors = self._forward(prefix, [items[i] for i in batch])
            if not np.isfinite(vectors).all():
                rows = np.nonzero(~np.isfinite(vectors).all(1))[0]
                bad = sorted({first_index + items[batch[r]].text for r in rows})
                raise FloatingPointError(
                    f"the model produced non-finite values for texts at indices {bad} "
                    f"(dtype {self.model.dtype}; try dtype='float32')"
                )
            out[batch] = vectors
            bar.update(float(sum(1 / shares[i] for i in batch)) if shares.max() > 1 else len(batch))
        return out

    def quantization_ranges(self, texts: Sequence[str], *, query: bool = False) -> list[list[float]]:
        """Each dimension's minimum and maximum over the float vectors of ``texts`` (a sample of your corpus): the
        ``quantization_ranges`` setting that int8/uint8 ``precision`` needs."""
        from .quantization import ranges_of

        full = self.with_settings(precision="float32", quantization_ranges=None)
        return ranges_of(full.encode(texts, query=query))

    def check_lengths(
        self, texts: Sequence[str], *, query: bool = False, instruction: str | None = None, name: str = "texts"
    ) -> None:
        """Raise what [encode][] would raise about the lengths, tokenizing only: a
        [ConfigError][echo_embeddings.errors.ConfigError] for an instruction that leaves no room for the text, and
        with ``truncation="error"`` a [TextTooLongError][echo_embeddings.errors.TextTooLongError] for the first text
        it would refuse (naming it ``name[index]``)."""
        instruction = self._core.instruction(query, instruction)
        self.template_tokenizer.budget(query=query, instruction=instruction)  # the form fits, or a ConfigError
        self.template_tokenizer.check_lengths(check_texts(texts), query=query, instruction=instruction, name=name)

    def _batch_size(self, batch_size: int | None) -> int:
        """``batch_size``, or the config's when None; a ConfigError unless it is a positive int."""
        batch_size = self.config.batch_size if batch_size is None else batch_size
        if type(batch_size) is not int or batch_size < 1:
            raise ConfigError(f"batch_size must be a positive int, got {batch_size!r}")
        return batch_size

    def encode_chunks(
        self,
        documents: Sequence[str],
        spans: Sequence[Sequence[tuple[int, int]]],
        *,
        instruction: str | None = None,
        batch_size: int | None = None,
        show_progress: bool = False,
    ) -> list[np.ndarray]:
        """Late chunking: for each document, one vector per chunk, from one pass over the document (per window).

        ``spans[d]`` holds the ``(start, end)`` character spans of ``documents[d]``'s chunks (a splitter's nodes
        give ``start_char_idx``/``end_char_idx``; [find_spans][echo_embeddings.late_chunking.find_spans] finds chunk
        strings). The document goes through the template's document form as one text, and each chunk's vector
        pools the template's way over the chunk's tokens in the second copy, whose states have read the whole
        document. A document longer than ``max_text_tokens`` is read in windows that each hold whole chunks
        ([plan_windows][echo_embeddings.late_chunking.plan_windows]); a chunk longer than that is cut (a
        [TruncationWarning][] counts them). Returns a ``(len(spans[d]), dim)`` array per document, of the
        encoder's ``precision``.
        """
        from .late_chunking import check_spans, plan_windows, token_spans

        documents = check_texts(documents)
        if isinstance(spans, (str, bytes)) or len(spans) != len(documents):
            raise ConfigError(f"spans must hold one list of (start, end) pairs per document ({len(documents)})")
        if self.pooling == "last":
            raise ConfigError("late chunking pools each chunk's span: use a pooling other than 'last'")
        instruction = self._core.instruction(False, instruction)
        checked = [
            check_spans(doc_spans, doc, d) for d, (doc, doc_spans) in enumerate(zip(documents, spans, strict=True))
        ]
        budget = self.template_tokenizer.budget(instruction=instruction)
        batch_size = self._batch_size(batch_size)
        items: list[ModelInput] = []
        chunk_rows: list[list[tuple[int, int, int, int, int]]] = []  # per item: (item, document, chunk, first, end)
        truncated = 0
        for d, doc in enumerate(documents):
            if not checked[d]:  # a document with no chunks: no vectors, no pass
                continue
            ids, offsets = self.template_tokenizer.with_offsets(doc, instruction=instruction)
            for window in plan_windows(token_spans(offsets, checked[d], d), len(ids), budget):
                item = self.template_tokenizer.build(ids[window.start : window.end], instruction=instruction, text=d)
                truncated += window.truncated
                chunk_rows.append(
                    [(len(items), d, chunk, item.pool_start + first, item.pool_start + end)
                     for chunk, (first, end) in zip(window.chunks, window.spans, strict=True)]
                )  # fmt: skip
                items.append(item)
        prefix = self._core.shared_prefix(query=False, instruction=instruction)
        out = [np.empty((len(doc_spans), self._loaded.dim), dtype=np.float32) for doc_spans in checked]
        lengths = [len(item.input_ids) for item in items]
        with progress_bar(len(items), desc="Late chunking", unit="window", disable=not show_progress) as bar:
            for batch in plan_batches(
                lengths, batch_size, batch_size * TOKENS_PER_TEXT, alone_from=self._core.whole_from
            ):
                rows = [row for i in batch for row in chunk_rows[i]]
                for row, vector in zip(rows, self._pool_chunks(prefix, batch, items, rows), strict=True):
                    out[row[1]][row[2]] = vector
                bar.update(len(batch))
        self.template_tokenizer.warn_truncated(
            truncated, sum(len(s) for s in checked), instruction=instruction, chunks=True
        )
        return [shrink(vectors, self.config) for vectors in out]

    @torch.inference_mode()
    def _pool_chunks(
        self,
        prefix: tuple[int, ...],
        batch: list[int],
        items: list[ModelInput],
        rows: list[tuple[int, int, int, int, int]],
    ) -> np.ndarray:
        """One pass over ``items[batch]``; each row's chunk pooled over its token span, the template's way."""
        hidden, token_mask, _ = self._states(prefix, [items[i] for i in batch])
        vectors = torch.empty((len(rows), hidden.shape[-1]), dtype=torch.float32, device=hidden.device)
        for r, item in enumerate(batch):
            mine = [k for k, row in enumerate(rows) if row[0] == item]
            masks = torch.zeros((len(mine), hidden.shape[1]), dtype=torch.bool, device=hidden.device)
            for m, k in enumerate(mine):
                masks[m, rows[k][3] - len(prefix) : rows[k][4] - len(prefix)] = True
            vectors[mine] = self._core.pool_spans(hidden[r], masks, int(token_mask[r].sum()) - 1)
        return vectors.cpu().numpy()

    @torch.inference_mode()
    def _forward(self, prefix: tuple[int, ...], items: list[ModelInput]) -> np.ndarray:
        """The pooled vectors of ``items``: one packed pass where the model allows it, else a padded batch."""
        hidden, token_mask, pool_mask = self._states(prefix, items)
        return self._core.pool(hidden, pool_mask, token_mask, normalize=self.config.normalize).cpu().numpy()

    def _states(
        self, prefix: tuple[int, ...], items: list[ModelInput]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each item's hidden states after ``prefix`` (one row an item), its token mask and its pooled span's mask."""
        pad_id = self.template_tokenizer.pad_id
        if self._packs and len(items) > 1:
            return self._core.states(prefix, collate_packed(items, pad_id, len(prefix), self.model.dtype))
        return self._core.states(prefix, collate(items, pad_id, len(prefix)))


def _from_recipe(load_kwargs: dict[str, Any], config: EchoConfig) -> EchoEncoder:
    return EchoEncoder(load_model(config.model_name, **load_kwargs), config=config)

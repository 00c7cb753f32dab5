"""Template x tokenizer x texts -> token ids and the pooled span of each.

Rules (the paper's reference implementation tokenizes the same way):
- every literal piece of the template is tokenized on its own, once;
- each text is tokenized once and the same ids are spliced into every ``{text}`` slot, so the copies are identical;
- the special tokens the tokenizer puts before a text (BOS for Llama/Mistral, none for GPT-2/SmolLM2) start the
  sequence, and are never pooled;
- a text too long for ``max_length`` is cut (its head kept) so that every copy and the whole template still fit.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal

from .errors import ConfigError
from .templates import Slot, Template

SpaceMode = Literal["join", "marker", "none"]


class TruncationWarning(UserWarning):
    """Some texts were cut to fit ``max_length``."""


@dataclass(frozen=True)
class ModelInput:
    """One model input: its token ids and the ``[pool_start, pool_end)`` positions to pool."""

    input_ids: list[int]
    pool_start: int
    pool_end: int
    truncated: bool


@dataclass(frozen=True)
class _CompiledPattern:
    """A pattern with its literals tokenized: ``segments`` holds fixed ids, or None where the text goes."""

    segments: tuple[tuple[int, ...] | None, ...]
    pooled: tuple[int, int]  # segment indices [first, last + 1)
    text_prefix: str  # prepended to every text before tokenizing (a space moved out of the literal before it)
    fixed_length: int
    copies: int

    @property
    def shared_prefix(self) -> tuple[int, ...]:
        """The ids every input starts with: the fixed segments before the first text."""
        ids: list[int] = []
        for seg in self.segments:
            if seg is None:
                break
            ids.extend(seg)
        return tuple(ids)

    def max_text_tokens(self, max_length: int) -> int:
        return (max_length - self.fixed_length) // self.copies

    def build(self, text_ids: list[int], truncated: bool) -> ModelInput:
        ids: list[int] = []
        start = end = 0
        for i, seg in enumerate(self.segments):
            if i == self.pooled[0]:
                start = len(ids)
            ids.extend(text_ids if seg is None else seg)
            if i == self.pooled[1] - 1:
                end = len(ids)
        return ModelInput(ids, start, end, truncated)


class TemplateTokenizer:
    """Tokenizes texts into one template's query or document form for one tokenizer.

    Thread-safe: Hugging Face fast tokenizers must not be called from two threads at once.
    """

    def __init__(self, tokenizer: Any, template: Template, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.template = template
        self.max_length = max_length
        self._lock = threading.Lock()
        self.prefix_ids = self._special_prefix()
        self.eos_id = _first_not_none(tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id)
        self.pad_id = _first_not_none(tokenizer.pad_token_id, self.eos_id, 0)
        self.space_mode = self._space_mode()
        self._compile = lru_cache(maxsize=64)(self._compile_uncached)
        for query in (False, True):  # fail at construction if the template cannot fit max_length
            self._compile(query, None)

    def __call__(
        self, texts: Sequence[str], *, query: bool = False, instruction: str | None = None
    ) -> list[ModelInput]:
        """Model inputs for ``texts`` (already validated as strings), in input order."""
        compiled = self._compile(query, instruction)
        limit = compiled.max_text_tokens(self.max_length)
        text_ids = self._ids([compiled.text_prefix + t if t else t for t in texts])
        out = []
        for ids in text_ids:
            if not ids:  # nothing to pool: stand the EOS token in for the text, in every copy
                ids = [self.eos_id]
            out.append(compiled.build(ids[:limit], len(ids) > limit))
        return out

    def warn_truncated(self, truncated: int, total: int) -> None:
        """One :class:`TruncationWarning` saying how many of ``total`` texts were cut, if any were, pointing at the
        caller's own line (the first frame outside this library and the frameworks it plugs into)."""
        if truncated:
            warnings.warn(
                f"{truncated} of {total} texts were longer than max_length={self.max_length} allows "
                f"for template {self.template.name!r} and were truncated",
                TruncationWarning,
                stacklevel=_caller_stacklevel(),
            )

    def count_tokens(self, texts: Sequence[str]) -> int:
        """How many tokens ``texts`` hold as given: no template, no special tokens."""
        return sum(len(ids) for ids in self._ids(list(texts)))

    def shared_prefix(self, *, query: bool = False, instruction: str | None = None) -> tuple[int, ...]:
        """The token ids that every input of this form (and instruction) starts with."""
        return self._compile(query, instruction).shared_prefix

    def _ids(self, strings: list[str]) -> list[list[int]]:
        if not strings:
            return []
        with self._lock:
            return self.tokenizer(strings, add_special_tokens=False)["input_ids"]

    def _special_prefix(self) -> tuple[int, ...]:
        with_special = self.tokenizer("x")["input_ids"]
        plain = self.tokenizer("x", add_special_tokens=False)["input_ids"]
        cut = len(with_special) - len(plain)
        return tuple(with_special[:cut]) if cut > 0 and with_special[cut:] == plain else ()

    def _space_mode(self) -> SpaceMode:
        """How a word after a space tokenizes when tokenized on its own.

        "join": the space belongs to the word's first token (GPT-2/SmolLM2 byte-level BPE: "Ġhello"), so the space
        that ends a literal is moved onto the text. "marker": the tokenizer marks a word start by itself
        (SentencePiece "▁hello"), so the space is dropped from the literal. "none": neither reproduces it.
        """
        literal, word = "Echo:", "hello"
        whole = self._ids([f"{literal} {word}"])[0]
        head, bare, spaced = self._ids([literal, word, f" {word}"])
        if head + bare == whole:
            return "marker"
        if head + spaced == whole:
            return "join"
        return "none"

    def _compile_uncached(self, query: bool, instruction: str | None) -> _CompiledPattern:
        pattern = self.template.pattern(query)
        if instruction is None:  # the template's default instruction fills its slot; a form without one has none
            instruction = (self.template.instruction if pattern.count("instruction") else None) or ""
        pieces: list[str | Slot] = list(pattern.pieces)
        pooled_first, pooled_last = pattern.pooled_range
        if pattern.count("instruction") == 0 and instruction:
            pieces.insert(0, instruction)  # no slot for it: the instruction leads the prompt, never pooled
            pooled_first, pooled_last = pooled_first + 1, pooled_last + 1
        move_space = self.space_mode != "none" and _every_text_follows_space(pieces)
        segments: list[tuple[int, ...] | None] = []
        for i, piece in enumerate(pieces):
            if isinstance(piece, Slot):
                if piece.name == "text":
                    segments.append(None)
                elif piece.name == "eos":
                    segments.append((self.eos_id,))
                else:
                    segments.append(tuple(self._ids([instruction])[0]) if instruction else ())
            else:
                if move_space and _precedes_text(pieces, i):
                    piece = piece[:-1]
                segments.append(tuple(self._ids([piece])[0]) if piece else ())
        compiled = _CompiledPattern(
            segments=(self.prefix_ids, *segments),
            pooled=(pooled_first + 1, pooled_last + 1),
            text_prefix=" " if move_space and self.space_mode == "join" else "",
            fixed_length=len(self.prefix_ids) + sum(len(s) for s in segments if s is not None),
            copies=pattern.count("text"),
        )
        if compiled.max_text_tokens(self.max_length) < 1:
            raise ConfigError(
                f"max_length={self.max_length} leaves no room for the text: the {'query' if query else 'document'} "
                f"form of template {self.template.name!r} takes {compiled.fixed_length} tokens by itself and "
                f"holds {compiled.copies} copies of the text"
            )
        return compiled


_INTERNAL_MODULES = (
    "echo_embeddings", "langchain_echo", "llamaindex_echo", "sentence_transformers", "langchain_core", "llama_index",
    "torch",
)  # fmt: skip


def _caller_stacklevel() -> int:
    """``warnings.warn``'s stacklevel of the first frame outside _INTERNAL_MODULES, from ``warn_truncated`` up."""
    level, frame = 2, sys._getframe(2)  # frame 1 is warn_truncated (stacklevel 1), frame 2 its caller
    while frame is not None and frame.f_globals.get("__name__", "").startswith(_INTERNAL_MODULES):
        level, frame = level + 1, frame.f_back
    return level


def _precedes_text(pieces: list[str | Slot], i: int) -> bool:
    nxt = pieces[i + 1] if i + 1 < len(pieces) else None
    return isinstance(nxt, Slot) and nxt.name == "text"


def _every_text_follows_space(pieces: list[str | Slot]) -> bool:
    for i, piece in enumerate(pieces):
        if isinstance(piece, Slot) and piece.name == "text":
            before = pieces[i - 1] if i > 0 else None
            if not (isinstance(before, str) and before.endswith(" ")):
                return False
    return True


def _first_not_none(*values: int | None) -> int:
    for v in values:
        if v is not None:
            return v
    raise ValueError("the tokenizer has none of an EOS, pad or unknown token id")

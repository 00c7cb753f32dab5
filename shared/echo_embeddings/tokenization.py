"""Template x tokenizer x texts -> token ids and the pooled span of each.

Rules (the paper's reference implementation tokenizes the same way):
- every literal piece of the template is tokenized on its own, once;
- each text is tokenized once and the same ids are spliced into every ``{text}`` slot, so the copies are identical;
- the special tokens the tokenizer puts before a text (BOS for Llama/Mistral, none for GPT-2/SmolLM2) start the
  sequence, and are never pooled;
- a text is read up to ``max_text_tokens`` tokens, and never beyond what ``max_length`` (the whole sequence) leaves
  for every copy; a longer text keeps its head or its tail, is refused, or is read in overlapping windows (the
  ``truncation`` setting), the same in every copy.
"""

from __future__ import annotations

import sys
import threading
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from types import FrameType
from typing import Any, Literal

from .errors import ConfigError, TextTooLongError
from .templates import Slot, Template

SpaceMode = Literal["join", "marker", "none"]
TruncationName = Literal["head", "tail", "error", "windows"]

WINDOW_OVERLAP = 8
"""With ``truncation="windows"``, consecutive windows share a ``1/WINDOW_OVERLAP`` of the read budget."""


class TruncationWarning(UserWarning):
    """Some texts were longer than the encoder reads and were cut."""


@dataclass(frozen=True)
class ModelInput:
    """One model input: its token ids and the ``[pool_start, pool_end)`` positions to pool.

    ``text`` is the index of the text it reads in its call (several inputs share one with ``truncation="windows"``),
    ``text_tokens`` that text's length in tokens and ``truncated`` whether some of it was cut off.
    """

    input_ids: list[int]
    pool_start: int
    pool_end: int
    truncated: bool
    text: int = 0
    text_tokens: int = 0


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

    def room(self, max_length: int | None) -> int | None:
        """Tokens of text that fit ``max_length`` in every copy; None for no bound."""
        return None if max_length is None else (max_length - self.fixed_length) // self.copies

    def build(self, text_ids: list[int], truncated: bool = False, text: int = 0, text_tokens: int = 0) -> ModelInput:
        ids: list[int] = []
        start = end = 0
        for i, seg in enumerate(self.segments):
            if i == self.pooled[0]:
                start = len(ids)
            ids.extend(text_ids if seg is None else seg)
            if i == self.pooled[1] - 1:
                end = len(ids)
        return ModelInput(ids, start, end, truncated, text, text_tokens)


class TemplateTokenizer:
    """Tokenizes texts into one template's query or document form for one tokenizer.

    A text is read up to ``max_text_tokens`` tokens, and at most what ``max_length`` (the whole sequence, None for
    no bound) leaves for each copy: [budget][]. ``truncation`` says what happens to a longer text: ``head`` or
    ``tail`` keeps that end, ``error`` raises [TextTooLongError][echo_embeddings.errors.TextTooLongError],
    ``windows`` reads it as overlapping windows of the budget (several inputs for one text).

    Thread-safe: Hugging Face fast tokenizers must not be called from two threads at once.
    """

    def __init__(
        self,
        tokenizer: Any,
        template: Template,
        max_length: int | None,
        *,
        max_text_tokens: int | None = None,
        truncation: TruncationName = "head",
        position_limit: int | None = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.position_limit = position_limit
        self.template = template
        self.max_length = max_length
        self.max_text_tokens = max_text_tokens
        self.truncation = truncation
        self._lock = threading.Lock()
        self.prefix_ids = self._special_prefix()
        self.eos_id = _first_not_none(tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.unk_token_id)
        self.pad_id = _first_not_none(tokenizer.pad_token_id, self.eos_id, 0)
        self.space_mode = self._space_mode()
        self._compile = lru_cache(maxsize=64)(self._compile_uncached)
        for query in (False, True):  # fail at construction if the template cannot fit max_length
            self._compile(query, None)

    def __call__(
        self, texts: Sequence[str], *, query: bool = False, instruction: str | None = None, first_index: int = 0
    ) -> list[ModelInput]:
        """Model inputs for ``texts`` (already validated as strings), in input order; ``first_index`` is the index
        of ``texts[0]`` in the caller's whole list, for errors."""
        compiled = self._compile(query, instruction)
        limit = self._limit(compiled)
        out = []
        for i, ids in enumerate(self._text_ids(compiled, texts)):
            if not ids:  # nothing to pool: stand the EOS token in for the text, in every copy
                ids = [self.eos_id]
            n = len(ids)
            if limit is None or n <= limit:
                out.append(compiled.build(ids, False, i, n))
            elif self.truncation == "error":
                raise self._too_long("texts", first_index + i, n, limit, texts[i])
            elif self.truncation == "windows":
                out.extend(compiled.build(window, False, i, n) for window in _windows(ids, limit))
            else:
                out.append(compiled.build(ids[:limit] if self.truncation == "head" else ids[-limit:], True, i, n))
        return out

    def budget(self, *, query: bool = False, instruction: str | None = None) -> int | None:
        """Tokens of a text read in one input of this form (None: no bound)."""
        return self._limit(self._compile(query, instruction))

    def longest(self) -> int | None:
        """The longest input either form of this template can make without an instruction (None: no bound)."""
        lengths = []
        for query in (False, True):
            compiled = self._compile(query, None)
            limit = self._limit(compiled)
            if limit is None:
                return None
            lengths.append(compiled.fixed_length + compiled.copies * limit)
        return max(lengths)

    def with_offsets(
        self, text: str, *, query: bool = False, instruction: str | None = None
    ) -> tuple[list[int], list[tuple[int, int]]]:
        """The ids [__call__][] splices into the copies for ``text`` (uncut) and each one's character span in
        ``text``; a ConfigError for a slow tokenizer, which has no offsets."""
        if not getattr(self.tokenizer, "is_fast", False):
            raise ConfigError("late chunking needs a fast (Rust) tokenizer, which reports each token's characters")
        compiled = self._compile(query, instruction)
        if compiled.segments[compiled.pooled[0]] is not None:
            raise ConfigError(
                f"late chunking needs a template that pools a copy of the text, not {self.template.name!r}"
            )
        shift = len(compiled.text_prefix)
        with self._lock:
            encoded = self.tokenizer(compiled.text_prefix + text, add_special_tokens=False, return_offsets_mapping=True)
        offsets = [(max(start - shift, 0), max(end - shift, 0)) for start, end in encoded["offset_mapping"]]
        return encoded["input_ids"], offsets

    def build(
        self, ids: list[int], *, query: bool = False, instruction: str | None = None, text: int = 0
    ) -> ModelInput:
        """The model input for token ids already cut to fit: its pooled span starts where the copy's ids do."""
        return self._compile(query, instruction).build(ids, False, text, len(ids))

    def check_lengths(
        self, texts: Sequence[str], *, query: bool = False, instruction: str | None = None, name: str = "texts"
    ) -> None:
        """With ``truncation="error"``, raise for the first text longer than the budget (before any model work),
        naming it as ``name[index]``."""
        if self.truncation != "error":
            return
        compiled = self._compile(query, instruction)
        limit = self._limit(compiled)
        if limit is None:
            return
        for start in range(0, len(texts), 1024):
            chunk = texts[start : start + 1024]
            for i, ids in enumerate(self._text_ids(compiled, chunk)):
                if len(ids) > limit:
                    raise self._too_long(name, start + i, len(ids), limit, chunk[i])

    def binding_bound(self, *, query: bool = False, instruction: str | None = None) -> str:
        """What bounds the read budget of this form: ``max_length`` where the room it leaves each copy is smaller
        than ``max_text_tokens`` (``positions`` where that ``max_length`` is the model's ``position_limit``, which
        no setting raises), else ``max_text_tokens``."""
        room = self._compile(query, instruction).room(self.max_length)
        if room is None or (self.max_text_tokens is not None and room >= self.max_text_tokens):
            return "max_text_tokens"
        return "positions" if self.max_length == self.position_limit else "max_length"

    def warn_truncated(
        self,
        truncated: int,
        total: int,
        *,
        query: bool = False,
        instruction: str | None = None,
        chunks: bool = False,
        remedy: str | None = None,
    ) -> None:
        """One [TruncationWarning][] saying how many of ``total`` texts (or late-chunked ``chunks``, whose head is
        always kept) of the form ``query``/``instruction`` were cut, if any were, and ``remedy``: by default, to
        raise the [binding_bound][] or read the texts in windows (chunks: to split them smaller). It points at the
        caller's own line (the first frame outside this library and the frameworks it plugs into)."""
        counting = _COUNT.get()
        if counting is not None:  # one_truncation_warning warns once, at the end of the user's call
            counting.add(truncated, total, dict(query=query, instruction=instruction, chunks=chunks, remedy=remedy))
            return
        if truncated:
            bound = self.binding_bound(query=query, instruction=instruction)
            what, kept = ("chunks", "head") if chunks else ("texts", self.truncation)
            if remedy is None:
                smaller = "split them smaller" if chunks else "set truncation='windows' to read them whole"
                remedy = (
                    f"the model reads at most {self.position_limit} positions: {smaller}"
                    if bound == "positions"
                    else f"raise {bound}, or {smaller}"
                )
            warnings.warn(
                f"{truncated} of {total} {what} were longer than this encoder reads ({self._budget_words()}) and "
                f"were cut, their {kept} kept; {remedy}",
                TruncationWarning,
                stacklevel=_caller_stacklevel(),
            )

    def _limit(self, compiled: _CompiledPattern) -> int | None:
        limits = [x for x in (self.max_text_tokens, compiled.room(self.max_length)) if x is not None]
        return min(limits) if limits else None

    def _budget_words(self) -> str:
        settings = [f"max_text_tokens={self.max_text_tokens}"] if self.max_text_tokens is not None else []
        settings += [f"max_length={self.max_length}"] if self.max_length is not None else []
        return ", ".join(settings)

    def _too_long(self, name: str, index: int, tokens: int, limit: int, text: str) -> TextTooLongError:
        message = (
            f"{name}[{index}] has {tokens} tokens, more than the {limit} this encoder reads "
            f"({self._budget_words()}; truncation='error'): {text!r:.60}"
        )
        return TextTooLongError(message, index=index, tokens=tokens, limit=limit)

    def count_tokens(self, texts: Sequence[str]) -> int:
        """How many tokens ``texts`` hold as given: no template, no special tokens."""
        return sum(len(ids) for ids in self._ids(list(texts)))

    def shared_prefix(self, *, query: bool = False, instruction: str | None = None) -> tuple[int, ...]:
        """The token ids that every input of this form (and instruction) starts with."""
        return self._compile(query, instruction).shared_prefix

    def _text_ids(self, compiled: _CompiledPattern, texts: Sequence[str]) -> list[list[int]]:
        """The ids of each text as spliced into ``compiled``'s copies (a space moved onto it where the pattern says)."""
        return self._ids([compiled.text_prefix + t if t else t for t in texts])

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
        room = compiled.room(self.max_length)
        if room is not None and room < 1:
            raise ConfigError(
                f"max_length={self.max_length} leaves no room for the text: the {'query' if query else 'document'} "
                f"form of template {self.template.name!r} takes {compiled.fixed_length} tokens by itself and "
                f"holds {compiled.copies} copies of the text"
            )
        return compiled


@dataclass
class _Count:
    """Texts cut and read within one [one_truncation_warning][], and the form they were read in."""

    truncated: int = 0
    total: int = 0
    form: dict[str, Any] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, truncated: int, total: int, form: dict[str, Any]) -> None:
        with self.lock:
            self.truncated, self.total, self.form = self.truncated + truncated, self.total + total, form


_COUNT: ContextVar[_Count | None] = ContextVar("echo_truncations", default=None)


@contextmanager
def one_truncation_warning(tokenizer: TemplateTokenizer) -> Iterator[None]:
    """Within it, every [TemplateTokenizer.warn_truncated][] counts instead of warning, and one [TruncationWarning][]
    at its end (unless it raised) says how many texts were cut: one warning per user call on a surface that reads
    one call's texts in several (sentence-transformers' batches, LlamaIndex's chunks), as ``EchoEncoder.encode``
    gives. An inner one adds to the outer one's count."""
    if _COUNT.get() is not None:
        yield
        return
    count = _Count()
    token = _COUNT.set(count)
    try:
        yield
    finally:
        _COUNT.reset(token)
    tokenizer.warn_truncated(count.truncated, count.total, **count.form)


_INTERNAL_MODULES = (
    "echo_embeddings", "langchain_echo", "llamaindex_echo", "sentence_transformers", "langchain_core", "llama_index",
    "torch", "contextlib",
)  # fmt: skip


def _caller_stacklevel() -> int:
    """``warnings.warn``'s stacklevel of the first frame outside _INTERNAL_MODULES, from ``warn_truncated`` up."""
    level = 2
    frame: FrameType | None = sys._getframe(2)  # frame 1 is warn_truncated (stacklevel 1), frame 2 its caller
    while frame is not None and frame.f_globals.get("__name__", "").startswith(_INTERNAL_MODULES):
        level, frame = level + 1, frame.f_back
    return level


def _windows(ids: list[int], size: int) -> list[list[int]]:
    """``ids`` in windows of ``size`` tokens, each starting ``size - size // WINDOW_OVERLAP`` after the last, the
    last one ending with the text."""
    step = max(1, size - size // WINDOW_OVERLAP)
    starts = list(range(0, len(ids) - size, step)) + [len(ids) - size]
    return [ids[start : start + size] for start in starts]


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

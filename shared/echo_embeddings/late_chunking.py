"""Late chunking on a causal LM: one pass over a document, one vector per chunk.

Every token of echo's second copy has read the whole text (in the first copy), so pooling the second copy's states
over a chunk's tokens gives a chunk vector that knows its document: what late chunking needs a bidirectional
long-context encoder for elsewhere. A document longer than the encoder reads is covered by consecutive windows,
each starting at a chunk and reaching as far as the budget allows, so every chunk is pooled in a window that
holds it whole (a chunk longer than the budget alone is cut to it). Pure planning here: no torch, no model.

Training reads late-chunked spans too: a training text may mark one span between [SPAN_START][] and [SPAN_END][]
([mark_span][]); the sentence-transformers module then reads the whole text and pools that span's tokens of the
second copy, as [EchoEncoder.encode_chunks][echo_embeddings.EchoEncoder.encode_chunks] pools a chunk.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from .errors import InputError

Span = tuple[int, int]

SPAN_START = "\ue000"
"""Marks where a training text's pooled span starts (a private-use character, never in real text)."""
SPAN_END = "\ue001"
"""Marks where it ends."""


def mark_span(text: str, span: Span) -> str:
    """``text`` with its characters ``[start, end)`` marked as the span to pool."""
    start, end = span
    return f"{text[:start]}{SPAN_START}{text[start:end]}{SPAN_END}{text[end:]}"


def marked_span(text: str, index: int) -> tuple[str, Span | None]:
    """``(text without its marks, the marked span)``, or ``(text, None)`` for a text without marks; an InputError
    names input ``index`` for marks that are not one pair around some text."""
    if SPAN_START not in text and SPAN_END not in text:
        return text, None
    start, end = text.find(SPAN_START), text.find(SPAN_END)
    if text.count(SPAN_START) != 1 or text.count(SPAN_END) != 1 or not start < end - 1:
        raise InputError(f"inputs[{index}]: a marked span needs one SPAN_START before one SPAN_END, text between")
    return text[:start] + text[start + 1 : end] + text[end + 1 :], (start, end - 1)


@dataclass(frozen=True)
class Window:
    """Tokens ``[start, end)`` of a document read as one input, and its chunks' token spans within the window."""

    start: int
    end: int
    chunks: tuple[int, ...]  # indices into the document's chunks
    spans: tuple[Span, ...]  # token spans relative to ``start``, one per chunk
    truncated: bool  # a chunk was longer than the window and was cut


def check_spans(spans: Sequence[Sequence[int]], text: str, document: int) -> list[Span]:
    """``spans`` as ``(start, end)`` character pairs within ``text``, or an InputError naming the document and
    chunk: for a span outside it, empty, or over white space only (no token of its own to pool)."""
    length = len(text)
    if isinstance(spans, (str, bytes)) or not isinstance(spans, Sequence):
        raise InputError(f"spans[{document}] must be a list of (start, end) pairs, got {type(spans).__name__}")
    out = []
    for i, span in enumerate(spans):
        if not (isinstance(span, Sequence) and len(span) == 2 and all(type(x) is int for x in span)):
            raise InputError(f"spans[{document}][{i}] must be a (start, end) pair of ints, got {span!r:.60}")
        start, end = span
        if not 0 <= start < end <= length:
            raise InputError(
                f"spans[{document}][{i}] = {tuple(span)} is not a non-empty span of documents[{document}] "
                f"({length} characters)"
            )
        if not text[start:end].strip():
            raise InputError(f"spans[{document}][{i}] = {tuple(span)} holds only white space: nothing to embed")
        out.append((start, end))
    return out


def find_spans(document: str, chunks: Sequence[str]) -> list[Span]:
    """The character span of each chunk in ``document``, each searched for after the previous one's start (as
    splitters emit them, in order, possibly overlapping, each starting after the one before); an InputError names a
    chunk that is not there, such as a repeated chunk that the document holds once."""
    spans, position = [], 0
    for i, chunk in enumerate(chunks):
        start = document.find(chunk, position) if chunk else -1
        if start < 0:
            raise InputError(f"chunks[{i}] is not found in the document from character {position}: {chunk!r:.60}")
        spans.append((start, start + len(chunk)))
        position = start + 1
    return spans


def token_spans(offsets: Sequence[Span], spans: Sequence[Span], document: int) -> list[Span]:
    """Each character span as the tokens it overlaps, ``[first, last + 1)``, from the tokens' character offsets;
    an InputError names a chunk that holds no token (only white space the tokenizer folds into a neighbour)."""
    starts, ends = [offset[0] for offset in offsets], [offset[1] for offset in offsets]  # both non-decreasing
    out = []
    for i, (start, end) in enumerate(spans):
        first = bisect.bisect_right(ends, start)  # the first token that ends after the span starts
        last = max(first, bisect.bisect_left(starts, end))  # the first that starts at or after its end
        if last == first:
            raise InputError(f"spans[{document}][{i}] = {(start, end)} covers no token of documents[{document}]")
        out.append((first, last))
    return out


def plan_windows(spans: Sequence[Span], n_tokens: int, budget: int | None) -> list[Window]:
    """Windows of at most ``budget`` tokens (None: the whole document) covering every chunk's token span.

    A window starts at the first chunk not yet placed (in order of start) and reaches ``budget`` tokens further or
    to the document's end; it holds every chunk that ends inside it. A chunk longer than ``budget`` gets a window
    of its own, cut to its first ``budget`` tokens.
    """
    if budget is None or n_tokens <= budget:
        return [Window(0, n_tokens, tuple(range(len(spans))), tuple(spans), False)]
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    windows: list[Window] = []
    k = 0
    while k < len(order):
        start = spans[order[k]][0]
        end = min(start + budget, n_tokens)
        held = [order[k]]
        k += 1
        while k < len(order) and spans[order[k]][1] <= end:
            held.append(order[k])
            k += 1
        cut = spans[held[0]][1] > end
        windows.append(
            Window(
                start,
                end,
                tuple(held),
                tuple((spans[i][0] - start, min(spans[i][1], end) - start) for i in held),
                cut,
            )
        )
    return windows

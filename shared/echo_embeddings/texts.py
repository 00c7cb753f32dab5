"""Checking the texts handed to an encoder: every item a str, reported by index otherwise. No torch."""

from __future__ import annotations

from collections.abc import Sequence


def check_texts(texts: Sequence[str]) -> list[str]:
    """``texts`` as a list, or a TypeError naming the first item that is not a str (by index and type)."""
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"texts must be a list of strings, not a single {type(texts).__name__}: wrap it in a list")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str: {text!r:.80}")
    return texts

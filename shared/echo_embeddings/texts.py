"""Checking the texts handed to an encoder or an adapter: every item a str, reported by index otherwise. No torch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from typing import Any


def check_texts(texts: object) -> list[str]:
    """``texts`` as a list, or a TypeError: for anything but an ordered sequence, or naming the first item that is
    not a str (by index and type).

    Lists, tuples and other sequences are taken, and arrays and Series (anything with ``tolist``). A dict (it would
    give its keys), a set (no order), an iterator, None or a number are refused.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"texts must be a list of strings, not a single {type(texts).__name__}: wrap it in a list")
    texts = _as_list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{i}] is {type(text).__name__}, expected str: {text!r:.80}")
    return texts


def single_text(text: Any, *, role: str = "query") -> list[str]:
    """``[text]`` for a single text that is a str, else a TypeError naming its role and type."""
    if not isinstance(text, str):
        raise TypeError(f"the {role} is {type(text).__name__}, expected str: {text!r:.80}")
    return [text]


def _as_list(texts: Any) -> list[Any]:
    if isinstance(texts, (Mapping, Set)) or not (isinstance(texts, Sequence) or hasattr(texts, "tolist")):
        raise TypeError(f"texts must be a sequence of str (a list or tuple), got {type(texts).__name__}")
    return texts.tolist() if hasattr(texts, "tolist") else list(texts)

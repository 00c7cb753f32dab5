"""Named query instructions: the general one the default model's queries carry, and the tasks it was trained on.

A name given as a ``query_instruction`` or ``document_instruction`` setting (``query_instruction="scifact"``, on
every surface, and the command line's ``--instruction``) reads as its text here; any other string is the
instruction itself, and a single word that names none warns (a misspelt name would otherwise be read as a one-word
instruction). A per-call instruction in Python (``encode(..., instruction=...)``, a sentence-transformers prompt)
is taken as written.
"""

from __future__ import annotations

import difflib
import warnings

GENERAL_INSTRUCTION = "Given a question, retrieve passages that answer it"

INSTRUCTIONS: dict[str, str] = {
    "general": GENERAL_INSTRUCTION,
    "scifact": "Given a scientific claim, retrieve documents that support or refute the claim",
    "sts": "Retrieve semantically similar text",
    "nli": "Given a premise, retrieve a hypothesis that is entailed by the premise",
    "banking77": "Given an online banking query, retrieve queries with the same intent",
}
"""Instruction by name: ``general`` for any retrieval, and one per task of the training recipe (E5's wording)."""


def resolve_instruction(value: str | None) -> str | None:
    """The text of a named instruction; any other value as it is, with a warning for a single word that is no
    name."""
    if value is None or value in INSTRUCTIONS:
        return INSTRUCTIONS.get(value) if value is not None else None
    if value and len(value.split()) == 1:
        close = difflib.get_close_matches(value, INSTRUCTIONS, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        warnings.warn(
            f"instruction {value!r} names no instruction ({hint}names: {', '.join(INSTRUCTIONS)}); it is read as the "
            "instruction's text",
            UserWarning,
            stacklevel=2,
        )
    return value

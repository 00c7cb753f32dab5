"""Named query instructions: the general one the default model's queries carry, and the tasks it was trained on.

A name given as a ``query_instruction`` or ``document_instruction`` setting (``query_instruction="scifact"``, on
every surface) reads as its text here; any other string is the instruction itself. A per-call instruction
(``encode(..., instruction=...)``, a sentence-transformers prompt) is taken as written.
"""

from __future__ import annotations

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
    """The text of a named instruction; any other value as it is."""
    return INSTRUCTIONS.get(value, value) if value is not None else None

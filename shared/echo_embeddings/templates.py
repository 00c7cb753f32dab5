"""Templates: the prompt a text is placed in, and which part of it is pooled.

A template is data. Each of its two patterns (query and document) is a string of literal text and slots:

- ``{text}``: the input text. Write it twice for an echo template.
- ``{instruction}``: the instruction (e.g. a retrieval task description). Never pooled.
- ``{eos}``: the model's own end-of-sequence token.
- ``*`` after a slot name marks it pooled: ``{text*}``, ``{eos*}``. Pooled slots must be adjacent.
  With no ``*`` anywhere, the last ``{text}`` is pooled.
- ``{{`` and ``}}`` are literal braces.

So ``"Rewrite the following sentence: {text}\\nThe rewritten sentence: {text}"`` pools the second copy.
Pure data: no tokenizer, no torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, cast, get_args

PoolingName = Literal["mean", "last", "mean-last", "mean+last"]
"""``mean`` over the pooled span, ``last`` the input's final token, ``mean-last`` the mean over both, ``mean+last``
the sum of the two, each unit-length (the last two for an echo template ending in a summary cue such as
``in one word:"``)."""
SlotName = Literal["text", "instruction", "eos"]
SLOT_NAMES: tuple[str, ...] = ("text", "instruction", "eos")

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@dataclass(frozen=True)
class Slot:
    """A place in a pattern filled at encoding time."""

    name: SlotName
    pooled: bool = False


Piece = str | Slot


@dataclass(frozen=True)
class Pattern:
    """One prompt form: literal strings and slots, with exactly one pooled ``{text}`` slot."""

    pieces: tuple[Piece, ...]

    @classmethod
    def parse(cls, source: str) -> Pattern:
        """Parse the template syntax described in this module's docstring."""
        if not isinstance(source, str):
            raise TypeError(f"a template pattern must be a str, got {type(source).__name__}")
        pieces: list[Piece] = []
        literal: list[str] = []
        pos = 0
        for match in _TOKEN.finditer(source):
            literal.append(source[pos : match.start()])
            pos = match.end()
            token = match.group(0)
            if token in ("{{", "}}"):
                literal.append(token[0])
                continue
            if match.group(1) is None:
                raise ValueError(
                    f"unbalanced {token!r} at position {match.start()} in template {source!r} "
                    "(write '{{' or '}}' for a literal brace)"
                )
            name = match.group(1).strip()
            pooled = name.endswith("*")
            name = name.rstrip("*").strip()
            if name not in SLOT_NAMES:
                raise ValueError(
                    f"unknown slot {{{match.group(1)}}} in template {source!r}; "
                    f"slots are {', '.join('{' + n + '}' for n in SLOT_NAMES)}"
                )
            if name == "instruction" and pooled:
                raise ValueError(f"the instruction slot cannot be pooled, in template {source!r}")
            if literal:
                pieces.append("".join(literal))
                literal = []
            pieces.append(Slot(name, pooled))  # type: ignore[arg-type]
        literal.append(source[pos:])
        if "".join(literal):
            pieces.append("".join(literal))
        pieces = [p for p in pieces if p != ""]
        return cls(_mark_pooled(tuple(pieces), source))

    @property
    def pooled_range(self) -> tuple[int, int]:
        """``(first, last + 1)`` piece indices of the pooled slots."""
        pooled = [i for i, p in enumerate(self.pieces) if isinstance(p, Slot) and p.pooled]
        return pooled[0], pooled[-1] + 1

    def count(self, name: SlotName) -> int:
        """How many times the slot ``name`` appears."""
        return sum(1 for p in self.pieces if isinstance(p, Slot) and p.name == name)

    def __str__(self) -> str:
        out = []
        for p in self.pieces:
            if isinstance(p, Slot):
                out.append("{" + p.name + ("*" if p.pooled else "") + "}")
            else:
                out.append(p.replace("{", "{{").replace("}", "}}"))
        return "".join(out)


def _mark_pooled(pieces: tuple[Piece, ...], source: str) -> tuple[Piece, ...]:
    texts = [i for i, p in enumerate(pieces) if isinstance(p, Slot) and p.name == "text"]
    if not texts:
        raise ValueError(f"template {source!r} has no {{text}} slot")
    pooled = [i for i, p in enumerate(pieces) if isinstance(p, Slot) and p.pooled]
    if not pooled:
        last = texts[-1]
        return pieces[:last] + (Slot("text", pooled=True),) + pieces[last + 1 :]
    pooled_texts = [i for i in pooled if pieces[i].name == "text"]  # type: ignore[union-attr]
    if len(pooled_texts) != 1:
        raise ValueError(f"template {source!r} must pool exactly one {{text}} slot, it pools {len(pooled_texts)}")
    if pooled != list(range(pooled[0], pooled[-1] + 1)):
        raise ValueError(f"the pooled slots of template {source!r} must be adjacent")
    return pieces


@dataclass(frozen=True)
class Template:
    """A named pair of patterns: ``query`` for queries, ``document`` for everything else.

    ``instruction`` fills the ``{instruction}`` slot when the caller gives none. ``pooling`` is how the template
    is meant to be read (see ``PoolingName``).
    """

    name: str
    document: Pattern
    query: Pattern
    instruction: str | None = None
    pooling: PoolingName = "mean"
    description: str = field(default="", compare=False)

    @classmethod
    def from_patterns(
        cls,
        document: str,
        query: str | None = None,
        *,
        name: str = "custom",
        instruction: str | None = None,
        pooling: PoolingName = "mean",
        description: str = "",
    ) -> Template:
        """Build a template from pattern strings; the query form defaults to the document form."""
        if pooling not in get_args(PoolingName):
            raise ValueError(f"unknown pooling {pooling!r} for template {name!r}: use one of {get_args(PoolingName)}")
        doc = Pattern.parse(document)
        query_pattern = Pattern.parse(query) if query is not None else doc
        return cls(name, doc, query_pattern, instruction, pooling, description)

    def pattern(self, query: bool) -> Pattern:
        """The query or the document pattern."""
        return self.query if query else self.document


TemplateLike = str | Template | Mapping[str, str]

TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template.from_patterns(
            "Rewrite the following sentence: {text}\nThe rewritten sentence: {text}",
            name="echo",
            description="Echo embeddings, the paper's zero-shot sentence prompt (Section 3).",
        ),
        Template.from_patterns(
            "Rewrite the following paragraph: {text}. The rewritten paragraph: {text}",
            name="echo-paragraph",
            description="Echo embeddings, the paper v2 zero-shot MTEB prompt.",
        ),
        Template.from_patterns(
            "Rewrite the following sentence: {text}\nThe rewritten sentence: {text}\nCategorize the rewritten "
            'sentence in one word:"',
            name="echo-categorize",
            pooling="mean+last",
            description=(
                "Echo, then a PromptEOL-style one-word cue: the second copy's mean and the cue's final state, each "
                "unit-length, summed. Chosen on development data (README, Ablations). Default."
            ),
        ),
        Template.from_patterns(
            "Write a sentence: {text}",
            name="classical",
            description="Classical embeddings: the text once, mean over it. The paper's baseline.",
        ),
        Template.from_patterns(
            "Document: {text}\nDocument again: {text*}{eos*}",
            "Instruct: {instruction}\nQuery: {text}\nQuery again: {text*}{eos*}",
            name="echo-instruct",
            instruction="Retrieve semantically similar text",
            description=(
                "The format of the fine-tuned jspringer/echo-mistral-7b-instruct-* checkpoints: "
                "second copy plus EOS pooled (pooling='last' for -lasttoken)."
            ),
        ),
        Template.from_patterns(
            'This sentence : "{text}" means in one word:"',
            name="prompteol",
            pooling="last",
            description="PromptEOL (Jiang et al. 2023): the final token's state. A peer baseline, not echo.",
        ),
    )
}


def resolve_template(spec: TemplateLike) -> Template:
    """A preset name, a pattern string, a ``{"query": ..., "document": ...}`` mapping, or a Template."""
    if isinstance(spec, Template):
        return spec
    if isinstance(spec, str):
        if "{" in spec:
            return Template.from_patterns(spec)
        if spec in TEMPLATES:
            return TEMPLATES[spec]
        raise ValueError(
            f"unknown template {spec!r}: use one of {', '.join(TEMPLATES)} or a pattern string with a {{text}} slot"
        )
    if isinstance(spec, Mapping):
        unknown = set(spec) - {"document", "query", "instruction", "pooling", "name"}
        if unknown or "document" not in spec:
            raise ValueError(
                "a template mapping needs 'document' and may have 'query', 'instruction', 'pooling', 'name'; "
                f"got keys {sorted(spec)}"
            )
        return Template.from_patterns(
            spec["document"],
            spec.get("query"),
            name=spec.get("name", "custom"),
            instruction=spec.get("instruction"),
            pooling=cast(PoolingName, spec.get("pooling", "mean")),  # checked there
        )
    raise TypeError(f"template must be a name, a pattern string, a mapping or a Template, got {type(spec).__name__}")


def template_spec(template: Template) -> str | dict[str, str]:
    """A JSON-able form of ``template`` that [resolve_template][] turns back into an equal Template."""
    if TEMPLATES.get(template.name) == template:
        return template.name
    spec = {"name": template.name, "document": str(template.document), "query": str(template.query)}
    if template.instruction is not None:
        spec["instruction"] = template.instruction
    if template.pooling != "mean":
        spec["pooling"] = template.pooling
    return spec

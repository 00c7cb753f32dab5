"""The template syntax and the named presets (pure data, no model)."""

import pytest

from echo_embeddings import TEMPLATES, Pattern, Template
from echo_embeddings.templates import Slot, resolve_template


def test_echo_pools_the_second_copy():
    pattern = TEMPLATES["echo"].document
    assert pattern.pieces == (
        "Rewrite the following sentence: ",
        Slot("text"),
        "\nThe rewritten sentence: ",
        Slot("text", pooled=True),
    )
    assert TEMPLATES["echo"].query == pattern


def test_presets_match_the_paper():
    assert str(TEMPLATES["echo-paragraph"].document) == (
        "Rewrite the following paragraph: {text}. The rewritten paragraph: {text*}"
    )
    assert str(TEMPLATES["classical"].document) == "Write a sentence: {text*}"
    instruct = TEMPLATES["echo-instruct"]
    assert str(instruct.query) == "Instruct: {instruction}\nQuery: {text}\nQuery again: {text*}{eos*}"
    assert str(instruct.document) == "Document: {text}\nDocument again: {text*}{eos*}"


@pytest.mark.parametrize(
    "source",
    ["A {text} B {text*}", "{{literal}} {text}", "Q: {instruction} {text} again {text*}{eos*}", "x{text}"],
)
def test_round_trip(source):
    pattern = Pattern.parse(source)
    assert Pattern.parse(str(pattern)) == pattern


def test_escaped_braces_are_literal():
    pattern = Pattern.parse("{{x}}: {text}")
    assert pattern.pieces == ("{x}: ", Slot("text", pooled=True))


def test_explicit_mark_overrides_last_copy():
    pattern = Pattern.parse("{text*} and again {text}")
    assert pattern.pieces[0] == Slot("text", pooled=True)
    assert pattern.pieces[2] == Slot("text", pooled=False)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("no slot here", "no {text} slot"),
        ("{txt}", "unknown slot {txt}"),
        ("{text} }", "unbalanced '}'"),
        ("{ {text}", "unbalanced '{'"),
        ("{text*} {text*}", "exactly one {text}"),
        ("{text*} gap {eos*}", "adjacent"),
        ("{instruction*} {text}", "instruction slot cannot be pooled"),
    ],
)
def test_bad_patterns_are_named(source, message):
    with pytest.raises(ValueError, match=message.replace("{", r"\{").replace("}", r"\}").replace("*", r"\*")) as err:
        Pattern.parse(source)
    assert repr(source) in str(err.value) or source in str(err.value)


def test_resolve():
    assert resolve_template("echo") is TEMPLATES["echo"]
    custom = resolve_template("Say: {text} again: {text}")
    assert custom.name == "custom" and custom.query == custom.document
    mapped = resolve_template({"document": "D: {text}", "query": "Q: {instruction} {text}", "instruction": "find"})
    assert mapped.instruction == "find" and mapped.query.count("instruction") == 1
    assert isinstance(mapped, Template)
    with pytest.raises(ValueError, match="unknown template 'ecco'"):
        resolve_template("ecco")
    with pytest.raises(ValueError, match="needs 'document'"):
        resolve_template({"query": "{text}"})
    with pytest.raises(TypeError, match="got int"):
        resolve_template(3)


def test_prompteol_reads_the_final_token():
    prompteol = TEMPLATES["prompteol"]
    assert prompteol.pooling == "last"
    assert all(t.pooling == "mean" for n, t in TEMPLATES.items() if n not in ("prompteol", "echo-categorize"))
    with pytest.raises(ValueError, match="unknown pooling 'max'"):
        resolve_template({"document": "{text}", "pooling": "max"})


@pytest.mark.parametrize(
    "spec",
    [*TEMPLATES, {"document": "D: {text} {text}", "query": "Q: {instruction} {text}", "instruction": "i", "name": "n"},
     {"document": "Say {text} in a word:", "pooling": "last"}],
)  # fmt: skip
def test_template_spec_round_trip(spec):
    from echo_embeddings.templates import template_spec

    template = resolve_template(spec)
    assert resolve_template(template_spec(template)) == template


def test_echo_categorize_is_the_candidate_the_ablations_chose():
    from echo_embeddings.evaluation.ablations import SUMMARY_CANDIDATES

    pattern, pooling = SUMMARY_CANDIDATES["echo-categorize/mean+last"]
    assert TEMPLATES["echo-categorize"].document == resolve_template(pattern).document
    assert TEMPLATES["echo-categorize"].pooling == pooling == "mean+last"
    assert str(TEMPLATES["echo-categorize"].document).endswith(
        '{text*}\nCategorize the rewritten sentence in one word:"'
    )

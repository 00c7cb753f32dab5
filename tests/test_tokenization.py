"""Which tokens are pooled: exactly the second copy, both copies identical, for BPE and SentencePiece tokenizers."""

import pytest

from echo_embeddings import TEMPLATES
from echo_embeddings.tokenization import TemplateTokenizer

TEXTS = [
    "A man is playing a guitar.",
    "Braces {text} and {{ }} and {instruction*} stay text",
    "Tabs\tand\nnewlines\x00 and control \x07 chars",
    "Emoji 🙂🚀 and accents: déjà vu, naïve café",
    " leading and trailing spaces ",
]


@pytest.fixture(params=["smollm", "sentencepiece"])
def tokenizer(request, smollm_tokenizer, sp_tokenizer):
    return {"smollm": smollm_tokenizer, "sentencepiece": sp_tokenizer}[request.param]


def plain_ids(tokenizer, text):
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def find_copies(ids, copy):
    """Start positions where ``copy`` occurs in ``ids``."""
    n = len(copy)
    return [i for i in range(len(ids) - n + 1) if ids[i : i + n] == copy]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("name", ["echo", "echo-paragraph"])
def test_pooled_span_is_the_second_copy(tokenizer, name, text):
    encoder = TemplateTokenizer(tokenizer, TEMPLATES[name], max_length=512)
    (item,) = encoder([text])
    ids = item.input_ids
    copy = ids[item.pool_start : item.pool_end]
    assert copy, "the pooled span is empty"
    # The pooled copy is the text: decoding it gives the text back (up to the space moved in front of it).
    assert tokenizer.decode(copy).strip() == tokenizer.decode(plain_ids(tokenizer, text)).strip()
    # Both copies carry identical ids, and the pooled one is the second.
    starts = find_copies(ids, copy)
    assert len(starts) >= 2 and starts[-1] == item.pool_start
    first = starts[0]
    assert first + len(copy) <= item.pool_start
    # Neither the BOS, nor the prompt, nor the first copy is pooled; what is left is the template's literal text.
    prompt = ids[:first] + ids[first + len(copy) : item.pool_start] + ids[item.pool_end :]
    literals = "".join(p for p in TEMPLATES[name].document.pieces if isinstance(p, str))
    assert "".join(tokenizer.decode(prompt, skip_special_tokens=True).split()) == "".join(literals.split())


def test_bos_exactly_when_the_tokenizer_adds_it(smollm_tokenizer, sp_tokenizer):
    smollm = TemplateTokenizer(smollm_tokenizer, TEMPLATES["echo"], 512)(["hello"])[0]
    assert smollm_tokenizer.bos_token_id not in smollm.input_ids  # SmolLM2's tokenizer adds none
    sp = TemplateTokenizer(sp_tokenizer, TEMPLATES["echo"], 512)(["hello"])[0]
    assert sp_tokenizer("hello")["input_ids"][0] == sp_tokenizer.bos_token_id
    assert sp.input_ids[0] == sp_tokenizer.bos_token_id
    assert sp.input_ids.count(sp_tokenizer.bos_token_id) == 1
    assert sp.pool_start > 0


@pytest.mark.parametrize("text", TEXTS[:2])
def test_bpe_splice_equals_tokenizing_the_whole_prompt(smollm_tokenizer, text):
    """For byte-level BPE the spliced ids are what the tokenizer gives for the rendered prompt: no odd token seams."""
    (item,) = TemplateTokenizer(smollm_tokenizer, TEMPLATES["echo"], 512)([text])
    rendered = f"Rewrite the following sentence: {text}\nThe rewritten sentence: {text}"
    assert item.input_ids == plain_ids(smollm_tokenizer, rendered)


def test_truncation_keeps_copies_identical_and_fits(tokenizer):
    text = " ".join(f"word{i}" for i in range(400))
    encoder = TemplateTokenizer(tokenizer, TEMPLATES["echo"], max_length=64)
    long_item, short_item = encoder([text, "short text"])
    assert long_item.truncated and not short_item.truncated
    assert len(long_item.input_ids) <= 64
    copy = long_item.input_ids[long_item.pool_start : long_item.pool_end]
    assert len(find_copies(long_item.input_ids, copy)) == 2
    # The head of the text is kept.
    full = encoder([text])[0]
    assert copy == full.input_ids[full.pool_start : full.pool_start + len(copy)]
    assert long_item.pool_end == len(long_item.input_ids)


def test_max_length_too_small_for_the_template(smollm_tokenizer):
    with pytest.raises(ValueError, match="max_length=8 leaves no room"):
        TemplateTokenizer(smollm_tokenizer, TEMPLATES["echo"], max_length=8)


def test_echo_instruct_pools_copy_and_eos(tokenizer):
    encoder = TemplateTokenizer(tokenizer, TEMPLATES["echo-instruct"], 512)
    doc = encoder(["cats purr"])[0]
    query = encoder(["cats purr"], query=True, instruction="Find documents about pets")[0]
    for item in (doc, query):
        pooled = item.input_ids[item.pool_start : item.pool_end]
        assert pooled[-1] == tokenizer.eos_token_id and item.pool_end == len(item.input_ids)
        assert len(find_copies(item.input_ids, pooled[:-1])) == 2
    assert "Find documents about pets" in tokenizer.decode(query.input_ids)
    assert "Find documents" not in tokenizer.decode(query.input_ids[query.pool_start :])
    default = encoder(["cats purr"], query=True)[0]
    assert TEMPLATES["echo-instruct"].instruction in tokenizer.decode(default.input_ids)


def test_instruction_without_slot_leads_the_prompt(smollm_tokenizer):
    encoder = TemplateTokenizer(smollm_tokenizer, TEMPLATES["echo"], 512)
    plain = encoder(["cats purr"], query=True)[0]
    led = encoder(["cats purr"], query=True, instruction="Represent this query: ")[0]
    assert smollm_tokenizer.decode(led.input_ids).startswith("Represent this query: Rewrite")
    assert led.input_ids[led.pool_start : led.pool_end] == plain.input_ids[plain.pool_start : plain.pool_end]


def test_empty_text_pools_the_eos_token(tokenizer):
    (item,) = TemplateTokenizer(tokenizer, TEMPLATES["echo"], 512)([""])
    assert item.input_ids[item.pool_start : item.pool_end] == [tokenizer.eos_token_id]

"""EchoEncoder on a tiny random Llama: pooling positions, batching, order, bad input, threads."""

import random
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

from echo_embeddings import EchoEncoder, TruncationWarning, load_model
from echo_embeddings.errors import ConfigError, ModelError

from .conftest import DEVICE, stsb_sentences

FP32_NOISE = 1e-5
"""Absolute tolerance between two fp32 computation orders of the same values (hidden states are O(1))."""


def cos(a, b):
    return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))


def test_mean_over_second_copy_matches_a_manual_forward(tiny_encoder):
    raw = tiny_encoder.with_settings(normalize=False)
    text = "A man is playing a guitar."
    tok = raw.tokenizer
    text_ids = tok(text, add_special_tokens=False)["input_ids"]
    head = tok("Rewrite the following sentence:")["input_ids"]  # with the tokenizer's own BOS
    middle = tok("\nThe rewritten sentence:", add_special_tokens=False)["input_ids"]
    ids = head + text_ids + middle + text_ids
    with torch.inference_mode():
        hidden = raw.model(input_ids=torch.tensor([ids], device=raw.device)).last_hidden_state[0].float()
    expected = hidden[-len(text_ids) :].mean(0).cpu().numpy()
    np.testing.assert_allclose(raw.encode([text])[0], expected, rtol=1e-5, atol=FP32_NOISE)


def test_prompteol_pools_the_final_prompt_token(tiny_encoder):
    prompteol = tiny_encoder.with_settings(template="prompteol", normalize=False)
    assert prompteol.pooling == "last"
    (item,) = prompteol.template_tokenizer(["hello there"])
    with torch.inference_mode():
        hidden = (
            prompteol.model(input_ids=torch.tensor([item.input_ids], device=prompteol.device))
            .last_hidden_state[0]
            .float()
        )
    assert item.pool_end < len(item.input_ids)  # the pooled text is not the end of the prompt
    np.testing.assert_allclose(
        prompteol.encode(["hello there"])[0], hidden[-1].cpu().numpy(), rtol=1e-5, atol=FP32_NOISE
    )


def test_last_pooling_takes_the_final_pooled_token(tiny_encoder):
    last = tiny_encoder.with_settings(pooling="last", normalize=False)
    items = last.template_tokenizer(["hello there"])
    with torch.inference_mode():
        hidden = (
            last.model(input_ids=torch.tensor([items[0].input_ids], device=last.device)).last_hidden_state[0].float()
        )
    expected = hidden[items[0].pool_end - 1].cpu().numpy()
    np.testing.assert_allclose(last.encode(["hello there"])[0], expected, rtol=1e-5, atol=FP32_NOISE)


def test_mean_last_pools_the_span_and_the_final_token_together(tiny_encoder):
    summary = 'Rewrite the following sentence: {text}\nThe rewritten sentence: {text}\nIn one word:"'
    both = tiny_encoder.with_settings(template=summary, pooling="mean-last", normalize=False)
    texts = ["hello there", "a much longer second text to pad the first one"]  # right padding in the batch
    items = both.template_tokenizer(texts)
    vectors = both.encode(texts)
    for item, vector in zip(items, vectors, strict=True):
        with torch.inference_mode():
            ids = torch.tensor([item.input_ids], device=both.device)
            hidden = both.model(input_ids=ids).last_hidden_state[0].float()
        rows = [*range(item.pool_start, item.pool_end), len(item.input_ids) - 1]
        np.testing.assert_allclose(vector, hidden[rows].mean(0).cpu().numpy(), rtol=1e-5, atol=FP32_NOISE)


def test_mean_plus_last_adds_the_unit_span_mean_and_the_unit_final_state(tiny_encoder):
    both = tiny_encoder.with_settings(template="echo-categorize", normalize=False)
    assert both.pooling == "mean+last"
    texts = ["hello there", "a much longer second text to pad the first one"]  # right padding in the batch
    items = both.template_tokenizer(texts)
    vectors = both.encode(texts)
    for item, vector in zip(items, vectors, strict=True):
        with torch.inference_mode():
            hidden = (
                both.model(input_ids=torch.tensor([item.input_ids], device=both.device)).last_hidden_state[0].float()
            )
        mean, last = hidden[item.pool_start : item.pool_end].mean(0), hidden[-1]
        expected = (mean / mean.norm() + last / last.norm()).cpu().numpy()
        np.testing.assert_allclose(vector, expected, rtol=1e-5, atol=FP32_NOISE)


def test_bidirectional_attention_is_a_separate_model_that_sees_later_tokens(tiny_model_dir, tiny_encoder):
    texts = ["A man is playing a guitar.", "A cat"]
    before = tiny_encoder.encode(texts)
    both_ways = EchoEncoder.from_pretrained(
        str(tiny_model_dir), device=DEVICE, template="classical", attention="bidirectional", normalize=False
    )
    assert both_ways.model is not tiny_encoder.model
    np.testing.assert_array_equal(tiny_encoder.encode(texts), before)  # the causal model is untouched
    for item, vector in zip(both_ways.template_tokenizer(texts), both_ways.encode(texts), strict=True):
        ids = torch.tensor([item.input_ids], device=both_ways.device)
        with torch.inference_mode():
            hidden = both_ways.model(input_ids=ids).last_hidden_state[0].float()
            changed = ids.clone()
            changed[0, -1] = (changed[0, -1] + 1) % both_ways.model.config.vocab_size
            moved = both_ways.model(input_ids=changed).last_hidden_state[0].float()
        assert not torch.allclose(hidden[0], moved[0], atol=1e-4)  # the first token sees the last one
        expected = hidden[item.pool_start : item.pool_end].mean(0).cpu().numpy()
        np.testing.assert_allclose(vector, expected, rtol=1e-5, atol=FP32_NOISE)


def test_shape_dtype_and_norm(tiny_encoder):
    out = tiny_encoder.encode(["one", "two", "three"])
    assert out.shape == (3, tiny_encoder.dim) and out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=FP32_NOISE)
    empty = tiny_encoder.encode([])
    assert empty.shape == (0, tiny_encoder.dim) and empty.dtype == np.float32


def test_batch_invariance_and_order(tiny_encoder):
    texts = stsb_sentences(40)
    alone = np.stack([tiny_encoder.encode([t])[0] for t in texts[:8]])
    together = tiny_encoder.encode(texts, batch_size=7)
    for a, b in zip(alone, together[:8], strict=False):
        assert cos(a, b) >= 0.9999
    order = list(range(len(texts)))
    random.Random(0).shuffle(order)
    shuffled = tiny_encoder.encode([texts[i] for i in order], batch_size=5)
    for row, i in enumerate(order):
        assert cos(shuffled[row], together[i]) >= 0.9999


def test_duplicates_get_identical_rows(tiny_encoder):
    out = tiny_encoder.encode(["same", "other", "same"])
    np.testing.assert_allclose(out[0], out[2], atol=FP32_NOISE)


def test_queries_and_documents(tiny_encoder):
    instruct = tiny_encoder.with_settings(template="echo-instruct")
    docs = instruct.encode_documents(["cats purr"])
    queries = instruct.encode_queries(["cats purr"])
    other = instruct.encode_queries(["cats purr"], instruction="Find pet facts")
    assert cos(docs[0], queries[0]) < 0.9999 and cos(queries[0], other[0]) < 0.9999
    # Exact: encode is encode_documents, so the same ids go through the same batch shapes and kernels.
    np.testing.assert_array_equal(instruct.encode(["cats purr"]), docs)


def test_non_strings_are_named(tiny_encoder):
    with pytest.raises(TypeError, match=r"texts\[2\] is int"):
        tiny_encoder.encode(["a", "b", 3])
    with pytest.raises(TypeError, match=r"texts\[0\] is NoneType"):
        tiny_encoder.encode([None])
    with pytest.raises(TypeError, match="not a single str"):
        tiny_encoder.encode("a sentence")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        tiny_encoder.encode(["a"], batch_size=0)


@pytest.mark.parametrize(
    "text",
    ["", " ", "   \n\t ", "{text}", "{{text}} {instruction} {eos*}", "\x00\x07\x1b[31m", "🙂" * 50, "x" * 100_000],
)
def test_odd_texts_embed_as_plain_text(tiny_encoder, text):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = tiny_encoder.encode([text, "normal text"])
        again = tiny_encoder.encode([text, "normal text"])
    assert np.isfinite(out).all()
    # Exact: the same inputs in the same batches run the same CPU kernels in the same order.
    np.testing.assert_array_equal(out, again)
    truncations = [w for w in caught if w.category is TruncationWarning]
    assert len(truncations) == (2 if len(text) > 10_000 else 0)


def test_template_markers_in_text_are_not_interpreted(tiny_encoder):
    marked, literal = tiny_encoder.encode(["{text}", "{ text }"])
    assert cos(marked, literal) < 0.9999
    items = tiny_encoder.template_tokenizer(["{text}"])
    pooled = items[0].input_ids[items[0].pool_start : items[0].pool_end]
    assert tiny_encoder.tokenizer.decode(pooled).strip() == "{text}"


def test_truncation_warns_once_with_the_count(tiny_encoder):
    short = tiny_encoder.with_settings(max_length=48)
    long = " ".join(["word"] * 200)
    with pytest.warns(TruncationWarning, match="2 of 3 texts") as caught:
        out = short.encode([long, "short", long + " more"])
    assert len([w for w in caught if issubclass(w.category, TruncationWarning)]) == 1
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out[0], out[2], atol=FP32_NOISE)  # identical once cut to the same head


def test_concurrent_calls_match_sequential(tiny_encoder):
    batches = [stsb_sentences(60)[i::4] for i in range(4)]
    sequential = [tiny_encoder.encode(b, batch_size=4) for b in batches]
    with ThreadPoolExecutor(4) as pool:
        concurrent = list(pool.map(lambda b: tiny_encoder.encode(b, batch_size=4), batches * 3))
    for i, out in enumerate(concurrent):
        np.testing.assert_allclose(out, sequential[i % 4], atol=FP32_NOISE)


def test_models_are_shared(tiny_model_dir, tiny_encoder):
    dtype = str(tiny_encoder.model.dtype).removeprefix("torch.")
    again = EchoEncoder.from_pretrained(str(tiny_model_dir), device=DEVICE, dtype=dtype, template="classical")
    assert again.model is tiny_encoder.model
    assert load_model(str(tiny_model_dir), device=DEVICE, dtype=dtype).model is tiny_encoder.model
    other = "bfloat16" if dtype == "float32" else "float32"
    assert load_model(str(tiny_model_dir), device=DEVICE, dtype=other).model is not tiny_encoder.model


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pooling": "max"}, "pooling: Input should be 'mean', 'last', 'mean-last' or 'mean\\+last' \\(got 'max'\\)"),
        ({"pooling": ""}, "pooling: Input should be 'mean', 'last', 'mean-last' or 'mean\\+last' \\(got ''\\)"),
        ({"template": "ecco"}, "template: unknown template 'ecco'"),
        ({"max_length": 0}, "max_length: Input should be greater than or equal to 1"),
        ({"max_length": 10**6}, "max_length must be at most 2048"),
        ({"max_length": 12}, "leaves no room"),
        ({"batch_size": True}, "batch_size: Input should be a valid integer"),
        ({"normalize": "yes"}, "normalize: Input should be a valid boolean"),
    ],
)
def test_bad_settings_fail_at_construction(tiny_encoder, kwargs, message):
    with pytest.raises(ConfigError, match=message):
        tiny_encoder.with_settings(**kwargs)


def test_bad_settings_fail_before_loading(tiny_encoder):
    with pytest.raises(ConfigError, match=r"model_kwargs\['device'\] is not passed to the model: use device="):
        EchoEncoder.from_pretrained("/nonexistent/model", model_kwargs={"device": "cpu"})
    with pytest.raises(ConfigError, match=r"\['model_name'\] choose which model is loaded"):
        tiny_encoder.with_settings(model_name="other")


def test_encode_options_are_keyword_only(tiny_encoder):
    with pytest.raises(TypeError, match="positional"):
        tiny_encoder.encode_queries(["a"], 64)
    with pytest.raises(ConfigError, match="batch_size must be a positive int, got True"):
        tiny_encoder.encode(["a"], batch_size=True)


def test_bfloat16_on_a_cpu_without_amx_warns_that_it_is_slower(tiny_model_dir, monkeypatch, caplog):
    """oneDNN capped at AVX2 stands for a CPU without bfloat16 matrix units, where bfloat16 runs several times slower
    than float32."""
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    with caplog.at_level("WARNING", logger="echo_embeddings.loading"):
        load_model(str(tiny_model_dir), device="cpu", dtype="float32", shared=False)
        assert not caplog.records
        load_model(str(tiny_model_dir), device="cpu", dtype="bfloat16", shared=False)
    assert [r.getMessage() for r in caplog.records] == [
        "dtype bfloat16 on a CPU without bfloat16 matrix units (AMX) is slower than float32 here"
    ]


def test_bad_dtype_and_missing_gguf():
    with pytest.raises(ValueError, match="unknown dtype 'float33'"):
        load_model("whatever", dtype="float33")
    with pytest.raises(ModelError, match="/nonexistent/nope.gguf: no such GGUF file"):
        load_model("/nonexistent/nope.gguf")


@pytest.mark.parametrize("architecture", ["gpt2", "qwen2", "gemma"])
def test_other_causal_lm_families(architecture, smollm_tokenizer, tmp_path):
    """Any causal LM loads through AutoModel; tokenizers without a pad token (GPT-2) still batch; each can drop its
    causal mask (attention="bidirectional")."""
    from transformers import AutoConfig, AutoModelForCausalLM

    sizes = {"gpt2": dict(n_embd=32, n_layer=2, n_head=2, n_positions=256)}.get(
        architecture,
        dict(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            num_key_value_heads=1,
            head_dim=16,
            max_position_embeddings=256,
        ),
    )
    config = AutoConfig.for_model(architecture, vocab_size=len(smollm_tokenizer), **sizes)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    smollm_tokenizer.save_pretrained(tmp_path)
    encoder = EchoEncoder.from_pretrained(str(tmp_path), device=DEVICE, max_length=256)
    texts = stsb_sentences(12)
    together = encoder.encode(texts, batch_size=5)
    assert together.shape == (12, 32) and np.isfinite(together).all()
    assert cos(together[3], encoder.encode([texts[3]])[0]) >= 0.9999
    both_ways = EchoEncoder.from_pretrained(str(tmp_path), device=DEVICE, max_length=256, attention="bidirectional")
    assert cos(both_ways.encode(texts[:2])[1], together[1]) < 0.9999  # it is not the causal model


@pytest.mark.parametrize(("template", "instruction"), [("echo", None), ("classical", None), ("echo-instruct", "Find")])
def test_shared_prefix_cache_matches_the_full_forward(tiny_encoder, template, instruction):
    """The template's prefix is computed once and reused; vectors equal a forward pass over whole sequences."""
    from echo_embeddings.collation import collate
    from echo_embeddings.pooling import pool

    encoder = tiny_encoder.with_settings(template=template, normalize=False)
    texts = stsb_sentences(10)
    assert len(encoder.template_tokenizer.shared_prefix(query=True, instruction=instruction)) > 3
    batch = collate(encoder.template_tokenizer(texts, query=True, instruction=instruction), pad_id=0)
    batch = {key: value.to(encoder.device) for key, value in batch.items()}
    with torch.inference_mode():
        hidden = encoder.model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]
        ).last_hidden_state.float()
    full = pool(hidden, batch["pool_mask"], batch["attention_mask"], "mean").cpu().numpy()
    cached = encoder.encode_queries(texts, instruction=instruction, batch_size=4)
    for a, b in zip(full, cached, strict=True):
        assert cos(a, b) >= 0.9999


def test_a_long_input_runs_alone_whole_and_unmasked_with_the_same_vector(tiny_encoder):
    """On a CPU an input of WHOLE_PASS_TOKENS or more gets a pass of its own, prefix included and no mask (so the
    attention's causal kernel skips the masked half); its vector equals the plain forward's, and the short inputs
    beside it keep theirs."""
    from echo_embeddings.prefix_cache import WHOLE_PASS_TOKENS

    texts = [" ".join(stsb_sentences(60)), *stsb_sentences(3)]
    items = tiny_encoder.template_tokenizer(texts)
    assert len(items[0].input_ids) >= WHOLE_PASS_TOKENS > max(len(item.input_ids) for item in items[1:])
    passes = []

    def record(module, args, kwargs):
        passes.append((kwargs["input_ids"].shape[1], kwargs.get("attention_mask")))

    hook = tiny_encoder.model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        got = tiny_encoder.encode(texts)
    finally:
        hook.remove()
    if tiny_encoder.device.type == "cpu":
        assert (len(items[0].input_ids), None) in passes  # the whole sequence, unmasked
    for item, vector in zip(items, got, strict=True):
        with torch.inference_mode():
            ids = torch.tensor([item.input_ids], device=tiny_encoder.device)
            hidden = tiny_encoder.model(input_ids=ids).last_hidden_state[0].float()
        expected = hidden[item.pool_start : item.pool_end].mean(0).cpu().numpy()
        assert cos(vector, expected) >= 0.9999


def test_streamed_chunks_give_the_same_vectors_in_order(tiny_encoder, monkeypatch):
    """encode tokenizes, sorts and batches CHUNK_TEXTS texts at a time (bounded memory on huge inputs)."""
    import echo_embeddings.encoder as encoder_module

    texts = stsb_sentences(30)
    whole = tiny_encoder.encode(texts)
    monkeypatch.setattr(encoder_module, "CHUNK_TEXTS", 7)
    chunked = tiny_encoder.encode(texts)
    for a, b in zip(whole, chunked, strict=True):
        assert cos(a, b) >= 0.9999


def test_batch_plans_cover_every_input_within_the_limits():
    from echo_embeddings.collation import plan_batches

    rng = random.Random(0)
    for _ in range(200):
        lengths = [rng.randint(1, 60) for _ in range(rng.randint(1, 9))]
        max_texts, max_tokens, alone_from = rng.randint(1, 5), rng.randint(30, 150), rng.randint(20, 70)
        batches = plan_batches(lengths, max_texts, max_tokens, alone_from=alone_from)
        assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
        order = [i for batch in batches for i in batch]
        assert [lengths[i] for i in order] == sorted(lengths, reverse=True)  # longest first
        for batch in batches:
            assert len(batch) <= max_texts and (len(batch) == 1 or len(batch) * lengths[batch[0]] <= max_tokens)
            assert len(batch) == 1 or lengths[batch[0]] < alone_from

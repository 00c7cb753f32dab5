"""Why echo works, as invariants that hold for any weights (tiny random model).

A causal LM's state at position i sees only tokens <= i. So with the classical template two texts sharing a prefix
get bit-identical states over that prefix, whatever follows; with echo, the second copy's states over the same
prefix have seen the whole first copy, so they differ when the endings differ.
"""

import torch

from echo_embeddings.collation import collate

PREFIX = "the cat sat on the mat"
TEXTS = [PREFIX + " and purred happily all afternoon", PREFIX + " then ran away from the barking dog"]


def pooled_states(encoder, template, texts):
    """The last-layer states over each text's pooled copy, and the number of shared leading tokens."""
    from echo_embeddings import TEMPLATES
    from echo_embeddings.tokenization import TemplateTokenizer

    items = TemplateTokenizer(encoder.tokenizer, TEMPLATES[template], 512)(texts)
    batch = {key: value.to(encoder.device) for key, value in collate(items, pad_id=0).items()}
    with torch.inference_mode():
        hidden = encoder.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    copies = [item.input_ids[item.pool_start : item.pool_end] for item in items]
    shared = next(i for i, (a, b) in enumerate(zip(*copies, strict=False)) if a != b)
    states = [hidden[row, item.pool_start : item.pool_end] for row, item in enumerate(items)]
    return states, shared


def test_classical_prefix_states_are_identical(tiny_encoder):
    (a, b), shared = pooled_states(tiny_encoder, "classical", TEXTS)
    assert shared >= 5
    assert torch.equal(a[:shared], b[:shared])
    assert not torch.equal(a[shared], b[shared])


def test_echo_prefix_states_see_the_ending(tiny_encoder):
    (a, b), shared = pooled_states(tiny_encoder, "echo", TEXTS)
    assert shared >= 5
    for i in range(shared):
        assert not torch.allclose(a[i], b[i], atol=1e-4), f"second-copy state {i} did not see the ending"

"""`echo-embeddings eval ablations` end to end on tiny random models and small slices of the real data: every
section is written, with the rows the paper's experiments need, and the candidate is chosen on development data."""

import json

import pytest

from echo_embeddings.cli import main
from echo_embeddings.evaluation.ablations import (
    CLASSICAL_WORDINGS,
    ECHO_WORDINGS,
    PROMPTEOL_WORDINGS,
    SECTIONS,
    SUMMARY_CANDIDATES,
    copies_template,
)
from echo_embeddings.templates import resolve_template

from .conftest import DATA, DEVICE, HERE

SMALL = ["--sts-pairs", "6", "--queries", "2", "--corpus-others", "3", "--per-intent", "1", "--test-queries", "2",
         "--test-corpus-others", "3", "--test-per-intent", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def other_model(sp_tokenizer_dir, tmp_path_factory):
    """A second, smaller tiny random Llama."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(sp_tokenizer_dir)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=2048, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    path = tmp_path_factory.mktemp("smaller_llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_every_section_in_one_run(tiny_model_dir, other_model, tmp_path, capsys):
    out = tmp_path / "ablations"
    argv = ["eval", "ablations", "--data", DATA, "--toy", HERE / "data" / "toy_triples.jsonl", "--model",
            tiny_model_dir, "--other-model", other_model, "--device", DEVICE, "--out", out, *SMALL]  # fmt: skip
    assert main([str(a) for a in argv]) == 0, capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    prompts = results["prompts"]
    assert [row["strategy"] for row in prompts] == ["echo"] * 8 + ["classical"] * 8 + ["prompteol"] * 8
    assert all(set(row["scores"]) == {"sts", "retrieval"} for row in prompts)
    assert {(row["copies"], row["pooled"]) for row in results["copies"]} == {
        (c, k) for c in range(1, 5) for k in [*range(1, c + 1), "last"]
    }
    assert all(set(row["scores"]) == {"sts"} for row in results["copies"])
    both_ways = {(row["label"], row["attention"]): row["scores"] for row in results["bidirectional"]}
    assert both_ways[("classical, causal", "causal")] != both_ways[("classical, bidirectional", "bidirectional")]
    first = {row["label"]: row["scores"] for row in prompts if row["label"] in ("echo-1", "classical-1")}
    assert both_ways[("echo, causal", "causal")] == first["echo-1"]  # the same arm, scored once and shared
    assert both_ways[("classical, causal", "causal")] == first["classical-1"]
    assert {row["structure"] for row in results["toy"]} >= {"all"}
    candidates = results["candidates"]
    assert set(candidates["dev"]) == {"echo", "prompteol", "classical", *SUMMARY_CANDIDATES}
    for name in candidates["beats_echo_and_prompteol_on_dev"]:  # chosen by the rule, on development scores
        for task in ("sts", "retrieval"):
            assert candidates["dev"][name]["scores"][task] > candidates["dev"]["echo"]["scores"][task]
            assert candidates["dev"][name]["scores"][task] > candidates["dev"]["prompteol"]["scores"][task]
    assert set(candidates["test"]) == {"echo", "prompteol", "classical", candidates["best"]}
    assert set(results["models"]) == {str(tiny_model_dir), str(other_model)}
    for name in ("echo", "classical", "prompteol"):
        assert set(results["models"][str(other_model)][name]["scores"]) == {"sts", "retrieval", "classification"}
    for name in ("results.md", "prompts.png", "copies.png", "models.png"):
        assert (out / name).stat().st_size > 0
    assert "## Prompt sensitivity" in (out / "results.md").read_text()
    assert [run["sections"] for run in results["runs"]] == [list(SECTIONS)]

    # A later run of some sections updates them and keeps the rest as measured.
    again = [*argv[: -len(SMALL)], "--sections", "candidates", *SMALL]
    assert main([str(a) for a in again]) == 0, capsys.readouterr().err
    updated = json.loads((out / "results.json").read_text())
    assert {key: updated[key] for key in ("prompts", "copies", "bidirectional", "toy")} == {
        key: results[key] for key in ("prompts", "copies", "bidirectional", "toy")
    }
    assert updated["models"][str(other_model)] == results["models"][str(other_model)]
    assert set(updated["models"][str(tiny_model_dir)]) == {"parameters", *updated["candidates"]["test"]}
    assert [run["sections"] for run in updated["runs"]] == [list(SECTIONS), ["candidates"]]
    assert "; then `" in (out / "results.md").read_text()


def test_sections_need_an_earlier_run_of_the_same_model_and_sizes(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "ablations"
    argv = ["eval", "ablations", "--data", DATA, "--toy", HERE / "data" / "toy_triples.jsonl", "--model",
            tiny_model_dir, "--device", DEVICE, "--out", out, "--sections", "toy", *SMALL]  # fmt: skip
    assert main([str(a) for a in argv]) == 2
    assert "results.json, which does not exist: run every section first" in capsys.readouterr().err
    out.mkdir()
    earlier = {"model": str(tiny_model_dir), "sizes": {"sts_pairs": 300}, "runs": []}
    (out / "results.json").write_text(json.dumps(earlier))
    assert main([str(a) for a in argv]) == 2
    assert "run every section, or the same model and sizes" in capsys.readouterr().err


def test_wordings_and_copies_are_valid_templates():
    for wording in (*ECHO_WORDINGS, *CLASSICAL_WORDINGS, *PROMPTEOL_WORDINGS):
        resolve_template(wording)
    assert len(set(ECHO_WORDINGS)) == len(set(CLASSICAL_WORDINGS)) == len(set(PROMPTEOL_WORDINGS)) == 8
    template = resolve_template(copies_template(3, 2))
    assert template.document.count("text") == 3
    pooled = template.document.pooled_range
    assert str(template.document).count("{text*}") == 1 and pooled[1] - pooled[0] == 1
    assert str(template.document).index("{text*}") < str(template.document).rindex("{text}")  # the middle copy

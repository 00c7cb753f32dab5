"""The paper's ablations on one model in one run, and echo + summary-token templates chosen on development data.

Sections (each a list of rows in ``results.json``):

- ``prompts``: prompt sensitivity, eight wordings each of echo (mean over the second copy), classical (mean) and
  PromptEOL (last token), as the paper's variance figures compare them.
- ``copies``: the text 1 to 4 times, pooling each copy in turn (mean), and the input's last token; on STS only, as
  four copies of a SciFact abstract do not fit the encoder's 512 tokens and truncation would decide the result.
- ``bidirectional``: the same model with its causal mask removed and no training (the paper's classical +
  bidirectional baseline), read with the classical and the echo template.
- ``toy``: the Section-3 triples by structure, classical vs echo, mean vs last.
- ``candidates``: echo + summary-token templates against echo and PromptEOL on the development sets; one that beats
  both on STS and on retrieval is chosen, then every finalist is scored on the test sets.
- ``models``: echo, classical and PromptEOL on the test sets for each further model (model size and family).

Development data only decides: STS-B dev, SciFact train queries (``qrels/train.tsv``) and Banking77 train (the
probe fit on each intent's first texts, scored on the next ones). Test sets are STS-B test, SciFact test and
Banking77 test. No reserved set is read.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

from ..encoder import EchoEncoder
from ..errors import ConfigError
from ..templates import PoolingName
from .ablation_plan import SECTIONS, Sizes
from .arm import Arm
from .classification import evaluate_classification
from .retrieval import evaluate_retrieval
from .sts import evaluate_sts
from .toy import evaluate_toy

ECHO_WORDINGS = (
    "Rewrite the following sentence: {text}\nThe rewritten sentence: {text}",
    "Rewrite the following paragraph: {text}. The rewritten paragraph: {text}",
    "Repeat the sentence: {text}\nThe sentence again: {text}",
    "Rephrase the query: {text}\nThe query rephrased: {text}",
    "Fill in the blank: {text}\nThe blanks filled in: {text}",
    "Rewrite the text: {text}\nThe sentence rewritten: {text}",
    "Rephrase the sentence: {text} Again: {text}",
    "Copy the sentence: {text}\nThe copy: {text}",
)
"""The paper's echo prompts (v1 App. B/C, v2 App. C/D; the randomized ones with plain separators)."""

CLASSICAL_WORDINGS = (
    "Write a sentence: {text}",
    "Write a paragraph: {text}",
    "{text}",
    "Sentence: {text}",
    "The sentence: {text}",
    "Rephrase the query: {text}",
    "Fill in the blank: {text}",
    "Rewrite the text: {text}",
)
"""The paper's classical prompts and the echo prompts' first halves: the text once, mean over it."""

PROMPTEOL_WORDINGS = (
    'This sentence : "{text}" means in one word:"',
    'This sentence : "{text}" means in a word:"',
    'Summarize the sentence "{text}" in one word:"',
    'Categorize the sentence "{text}" in one word:"',
    'Understand the sentence "{text}" in one word:"',
    'Analyze the sentence "{text}" in one word:"',
    'This text : "{text}" means in one word:"',
    'Summarize the text "{text}" in a word:"',
)
"""PromptEOL and the paper's variants of it ({Summarize/Categorize/Understand/Analyze} ... {in one word/in a word})."""

STRATEGIES: dict[str, tuple[tuple[str, ...], PoolingName]] = {
    "echo": (ECHO_WORDINGS, "mean"),
    "classical": (CLASSICAL_WORDINGS, "mean"),
    "prompteol": (PROMPTEOL_WORDINGS, "last"),
}

_ECHO = "Rewrite the following sentence: {text}\nThe rewritten sentence: {text}"
_ECHO_EOL = _ECHO + '\nThe rewritten sentence means in one word:"'
_EOL_ECHO = 'This sentence : "{text}"\nThis sentence again : "{text}" means in one word:"'
SUMMARY_CANDIDATES: dict[str, tuple[str, PoolingName]] = {
    "echo-eol/last": (_ECHO_EOL, "last"),
    "echo-eol/mean-last": (_ECHO_EOL, "mean-last"),
    "echo-eol/mean+last": (_ECHO_EOL, "mean+last"),
    "echo-categorize/mean+last": (_ECHO + '\nCategorize the rewritten sentence in one word:"', "mean+last"),
    "eol-echo/last": (_EOL_ECHO, "last"),
    "eol-echo/mean-last": (_EOL_ECHO, "mean-last"),
}
"""Echo followed by a summary cue, named template/pooling: the cue's last token alone, the mean over the second
copy and that token (mean-last), or the two each unit-length and summed (mean+last: equal weight)."""

REFERENCES: dict[str, tuple[str, PoolingName]] = {
    "echo": (_ECHO, "mean"),
    "prompteol": (PROMPTEOL_WORDINGS[0], "last"),
    "classical": (CLASSICAL_WORDINGS[0], "mean"),
}


def copies_template(copies: int, pooled: int) -> str:
    """The echo prompt with the text ``copies`` times, the ``pooled``-th copy (1-based) pooled."""
    slots = ["{text*}" if k == pooled else "{text}" for k in range(1, copies + 1)]
    return "Rewrite the following sentence: " + "".join(
        slot if k == 0 else f"\nThe rewritten sentence: {slot}" for k, slot in enumerate(slots)
    )


class Ablations:
    """Runs the sections on one loaded model; ``progress`` gets a line as each arm finishes."""

    def __init__(
        self, encoder: EchoEncoder, data: Path, sizes: Sizes, progress: Callable[[str], None] = lambda _: None
    ) -> None:
        self.encoder, self.data, self.sizes, self.progress = encoder, Path(data), sizes, progress
        self._dev_scores: dict[tuple, float] = {}

    def arm(self, template: str, pooling: PoolingName, encoder: EchoEncoder | None = None) -> Arm:
        return Arm((encoder or self.encoder).with_settings(template=template, pooling=pooling))

    def dev_arm(
        self,
        template: str,
        pooling: PoolingName,
        encoder: EchoEncoder | None = None,
        tasks: Sequence[str] = ("sts", "retrieval"),
    ) -> dict[str, float]:
        """[dev][] of the arm reading ``template`` with ``pooling``."""
        return self.dev(self.arm(template, pooling, encoder), tasks)

    def test_arm(self, template: str, pooling: PoolingName) -> dict[str, float]:
        """[test][] of the arm reading ``template`` with ``pooling``."""
        return self.test(self.arm(template, pooling))

    def dev(self, arm: Arm, tasks: Sequence[str] = ("sts", "retrieval")) -> dict[str, float]:
        """Development scores: ``sts`` (STS-B dev Spearman), ``retrieval`` (SciFact train nDCG@10),
        ``classification`` (Banking77 train probe accuracy). Each is computed once per template, pooling and
        attention: the sections share their reference arms (echo, classical, PromptEOL), whose scores cannot
        change within a run."""
        encoder = arm.encoder
        scores = {}
        for task in tasks:
            key = (task, encoder.template, encoder.pooling, encoder.config.attention)
            if key not in self._dev_scores:
                self._dev_scores[key] = self._dev_score(arm, task)
            scores[task] = self._dev_scores[key]
        return scores

    def _dev_score(self, arm: Arm, task: str) -> float:
        s = self.sizes
        if task == "sts":
            return evaluate_sts([arm], self.data / "sts" / "stsb-dev.jsonl", s.sts_pairs)[0].score
        if task == "retrieval":
            scifact = self.data / "retrieval" / "scifact"
            return evaluate_retrieval([arm], scifact, "train", s.queries, s.corpus_others, 0)[0].score
        train = self.data / "classification" / "banking77" / "train.jsonl"
        return evaluate_classification([arm], train, train, s.per_intent, s.per_intent, False, s.per_intent)[0].score

    def test(self, arm: Arm) -> dict[str, float]:
        """Test scores: STS-B test Spearman, SciFact test nDCG@10, Banking77 test probe accuracy."""
        s, banking = self.sizes, self.data / "classification" / "banking77"
        scifact = self.data / "retrieval" / "scifact"
        return {
            "sts": evaluate_sts([arm], self.data / "sts" / "stsb-test.jsonl")[0].score,
            "retrieval": evaluate_retrieval([arm], scifact, "test", s.test_queries, s.test_corpus_others, 0)[0].score,
            "classification": evaluate_classification(
                [arm], banking / "train.jsonl", banking / "test.jsonl", s.test_per_intent, s.test_per_intent
            )[0].score,
        }

    def timed(self, section: str, label: str, template: str, pooling: str, run: Callable[[], dict]) -> dict:
        start = time.perf_counter()
        scores = run()
        seconds = time.perf_counter() - start
        shown = ", ".join(f"{k} {v:.1f}" for k, v in scores.items())
        self.progress(f"{section}: {label} ({pooling}): {shown} [{seconds:.0f} s]")
        return {"label": label, "template": template, "pooling": pooling, "scores": scores, "seconds": seconds}

    def prompts(self) -> list[dict]:
        rows = []
        for strategy, (wordings, pooling) in STRATEGIES.items():
            for i, wording in enumerate(wordings):
                row = self.timed("prompts", f"{strategy}-{i + 1}", wording, pooling,
                                 partial(self.dev_arm, wording, pooling))  # fmt: skip
                rows.append({**row, "strategy": strategy})
        return rows

    def copies(self) -> list[dict]:
        rows = []
        for copies in range(1, 5):
            pooled_choices: list[int | str] = [*range(1, copies + 1), "last"]
            for pooled in pooled_choices:
                template = copies_template(copies, copies if pooled == "last" else pooled)  # type: ignore[arg-type]
                pooling: PoolingName = "last" if pooled == "last" else "mean"
                row = self.timed("copies", f"{copies} copies, pool {pooled}", template, pooling,
                                 partial(self.dev_arm, template, pooling, tasks=("sts",)))  # fmt: skip
                rows.append({**row, "copies": copies, "pooled": pooled})
        return rows

    def bidirectional(self) -> list[dict]:
        """The classical and echo references on this model with and without its causal mask (a second copy of
        the model, loaded here and dropped after)."""
        config = self.encoder.config
        both_ways = EchoEncoder.from_pretrained(config.model_name, device=config.device, attention="bidirectional")
        rows = []
        for name in ("classical", "echo"):
            template, pooling = REFERENCES[name]
            for attention, encoder in (("causal", self.encoder), ("bidirectional", both_ways)):
                row = self.timed("bidirectional", f"{name}, {attention}", template, pooling,
                                 partial(self.dev_arm, template, pooling, encoder))  # fmt: skip
                rows.append({**row, "attention": attention})
        return rows

    def toy(self, triples: Path) -> list[dict]:
        arms = {(name, pooling): self.arm(REFERENCES[name][0], pooling)
                for name in ("classical", "echo") for pooling in ("mean", "last")}  # fmt: skip
        rows = []
        for (name, pooling), arm in arms.items():
            for result in evaluate_toy([arm], triples):
                rows.append({"template": name, "pooling": pooling, "structure": result.dataset,
                             "accuracy": result.score, "n": result.n})  # fmt: skip
        return rows

    def candidates(self) -> dict[str, Any]:
        """Dev scores of the references and candidates; the chosen candidate; test scores of the finalists."""
        tasks = ("sts", "retrieval", "classification")
        dev = {name: self.timed("candidates (dev)", name, t, p, partial(self.dev_arm, t, p, tasks=tasks))
               for name, (t, p) in {**REFERENCES, **SUMMARY_CANDIDATES}.items()}  # fmt: skip
        beats = [name for name in SUMMARY_CANDIDATES
                 if all(dev[name]["scores"][k] > max(dev["echo"]["scores"][k], dev["prompteol"]["scores"][k])
                        for k in ("sts", "retrieval"))]  # fmt: skip
        best = max(beats or SUMMARY_CANDIDATES, key=lambda n: dev[n]["scores"]["sts"] + dev[n]["scores"]["retrieval"])
        finalists = {**REFERENCES, best: SUMMARY_CANDIDATES[best]}
        test = {name: self.timed("candidates (test)", name, t, p, partial(self.test_arm, t, p))
                for name, (t, p) in finalists.items()}  # fmt: skip
        return {"dev": dev, "beats_echo_and_prompteol_on_dev": beats, "chosen": best if beats else None,
                "best": best, "test": test}  # fmt: skip

    def references_on_test(self) -> dict[str, dict]:
        return {name: self.timed("models", f"{self.encoder.model_name}: {name}", t, p,
                                 partial(self.test_arm, t, p))
                for name, (t, p) in REFERENCES.items()}  # fmt: skip


def run_ablations(
    model_name: str | None,
    *,
    data: Path,
    triples: Path,
    sizes: Sizes | None = None,
    other_models: Sequence[str] = (),
    device: str | None = None,
    sections: Sequence[str] = SECTIONS,
    earlier: dict[str, Any] | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    """The ``sections`` on ``model_name`` (``models`` on each of ``other_models``), as one JSON-ready dict.

    With ``earlier`` (a previous run's results on the same model and sizes), the sections not run keep their
    earlier rows, and ``runs`` lists both runs' sections and time. ``sizes`` defaults to ``Sizes()``.
    """
    start = time.perf_counter()
    sizes = sizes or Sizes()
    encoder = EchoEncoder.from_pretrained(model_name, device=device)
    if earlier is not None and (earlier["model"], earlier["sizes"]) != (encoder.model_name, asdict(sizes)):
        raise ConfigError(
            f"the earlier results are of {earlier['model']} with sizes {earlier['sizes']}, not of "
            f"{encoder.model_name} with {asdict(sizes)}: run every section, or the same model and sizes"
        )
    ablations = Ablations(encoder, data, sizes, progress)
    results: dict[str, Any] = {**(earlier or {}), "model": encoder.model_name, "sizes": asdict(sizes)}
    results.setdefault("models", {})
    steps: dict[str, Callable[[], Any]] = {
        "prompts": ablations.prompts,
        "copies": ablations.copies,
        "bidirectional": ablations.bidirectional,
        "toy": lambda: ablations.toy(triples),
        "candidates": ablations.candidates,
    }
    for section in (name for name in SECTIONS if name in sections and name in steps):
        results[section] = steps[section]()
    if "candidates" in sections:
        results["models"][encoder.model_name] = {"parameters": _parameters(encoder), **results["candidates"]["test"]}
    if "models" in sections:
        for other in other_models:
            peer = Ablations(EchoEncoder.from_pretrained(other, device=device), data, sizes, progress)
            results["models"][peer.encoder.model_name] = {"parameters": _parameters(peer.encoder),
                                                          **peer.references_on_test()}  # fmt: skip
    results["runs"] = [*(earlier or {}).get("runs", []),
                       {"sections": [name for name in SECTIONS if name in sections],
                        "seconds": time.perf_counter() - start}]  # fmt: skip
    return results


def _parameters(encoder: EchoEncoder) -> int:
    return sum(p.numel() for p in encoder.model.parameters())

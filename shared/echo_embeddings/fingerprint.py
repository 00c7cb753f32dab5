"""Settings fingerprints: a stable identifier of everything that decides a vector.

Two encoders with equal fingerprints give the same vectors for the same text and form; any difference in the
weights (their files' content, or a hub id's commit), the template, pooling, length and truncation settings,
normalization, instructions, dimension, precision (with its quantization ranges), attention or dtype gives another
fingerprint, and so does any ``model_kwargs`` option that can change the loaded network (``num_hidden_layers``,
``rms_norm_eps``, ``revision``, ``attn_implementation``, ...). Use it as the namespace of a cache of vectors
(LangChain's ``CacheBackedEmbeddings``), and to check that vectors in a store came from the settings that query it.
The device is left out: CPU and GPU float32 vectors agree to about 1e-6.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import EchoConfig
from .digests import content_digest
from .templates import template_spec

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel

WEIGHT_FILES = ("*.safetensors", "*.bin", "*.gguf", "config.json", "tokenizer*", "*.model", "vocab*", "merges.txt")
"""The files of a model folder whose content decides its vectors (settings files aside: they are read as settings)."""
NEUTRAL_MODEL_KWARGS = frozenset({"token", "local_files_only", "trust_remote_code", "device_map", "low_cpu_mem_usage"})
"""The ``model_kwargs`` options that only decide how or from where a model loads, not its vectors."""


def weights_identity(source: str, model: PreTrainedModel | PeftModel) -> str:
    """What identifies the loaded weights: the SHA-256 of a local folder's ``WEIGHT_FILES``, or a hub id with
    the commit it was loaded from."""
    folder = Path(source)
    if folder.is_dir():
        files = sorted({path for pattern in WEIGHT_FILES for path in folder.glob(pattern) if path.is_file()})
        digest = hashlib.sha256()
        for path in files:
            digest.update(f"{path.name}:{content_digest(path)};".encode())
        return "files:" + digest.hexdigest()
    return f"hub:{source}@{getattr(model.config, '_commit_hash', None) or 'unknown'}"


def fingerprint(
    config: EchoConfig,
    weights: str,
    *,
    max_length: int | None,
    dtype: Any,
    model_kwargs: dict[str, Any] | None = None,
) -> str:
    """``echo-`` and 16 hex digits of a hash of ``weights`` ([weights_identity][]), the ``model_kwargs`` the
    model was loaded with (those not in ``NEUTRAL_MODEL_KWARGS``) and every setting of ``config`` that decides a
    vector; ``max_length`` is the whole-sequence bound in effect."""
    ranges = config.quantization_ranges
    loading = {key: repr(value) for key, value in (model_kwargs or {}).items() if key not in NEUTRAL_MODEL_KWARGS}
    decided = {
        "weights": weights,
        "dtype": str(dtype).removeprefix("torch."),
        "attention": config.attention,
        "template": template_spec(config.resolved_template),
        "pooling": config.resolved_pooling,
        "max_text_tokens": config.max_text_tokens,
        "max_length": max_length,
        "truncation": config.truncation,
        "normalize": config.normalize,
        "query_instruction": config.query_instruction,
        "document_instruction": config.document_instruction,
        "truncate_dim": config.truncate_dim,
        "precision": config.precision,
        "quantization_ranges": hashlib.sha256(json.dumps(ranges).encode()).hexdigest() if ranges else None,
    }
    if loading:  # only then, so that fingerprints recorded before model_kwargs counted stay valid
        decided["model_kwargs"] = loading
    return "echo-" + hashlib.sha256(json.dumps(decided, sort_keys=True).encode()).hexdigest()[:16]

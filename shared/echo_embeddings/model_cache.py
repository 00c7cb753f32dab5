"""The cache of models this library builds once and loads many times: GGUF files converted to safetensors, and the
trained default merged into its base.

Each cached model is a folder built in a temporary folder beside it and renamed into place, with a manifest of its
files' digests written last: a folder whose files no longer match (a truncated or edited file, a missing one) is
damaged and built again.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .digests import file_digest
from .files import follow_umask

logger = logging.getLogger(__name__)

CACHE_ENV = "ECHO_EMBEDDINGS_CACHE"
MANIFEST = "echo-manifest.json"
"""Written last into a cached model folder: each file's cheap digest ([file_digest][])."""


def cache_dir() -> Path:
    """Where built models are kept: ``$ECHO_EMBEDDINGS_CACHE``, else the user cache folder."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("echo-embeddings"))


def cached_folder(target: Path, build: Callable[[Path], None], *, what: str) -> Path:
    """``target``, built by ``build(folder)`` unless an intact copy is already there; ``what`` names it in the
    messages (e.g. "Converting x.gguf to safetensors")."""
    if intact(target):
        return target
    if target.exists():
        logger.warning("The cached copy in %s is damaged; building it again", target)
        shutil.rmtree(target, ignore_errors=True)
    logger.warning("%s in %s (once)", what, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        build(tmp)
        files = {p.name: file_digest(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        (tmp / MANIFEST).write_text(json.dumps(files, indent=2) + "\n", encoding="utf-8")
        follow_umask(tmp)  # mkdtemp and safetensors made it private; the cache follows the user's umask
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished the same build first
            if not intact(target):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def intact(folder: Path) -> bool:
    """Whether every file of the cached ``folder`` matches its manifest."""
    try:
        files = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return all(file_digest(folder / name) == digest for name, digest in files.items())
    except (OSError, ValueError, AttributeError):
        return False


def converted_gguf(gguf: Path) -> Path:
    """A safetensors copy of a GGUF model, converted on first use (dequantizing takes ~30 s; loading the copy ~1 s)."""

    def build(folder: Path) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        quantized = AutoModel.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # A GGUF-loaded model refuses save_pretrained: rebuild it plainly from its config and weights.
        config = quantized.config
        del config.quantization_config
        plain = AutoModel.from_config(config, dtype=torch.float32)
        plain.load_state_dict(quantized.state_dict())
        plain.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    target = cache_dir() / "gguf" / f"{gguf.stem}-{file_digest(gguf)}"
    return cached_folder(target, build, what=f"Converting {gguf} to safetensors (about 30 s)")

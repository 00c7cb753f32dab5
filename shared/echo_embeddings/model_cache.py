"""The cache of models this library builds once and loads many times: GGUF files converted to safetensors, and the
trained default merged into its base.

Each cached model is a folder built in a temporary folder beside it and renamed into place, with a manifest of its
files' SHA-256 digests written last. Every load checks the files against it: a folder whose files no longer match
(a truncated, edited or missing file) is damaged and built again. A file's digest is remembered by its path, size,
inode and modification and change times ([content_digest][echo_embeddings.digests.content_digest]), so a load of an
unchanged folder costs a few ``stat`` calls, and the first load after a change hashes the files again (what each
costs: docs/guide/usage.md, "The model cache").
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from .digests import content_digest, file_digest, file_sha256
from .files import follow_umask
from .user_cache import cache_dir

logger = logging.getLogger(__name__)

MANIFEST = "echo-manifest.json"
"""Written last into a cached model folder: each file's SHA-256."""
BUILDING = ".building-"
"""Between a cached folder's name and the building process's id in the name of its temporary folder."""


def cached_folder(target: Path, build: Callable[[Path], None], *, what: str) -> Path:
    """``target``, built by ``build(folder)`` unless an intact copy is already there; ``what`` names it in the
    messages (e.g. "Converting x.gguf to safetensors")."""
    if intact(target):
        return target
    if target.exists() or target.is_symlink():
        logger.warning("The cached copy in %s is damaged; building it again", target)
        _remove(target)
    logger.warning("%s in %s (once)", what, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_builds(target)
    tmp = Path(tempfile.mkdtemp(prefix=f"{target.name}{BUILDING}{os.getpid()}-", dir=target.parent))
    try:
        build(tmp)
        files = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
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
    """Whether every file of the cached ``folder`` has the SHA-256 its manifest records."""
    try:
        files = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return bool(files) and all(content_digest(folder / name) == digest for name, digest in files.items())
    except (OSError, ValueError, AttributeError, TypeError):
        return False


def _remove(path: Path) -> None:
    """Remove a file, link or folder tree at ``path``."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _remove_abandoned_builds(target: Path) -> None:
    """Remove the temporary folders of builds of ``target`` whose process is gone (killed during the build)."""
    for tmp in target.parent.glob(f"{target.name}{BUILDING}*"):
        pid = tmp.name.removeprefix(f"{target.name}{BUILDING}").split("-")[0]
        if pid.isdigit() and not _running(int(pid)):
            logger.warning("Removing %s, left by a build that did not finish", tmp)
            _remove(tmp)


def _running(pid: int) -> bool:
    """Whether a process ``pid`` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def converted_gguf(gguf: Path) -> Path:
    """A safetensors copy of a GGUF model, converted on first use (dequantizing takes seconds to a minute; loading the
    copy is fast)."""

    def build(folder: Path) -> None:
        from unittest import mock

        import torch
        import transformers.modeling_gguf_pytorch_utils as gguf_utils
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # transformers' GGUF reader draws its own tqdm bar, which its progress switch does not reach; the line
        # cached_folder logs already says what runs.
        with mock.patch.object(gguf_utils, "tqdm", lambda items, **_: items):
            quantized = AutoModel.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # A GGUF-loaded model refuses save_pretrained: rebuild it plainly from its config and weights.
        config = quantized.config
        del config.quantization_config
        plain = AutoModel.from_config(config, dtype=torch.float32)
        plain.load_state_dict(quantized.state_dict())
        plain.save_pretrained(folder)
        tokenizer.save_pretrained(folder)

    target = cache_dir() / "gguf" / f"{gguf.stem}-{file_digest(gguf)}"
    return cached_folder(target, build, what=f"Converting {gguf} to safetensors")

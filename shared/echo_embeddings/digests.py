"""File digests, the three ways this package identifies a file's content.

- [file_digest][]: a cheap key (size, first and last MiB) that names a GGUF file's converted folder;
- [file_sha256][]: the SHA-256 of the whole file, as ``sha256sum`` prints it (the shipped adapter's check);
- [content_digest][]: that SHA-256, computed once per file version (the manifests of cached models and the
  fingerprint's weight digests).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from .user_cache import cache_dir

DIGESTS = "digests.json"
"""The file in the cache folder that remembers [content_digest][]'s results."""
MEMO_ENTRIES = 1000


def file_digest(path: Path) -> str:
    """A cheap content key: size plus a hash of the first and last MiB."""
    size = path.stat().st_size
    h = hashlib.blake2b(str(size).encode(), digest_size=8)
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, size - (1 << 20)))
        h.update(f.read(1 << 20))
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    """The SHA-256 of the file at ``path``, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


_digests: dict[tuple[str, int, int, int, int], str] = {}


def content_digest(path: Path) -> str:
    """The SHA-256 of the file at ``path``, computed once per file version: remembered by path, size, inode,
    modification and change time, in this process and in the cache folder's ``digests.json``.

    Any write to the file, or another file moved into its place, sets its change time (which, unlike the
    modification time, no program can set back), so an edited or swapped file is hashed again.
    """
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns)
    if key in _digests:
        return _digests[key]
    memo = cache_dir() / DIGESTS
    try:
        saved = json.loads(memo.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        saved = {}
    name = "|".join(map(str, key))
    if not isinstance(saved, dict) or not isinstance(saved.get(name), str):
        saved = {**(saved if isinstance(saved, dict) else {}), name: file_sha256(path)}
        saved = dict(list(saved.items())[-MEMO_ENTRIES:])  # the newest
        try:  # a lost update between processes only costs a recomputation
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_name(f".{DIGESTS}.{os.getpid()}")
            tmp.write_text(json.dumps(saved), encoding="utf-8")
            os.replace(tmp, memo)
        except OSError:
            pass
    _digests[key] = saved[name]
    return saved[name]

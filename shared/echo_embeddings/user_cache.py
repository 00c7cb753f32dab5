"""Where this library keeps what it builds once: converted and merged models, weight digests, downloaded data."""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "ECHO_EMBEDDINGS_CACHE"


def cache_dir() -> Path:
    """``$ECHO_EMBEDDINGS_CACHE``, else the user cache folder."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_cache_dir("echo-embeddings"))

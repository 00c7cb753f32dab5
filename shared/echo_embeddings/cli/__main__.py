"""``python -m echo_embeddings.cli``: the ``echo-embeddings`` command."""

import sys

from . import main

sys.exit(main())

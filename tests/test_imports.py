"""Light imports: what is documented as torch-free stays torch-free (each in a fresh interpreter)."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "statement",
    [
        "import echo_embeddings",
        "from echo_embeddings import TruncationWarning, TEMPLATES",
        "import echo_embeddings.evaluation.metrics",
        "from echo_embeddings.config import EchoConfig; EchoConfig(template='classical')",
        "from echo_embeddings.errors import EchoEmbeddingsError",
        "import echo_embeddings.settings",
    ],
)
def test_does_not_import_torch(statement):
    code = f"import sys; {statement}; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, f"{statement} imported torch"

"""Light imports: what is documented as torch-free stays torch-free (each in a fresh interpreter)."""

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.parametrize(
    "statement",
    [
        "import echo_embeddings",
        "from echo_embeddings import TruncationWarning, TEMPLATES",
        "import echo_embeddings.evaluation.metrics",
        "from echo_embeddings.config import EchoConfig; EchoConfig(template='classical')",
        "from echo_embeddings.errors import EchoEmbeddingsError",
        "from echo_embeddings import EchoEmbeddingsError, ConfigError, InputError, ModelError, TextTooLongError",
        "import echo_embeddings.framework_settings",
    ],
)
def test_does_not_import_torch(statement):
    code = f"import sys; {statement}; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, f"{statement} imported torch"


OPTIONAL = ("sentence_transformers", "peft", "datasets", "fastapi", "uvicorn", "ray", "langchain_core", "llama_index")


def test_the_command_line_needs_no_optional_dependency_to_start():
    code = (
        "import sys; from echo_embeddings.cli import build_parser; build_parser(); "
        f"print(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} & set({OPTIONAL!r}))))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "", f"building the parser imported {result.stdout}"


CLI = "from echo_embeddings.cli import main; sys.exit(main"


@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["eval", "ablations", "--help"], ["train", "--help"]])
def test_help_and_version_import_no_torch(argv):
    """They answer at once: the parser is built from the settings models, never from the modules that run."""
    code = f"import sys; from echo_embeddings.cli import main\ntry: main({argv!r})\nexcept SystemExit: pass\n"
    code += "print('TORCH' if 'torch' in sys.modules else 'ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip().splitlines()[-1] == "ok", result.stdout + result.stderr


@pytest.mark.parametrize(
    ("blocked", "statement", "extra"),
    [
        ("sentence_transformers", f"{CLI}(['train', 'x.jsonl', '-o', 'm']))", "train"),
        ("fastapi", f"{CLI}(['serve', '--port', '1']))", "server"),
        ("sentence_transformers", "from echo_embeddings import sentence_transformer", "st"),
        ("langchain_core", "import langchain_echo", "langchain"),
        ("llama_index.core", "from llama_index.embeddings.echo import EchoEmbedding", "llamaindex"),
    ],
)  # fmt: skip
def test_a_missing_extra_is_one_line_naming_it(tmp_path, blocked, statement, extra):
    """As in an install without that extra: the import of the blocked package fails (None in sys.modules)."""
    code = f"import sys; sys.modules[{blocked!r}] = None; {statement}"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    assert f'pip install "echo-embeddings[{extra}]"' in result.stderr.strip().splitlines()[-1]
    if "cli" in statement:
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr


def _imports(package: Path, name: str) -> dict[str, set[str]]:
    """Each module of the package at ``package`` and the package modules it imports, also inside functions; a
    package's ``__init__`` naming its own submodules (a registry of them, imported when first needed) left out."""
    import ast

    graph = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        here = module if path.name == "__init__.py" else module.rpartition(".")[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = here.rsplit(".", node.level - 1)[0] if node.level > 1 else here
                source = f"{base}.{node.module}" if node.module else base
                for alias in node.names:
                    sub = f"{source}.{alias.name}"
                    is_module = (package.parent / sub.replace(".", "/")).with_suffix(".py").exists()
                    targets.add(sub if is_module else source)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(name):
                targets.add(node.module)
        if path.name == "__init__.py":
            targets = {t for t in targets if not t.startswith(module + ".")}
        graph[module] = targets - {module}
    return graph


def test_the_package_has_no_import_cycle_and_settings_need_no_weights():
    import graphlib

    import echo_embeddings

    graph = _imports(Path(echo_embeddings.__file__).parent, "echo_embeddings")
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        pytest.fail(f"import cycle: {' -> '.join(err.args[1])}")
    assert "echo_embeddings.trained" not in graph["echo_embeddings.config"]
    assert "echo_embeddings.loading" not in graph["echo_embeddings.collation"]

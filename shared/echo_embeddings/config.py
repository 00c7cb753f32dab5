"""EchoConfig: every setting of an echo encoder, declared once, with its default, its validation and its JSON form.

The encoder, the sentence-transformers modules, both framework adapters, the command line and Ray read it. A model
folder carries the settings that say how to read that model (template, pooling, max_length, normalize and the
instructions) in ``echo_config.json``; loading the folder makes them the defaults, so a fine-tuned model needs no
settings repeated by its user. Importing this module does not import torch.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import re
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from .errors import ConfigError
from .instructions import resolve_instruction
from .shipped import DEFAULT_MODEL, shipped_folder
from .templates import PoolingName, Template, resolve_template, template_spec
from .tokenization import TruncationName

CONFIG_FILE = "echo_config.json"
"""The file in a model folder that holds its ``FOLDER_KEYS``."""

FOLDER_KEYS = (
    "template", "pooling", "max_text_tokens", "max_length", "normalize", "query_instruction", "document_instruction",
    "matryoshka_dims", "truncate_dim",
)  # fmt: skip
"""The settings that belong to a model rather than to a machine or a call: saved in, and read from, its folder."""

FINGERPRINT_KEY = "fingerprint"
"""Also in ``echo_config.json`` of a saved model: the folder's settings fingerprint, a record rather than a setting."""

LOADING_KEYS = ("device", "dtype", "model_kwargs", "cache_folder", "attention")
"""Besides ``model_name``, the settings that decide which loaded model (and copy of it) an encoder uses."""

AttentionName = Literal["causal", "bidirectional"]
DEVICE_TYPES = ("cpu", "cuda", "mps", "xpu", "npu", "hpu")
"""Device types a model can be put on by name (with an index: ``cuda:1``)."""
DTYPES = ("float32", "bfloat16", "float16", "float64", "auto")
"""The floating-point dtypes a model can run in, by name (``torch.`` prefix accepted); auto: the device's default."""
PrecisionName = Literal["float32", "int8", "uint8", "binary", "ubinary"]

SHOWN_DEFAULT = "shown_default"
"""A field's ``json_schema_extra`` key for the default as help and docs say it, where the declared one is a
fallback (a model folder's own settings come first)."""

DEFAULT_MAX_TEXT_TOKENS = 2048
"""Tokens of a text read by default: twice LlamaIndex's default node (1,024 tokens) and LangChain's default split
(4,000 characters), within the default model's 8,192 positions for both copies."""


class EchoConfig(BaseModel):
    """Which model to load, how to read it, and how to run it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), validate_assignment=True)

    model_name: str = Field(
        default=DEFAULT_MODEL,
        description="Hub id, local folder or .gguf file of a causal LM; DEFAULT_MODEL is SmolLM2-135M-Instruct "
        "fine-tuned for echo embeddings, BASE_MODEL its untrained reading.",
    )
    template: str | dict[str, str] = Field(
        default="echo-categorize",
        description="A preset (echo, echo-paragraph, echo-categorize, classical, echo-instruct, prompteol), a "
        "pattern string with {text} slots, or a {'document': ..., 'query': ..., 'instruction': ...} mapping.",
        json_schema_extra={SHOWN_DEFAULT: "the model folder's own (the default model's: echo), else echo-categorize"},
    )
    pooling: PoolingName | None = Field(
        default=None,
        json_schema_extra={SHOWN_DEFAULT: "the template's own"},
        description="mean over the pooled span, the last token, mean-last (the mean over both) or mean+last (the "
        "sum of the two, each unit-length); None: the template's own.",
    )
    max_text_tokens: StrictInt = Field(
        default=DEFAULT_MAX_TEXT_TOKENS,
        ge=1,
        description="Tokens of each text read (in every copy), at most what max_length leaves; see truncation.",
    )
    max_length: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Tokens per whole sequence (template and every copy of the text), a memory bound; None: the "
        "model's position limit.",
    )
    truncation: TruncationName = Field(
        default="head",
        description="A text longer than the read budget: keep its head, keep its tail, raise an error naming it, or "
        "embed it in overlapping windows and average their unit vectors.",
    )
    normalize: StrictBool = Field(default=True, description="L2-normalize the vectors, so dot product is cosine.")
    batch_size: StrictInt = Field(
        default=32, ge=1, description="Texts per forward pass (long texts fewer: 256 tokens a text at most)."
    )
    truncate_dim: StrictInt | None = Field(
        default=None,
        ge=1,
        description="Keep each vector's first truncate_dim dimensions (Matryoshka), unit length again if normalize; "
        "None: all of them.",
    )
    precision: PrecisionName = Field(
        default="float32",
        description="The vectors' type, by sentence-transformers' quantize_embeddings: float32; int8 or uint8 (one "
        "byte a dimension, needs quantization_ranges); binary or ubinary (one bit a dimension, 8 packed a byte).",
    )
    quantization_ranges: list[list[float]] | None = Field(
        default=None,
        description="int8/uint8: each dimension's [minimums, maximums] (shape 2 x dim), from "
        "EchoEncoder.quantization_ranges on a sample of the corpus.",
    )
    matryoshka_dims: list[StrictInt] | None = Field(
        default=None,
        description="The truncate_dim values the model was trained for (train --matryoshka-dims); the server "
        "accepts these as 'dimensions'.",
    )
    query_instruction: str | None = Field(
        default=None,
        description="Fills the query form's {instruction} slot (or leads the query prompt if it has none); "
        "None or empty: the template's own. A name of INSTRUCTIONS (general, scifact, sts, nli, banking77) reads as "
        "its text.",
    )
    document_instruction: str | None = Field(
        default=None,
        description="The same for the document form; None or empty: the template's own, if any. Names read as for "
        "query_instruction.",
    )
    device: str | None = Field(default=None, description="cuda, mps, cpu...; None picks cuda, then mps, then cpu.")
    dtype: str | None = Field(default=None, description="float32, bfloat16...; None: bfloat16 on CUDA, else float32.")
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to AutoModel.from_pretrained (revision, trust_remote_code, attn_implementation, ...).",
    )
    cache_folder: str | None = Field(default=None, description="Hugging Face download cache folder.")
    attention: AttentionName = Field(
        default="causal",
        description="bidirectional removes the causal mask, with no training: the paper's classical+bidirectional "
        "evaluation baseline, for models whose attention honours config.is_causal (Llama, Mistral, Qwen2, Gemma).",
    )

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        resolve_template(value)  # raises with the list of presets
        return value

    @field_validator("query_instruction", "document_instruction")
    @classmethod
    def _named_instruction(cls, value: str | None) -> str | None:
        return resolve_instruction(value)

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(rf"({'|'.join(DEVICE_TYPES)})(:\d+)?", value):
            raise ValueError(f"unknown device {value!r}: use {', '.join(DEVICE_TYPES)}, or one with an index (cuda:1)")
        return value

    @field_validator("dtype")
    @classmethod
    def _known_dtype(cls, value: str | None) -> str | None:
        if value is not None and value.removeprefix("torch.") not in DTYPES:
            raise ValueError(f"unknown dtype {value!r}: use {', '.join(DTYPES)}")
        return value

    @field_validator("model_kwargs")
    @classmethod
    def _no_loading_options_in_model_kwargs(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key, setting in (("device", "device"), ("dtype", "dtype"), ("torch_dtype", "dtype")):
            if key in value:
                raise ValueError(f"model_kwargs[{key!r}] is not passed to the model: use {setting}= instead")
        return value

    @model_validator(mode="after")
    def _ranges_for_the_precision(self) -> EchoConfig:
        if self.precision in ("int8", "uint8"):
            if self.quantization_ranges is None:
                raise ValueError(
                    f"precision={self.precision!r} needs quantization_ranges: compute them once with "
                    "EchoEncoder.quantization_ranges(texts) on a sample of your corpus"
                )
        if self.quantization_ranges is not None:
            check_ranges(self.quantization_ranges)
        return self

    @classmethod
    def create(cls, model_name: str | os.PathLike | None = None, **settings: Any) -> EchoConfig:
        """A validated config for ``model_name``: its folder's saved settings, overridden by ``settings``.

        Settings given as None count as not given. Bad values raise [ConfigError][] naming the setting.
        """
        given = {key: value for key, value in settings.items() if value is not None}
        if model_name is not None:
            given["model_name"] = str(model_name)
        return validated(cls, **with_folder_settings(given))

    def replace(self, **settings: Any) -> EchoConfig:
        """A validated copy with ``settings`` changed; bad values raise [ConfigError][]."""
        return validated(type(self), **{**self.model_dump(), **settings})

    def loading_options(self) -> dict[str, Any]:
        """The ``LOADING_KEYS`` as keyword arguments of [load_model][echo_embeddings.load_model]."""
        return {key: getattr(self, key) for key in LOADING_KEYS}

    @property
    def resolved_template(self) -> Template:
        return resolve_template(self.template)

    @property
    def resolved_pooling(self) -> PoolingName:
        return self.pooling or self.resolved_template.pooling

    def folder_settings(self) -> dict[str, Any]:
        """The JSON form of ``FOLDER_KEYS``, as written to a model folder (pooling resolved, template as spec)."""
        values = {key: getattr(self, key) for key in FOLDER_KEYS}
        values["template"] = template_spec(self.resolved_template)
        values["pooling"] = self.resolved_pooling
        return values

    def save(self, folder: str | os.PathLike) -> None:
        """Write [folder_settings][] to ``folder/echo_config.json``."""
        path = Path(folder) / CONFIG_FILE
        path.write_text(json.dumps(self.folder_settings(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def with_folder_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with those saved in their model's folder (``read_folder_settings``) wherever a setting is not
    given or given as None; other keys stay as they are."""
    saved = read_folder_settings(settings.get("model_name") or DEFAULT_MODEL)
    return {**settings, **{key: value for key, value in saved.items() if settings.get(key) is None}}


def read_folder_settings(model_name: str) -> dict[str, Any]:
    """The ``FOLDER_KEYS`` saved in ``model_name/echo_config.json``, or {} when it is not such a folder; a
    trained model shipped in this package reads its own."""
    path = (shipped_folder(model_name) or Path(model_name).expanduser()) / CONFIG_FILE
    if not path.is_file():
        return {}
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: unreadable echo configuration ({err})") from None
    return folder_settings_from(saved, path)


def folder_settings_from(saved: Any, path: str | os.PathLike) -> dict[str, Any]:
    """The settings in the parsed ``echo_config.json`` at ``path``: the fingerprint (a record) left out, and
    ``max_seq_length``, the key's name before every setting lived in this file, read as ``max_length``. Anything but
    an object of ``FOLDER_KEYS`` is a [ConfigError][] naming ``path``."""
    if not isinstance(saved, dict):
        raise ConfigError(f"{path}: expected a JSON object, got {type(saved).__name__}")
    saved = dict(saved)
    if "max_seq_length" in saved:
        saved.setdefault("max_length", saved.pop("max_seq_length"))
    saved.pop(FINGERPRINT_KEY, None)
    unknown = set(saved) - set(FOLDER_KEYS)
    if unknown:
        raise ConfigError(f"{path}: unknown setting(s) {sorted(unknown)}; known: {', '.join(FOLDER_KEYS)}")
    return saved


def check_ranges(ranges: list[list[float]]) -> None:
    """A ValueError unless ``ranges`` holds two rows of equal length, minimums and maximums, each a finite number
    and each minimum below its maximum (a zero-width range would give every vector the same bytes there)."""
    if len(ranges) != 2 or len({len(row) for row in ranges}) != 1:
        raise ValueError("quantization_ranges: expected two rows of equal length (minimums, maximums)")
    for d, (low, high) in enumerate(zip(*ranges, strict=True)):
        if not (math.isfinite(low) and math.isfinite(high) and low < high):
            raise ValueError(
                f"quantization_ranges: dimension {d} has the range [{low}, {high}]; each must be finite, its minimum "
                "below its maximum: compute them with EchoEncoder.quantization_ranges on a sample of the corpus"
            )


Settings = TypeVar("Settings", bound=BaseModel)


def validated(model: type[Settings], /, **values: Any) -> Settings:
    """``model(**values)`` for any of the settings models; a bad value raises [ConfigError][] naming it."""
    try:
        return model(**values)
    except ValidationError as err:
        raise ConfigError(describe_validation_error(err, model.model_fields)) from None


def describe_validation_error(err: ValidationError, known: Any = ()) -> str:
    """One line per bad setting: ``name: problem (got value)``; an unknown name gets the closest of ``known``."""
    lines = []
    for error in err.errors():
        name = ".".join(str(part) for part in error["loc"]) or "settings"
        message = error["msg"].removeprefix("Value error, ")
        close = difflib.get_close_matches(name, known, n=1) if error["type"] == "extra_forbidden" else []
        if close:
            message += f"; did you mean {close[0]!r}?"
        lines.append(f"{name}: {message} (got {error['input']!r:.80})" if "input" in error else f"{name}: {message}")
    return "; ".join(lines)

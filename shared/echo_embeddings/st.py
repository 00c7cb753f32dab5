"""sentence-transformers modules for echo embeddings, and a builder.

sentence-transformers' own ``Pooling(include_prompt=False)`` drops one fixed-length prefix per batch, which cannot
express "the second copy of a variable-length text". So echo brings two small modules:

- :class:`EchoTransformer` (input module): owns the causal LM and its tokenizer, puts each text into the template
  (query form for ``encode_query``, document form otherwise; a prompt fills the ``{instruction}`` slot) and emits
  ``input_ids``, ``attention_mask``, the echo ``pool_mask`` and, in ``forward``, ``token_embeddings``;
- :class:`EchoPooling`: mean (or last) over ``pool_mask`` into ``sentence_embedding``.

sentence-transformers >= 6 loads classes from outside its own package only with ``trust_remote_code=True``:
``SentenceTransformer(path, trust_remote_code=True)``, or :func:`load_sentence_transformer` (no flag needed).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import InputModule, Module, Normalize

from . import __version__
from .batching import collate
from .models import DType, load_model
from .pooling import POOLING_METHODS, PoolingMethod, pool
from .templates import TemplateLike, resolve_template, template_spec
from .texts import check_texts
from .tokenization import TemplateTokenizer


class EchoTransformer(InputModule):
    """A causal LM behind an echo template: texts in, token states and the pooled-span mask out.

    Args:
        model_name_or_path: hub id, local folder or ``.gguf`` file; None for the default model.
        template: a preset name, a pattern string, a mapping or a :class:`~echo_embeddings.Template`.
        max_seq_length: bound on the whole sequence (template and every copy of the text).
        model_kwargs: passed to ``AutoModel.from_pretrained`` (e.g. ``{"dtype": "bfloat16"}`` via ``dtype``).
    """

    config_file_name = "echo_config.json"
    config_keys = ["template", "max_seq_length"]

    def __init__(
        self,
        model_name_or_path: str | None = None,
        template: TemplateLike = "echo",
        max_seq_length: int = 512,
        *,
        device: str | None = None,
        dtype: DType = None,
        model_kwargs: dict[str, Any] | None = None,
        cache_folder: str | None = None,
    ) -> None:
        super().__init__()
        # Not shared with other encoders: sentence-transformers moves, casts and trains its modules.
        loaded = load_model(
            model_name_or_path,
            device=device,
            dtype=dtype,
            model_kwargs=model_kwargs,
            cache_folder=cache_folder,
            shared=False,
        )
        self.auto_model = loaded.model
        self.tokenizer = loaded.tokenizer
        self.template = resolve_template(template)
        self.max_seq_length = max_seq_length

    @property
    def max_seq_length(self) -> int:
        return self._template_tokenizer.max_length

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self._template_tokenizer = TemplateTokenizer(self.tokenizer, self.template, value)

    def get_config_dict(self) -> dict[str, Any]:
        return {"template": template_spec(self.template), "max_seq_length": self.max_seq_length}

    def get_embedding_dimension(self) -> int:
        return int(self.auto_model.config.hidden_size)

    def preprocess(
        self, inputs: Sequence[str], prompt: str | None = None, task: str | None = None, **kwargs: Any
    ) -> dict[str, torch.Tensor]:
        """Template, tokenize and pad a batch: query form if ``task == "query"``; ``prompt`` is the instruction."""
        items = self._template_tokenizer(check_texts(inputs), query=task == "query", instruction=prompt or None)
        self._template_tokenizer.warn_truncated(sum(item.truncated for item in items), len(items), stacklevel=2)
        return collate(items, self._template_tokenizer.pad_id)

    def forward(self, features: dict[str, torch.Tensor], **kwargs: Any) -> dict[str, torch.Tensor]:
        output = self.auto_model(input_ids=features["input_ids"], attention_mask=features["attention_mask"])
        features["token_embeddings"] = output.last_hidden_state
        return features

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.auto_model.save_pretrained(output_path, safe_serialization=safe_serialization)
        self.save_tokenizer(output_path)
        self.save_config(output_path)
        _require_this_package(output_path)

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> EchoTransformer:
        config = cls.load_config(
            model_name_or_path,
            subfolder=subfolder,
            token=token,
            cache_folder=cache_folder,
            revision=revision,
            local_files_only=local_files_only,
        )
        hub = {"token": token, "revision": revision, "local_files_only": local_files_only, "subfolder": subfolder}
        hub = {key: value for key, value in hub.items() if value}
        return cls(
            model_name_or_path,
            **config,
            model_kwargs={**hub, "trust_remote_code": trust_remote_code, **(model_kwargs or {})},
            cache_folder=cache_folder,
        )


class EchoPooling(Module):
    """Pools ``token_embeddings`` over ``pool_mask`` (mean or last) into ``sentence_embedding``, in fp32."""

    config_keys = ["embedding_dimension", "pooling"]

    def __init__(self, embedding_dimension: int, pooling: PoolingMethod = "mean") -> None:
        super().__init__()
        if pooling not in POOLING_METHODS:
            raise ValueError(f"unknown pooling {pooling!r}: use one of {', '.join(POOLING_METHODS)}")
        self.embedding_dimension = embedding_dimension
        self.pooling = pooling

    def forward(self, features: dict[str, torch.Tensor], **kwargs: Any) -> dict[str, torch.Tensor]:
        features["sentence_embedding"] = pool(
            features["token_embeddings"], features["pool_mask"], features["attention_mask"], self.pooling
        )
        return features

    def get_embedding_dimension(self) -> int:
        return self.embedding_dimension

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)


def sentence_transformer(
    model_name: str | None = None,
    template: TemplateLike = "echo",
    pooling: PoolingMethod | None = None,
    max_length: int = 512,
    normalize: bool = True,
    device: str | None = None,
    dtype: DType = None,
    model_kwargs: dict[str, Any] | None = None,
    cache_folder: str | None = None,
) -> SentenceTransformer:
    """A ``SentenceTransformer`` that embeds with echo: the same vectors as ``EchoEncoder`` with these settings.

    ``model.encode_query`` uses the template's query form and ``encode_document`` its document form; a
    ``prompt``/``prompt_name`` fills the template's ``{instruction}`` slot. ``pooling`` defaults to the template's.
    """
    transformer = EchoTransformer(
        model_name, template, max_length, device=device, dtype=dtype, model_kwargs=model_kwargs,
        cache_folder=cache_folder,
    )  # fmt: skip
    pooler = EchoPooling(transformer.get_embedding_dimension(), pooling or transformer.template.pooling)
    modules: list[torch.nn.Module] = [transformer, pooler]
    if normalize:
        modules.append(Normalize())
    return SentenceTransformer(modules=modules, device=str(transformer.auto_model.device))


def load_sentence_transformer(path: str, **kwargs: Any) -> SentenceTransformer:
    """Load a saved echo ``SentenceTransformer`` without ``trust_remote_code=True``.

    Only this package's two module classes are trusted; any other custom class still needs the flag. Relies on
    ``SentenceTransformer._load_with_module_classes`` (private API of sentence-transformers 6, also used by its
    trainer), which this package's tests check.
    """
    classes = {f"{cls.__module__}.{cls.__name__}": cls for cls in (EchoTransformer, EchoPooling)}
    return SentenceTransformer._load_with_module_classes(path, classes, **kwargs)


def _require_this_package(output_path: str) -> None:
    """State in the saved model which echo-embeddings version it needs; sentence-transformers checks it on load."""
    path = os.path.join(output_path, "config_sentence_transformers.json")
    if not os.path.isfile(path):  # the module was saved on its own, outside a SentenceTransformer
        return
    with open(path, encoding="utf8") as f:
        config = json.load(f)
    config.setdefault("requirements", {})["echo-embeddings"] = {
        "specifier": f">={__version__}",
        "reason": "This model's modules (echo_embeddings.st) come from the echo-embeddings package.",
    }
    with open(path, "w", encoding="utf8") as f:
        json.dump(config, f, indent=2, sort_keys=True)

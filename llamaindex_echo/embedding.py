"""EchoEmbedding: LlamaIndex's ``BaseEmbedding`` over an [echo_embeddings.EchoEncoder][]."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from llama_index.core.base.embeddings.base import BaseEmbedding, Embedding
from pydantic import ConfigDict, Field, model_validator

from echo_embeddings.config import EchoConfig
from echo_embeddings.framework_settings import EncoderSettings
from echo_embeddings.texts import check_texts, single_text
from echo_embeddings.tokenization import one_truncation_warning

REFUSED_HUGGINGFACE_ARGUMENTS = {
    "model": "pass model_name: EchoEmbedding loads (and shares) the model itself",
    "tokenizer": "pass model_name: echo reads the model's own tokenizer",
    "parallel_process": "one model per process; for several devices, embed with echo_embeddings.ray_data.embed_dataset",
    "target_devices": "one model per process; for several devices, embed with echo_embeddings.ray_data.embed_dataset",
    "tokenizer_kwargs": "the tokenizer is the model's own, read through the template",
    "config_kwargs": "use model_kwargs (passed to AutoModel.from_pretrained)",
}
"""``HuggingFaceEmbedding`` arguments with no echo equivalent, each refused with its reason. Its others are
honoured: ``trust_remote_code`` and ``revision`` go into ``model_kwargs``, ``tokenizer_name`` may repeat
``model_name``, ``backend`` may be "torch", ``pooling`` may be LlamaIndex's enum."""


class EchoEmbedding(EncoderSettings, BaseEmbedding):
    """Echo embeddings from any causal (decoder-only) LM: the text goes in the prompt twice and the second copy's
    hidden states are pooled (the template's way), so every pooled token has seen the whole text.

    ```python
    from llama_index.core import Settings
    from llamaindex_echo import EchoEmbedding

    Settings.embed_model = EchoEmbedding()  # SmolLM2-135M-Instruct, offline
    Settings.embed_model = EchoEmbedding(model_name="mistralai/Mistral-7B-Instruct-v0.2", device="cuda")
    ```

    Every [echo_embeddings.config.EchoConfig][] setting is a field; ``text_instruction`` is accepted for
    ``document_instruction``, and LlamaIndex's ``embed_batch_size`` is ``batch_size`` (either may be given).
    ``HuggingFaceEmbedding``'s other arguments are honoured or refused (``REFUSED_HUGGINGFACE_ARGUMENTS``).
    ``fingerprint`` identifies the vectors.
    Queries use the template's query form, texts its document form. Instances with the same model, device and
    dtype share one loaded model, and a pickled or ``to_dict`` copy reuses it in the same process.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())
    aliases: ClassVar[dict[str, str]] = {"text_instruction": "document_instruction"}

    show_progress_bar: bool = Field(default=False, description="Show the encoder's progress bar.")
    embed_batch_size: int = Field(
        default=EchoConfig.model_fields["batch_size"].default,
        description="LlamaIndex's name for batch_size: one number (either may be given).",
        gt=0,
        le=2048,  # LlamaIndex's own bound
    )

    @model_validator(mode="before")
    @classmethod
    def _huggingface_arguments(cls, data: Any) -> Any:
        # HuggingFaceEmbedding's constructor arguments that are not settings of ours: honoured, or refused.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for key in ("trust_remote_code", "revision"):
            if key in data:
                data["model_kwargs"] = {**(data.get("model_kwargs") or {}), key: data.pop(key)}
        tokenizer = data.pop("tokenizer_name", None)
        if tokenizer is not None and tokenizer != data.get("model_name"):
            raise ValueError(f"tokenizer_name={tokenizer!r}: echo reads the model's own tokenizer")
        if data.get("backend", "torch") != "torch":
            raise ValueError(f"backend={data['backend']!r}: EchoEmbedding runs the model in torch")
        data.pop("backend", None)
        if "pooling" in data:
            data["pooling"] = getattr(data["pooling"], "value", data["pooling"])  # LlamaIndex's Pooling enum
        for key, reason in REFUSED_HUGGINGFACE_ARGUMENTS.items():
            if data.get(key) is not None:
                raise ValueError(f"{key}: {reason}")
        return data

    @model_validator(mode="before")
    @classmethod
    def _embed_batch_size_is_batch_size(cls, data: Any) -> Any:
        # LlamaIndex hands texts over in chunks of embed_batch_size and the encoder runs each chunk as length-sorted
        # forward passes of batch_size texts: one number. LlamaIndex's own default of 10 spent more time between
        # calls on this project's CPU benchmark than EchoConfig's 32.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "embed_batch_size" in data:
            size = data.pop("embed_batch_size")
            if data.setdefault("batch_size", size) != size:
                raise ValueError("'embed_batch_size' and 'batch_size' are the same setting: give one")
        data["embed_batch_size"] = data.get("batch_size", EchoConfig.model_fields["batch_size"].default)
        return data

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._load_encoder(show_progress=self.show_progress_bar)

    @classmethod
    def class_name(cls) -> str:
        return "EchoEmbedding"

    def get_text_embedding_batch(self, texts: list[str], show_progress: bool = False, **kwargs: Any) -> list[Embedding]:
        # Check the whole list first: LlamaIndex hands it over in chunks, so an error raised later would name the
        # index within a chunk, not within ``texts``. The chunks' cut texts are counted into one warning.
        texts = check_texts(texts)
        self.encoder.check_lengths(texts)
        with one_truncation_warning(self.encoder.template_tokenizer):
            return super().get_text_embedding_batch(texts, show_progress, **kwargs)

    async def aget_text_embedding_batch(
        self, texts: list[str], show_progress: bool = False, **kwargs: Any
    ) -> list[Embedding]:
        texts = check_texts(texts)
        self.encoder.check_lengths(texts)
        with one_truncation_warning(self.encoder.template_tokenizer):
            return await super().aget_text_embedding_batch(texts, show_progress, **kwargs)

    def _get_query_embedding(self, query: str) -> Embedding:
        return self.encoder.encode_queries(single_text(query))[0].tolist()

    def _get_text_embedding(self, text: str) -> Embedding:
        return self._get_text_embeddings(single_text(text, role="text"))[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return self.encoder.encode_documents(texts, show_progress=self.show_progress_bar).tolist()

    async def _aget_query_embedding(self, query: str) -> Embedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    async def _aget_text_embedding(self, text: str) -> Embedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    async def _aget_text_embeddings(self, texts: list[str]) -> list[Embedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

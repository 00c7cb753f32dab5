"""EchoEmbeddings: LangChain's ``Embeddings`` interface over an :class:`echo_embeddings.EchoEncoder`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from echo_embeddings import DEFAULT_MODEL
from echo_embeddings.templates import resolve_template

if TYPE_CHECKING:
    from echo_embeddings import EchoEncoder


class EchoEmbeddings(BaseModel, Embeddings):
    """Echo embeddings from any causal (decoder-only) LM: the text goes in the prompt twice and the second copy's
    hidden states are mean-pooled, so every token has seen the whole text.

    A drop-in for ``HuggingFaceEmbeddings``::

        from langchain_echo import EchoEmbeddings

        embeddings = EchoEmbeddings()  # SmolLM2-135M-Instruct, offline
        embeddings = EchoEmbeddings(model_name="mistralai/Mistral-7B-Instruct-v0.2", device="cuda")

    ``embed_documents`` uses the template's document form and ``embed_query`` its query form, so
    ``query_instruction`` applies to queries only. Vectors are L2-normalized by default
    (``normalize_embeddings=True``), unlike ``HuggingFaceEmbeddings``. Instances with the same model, device and
    dtype share one loaded model. The async methods run the sync ones in an executor thread, off the event loop.
    """

    model_name: str = Field(default=DEFAULT_MODEL, alias="model")
    """Hub id, local folder or ``.gguf`` file of a causal LM."""
    template: str | dict[str, str] = "echo"
    """A preset ("echo", "echo-paragraph", "classical", "echo-instruct"), a pattern string such as
    ``"Repeat: {text}\\nAgain: {text}"``, or ``{"document": ..., "query": ...}``."""
    pooling: Literal["mean", "last"] = "mean"
    """``mean`` over the second copy (zero-shot); ``last`` for last-token fine-tuned checkpoints."""
    query_instruction: str | None = None
    """Fills the query form's ``{instruction}`` slot, or leads the query prompt if the template has none."""
    max_length: int = Field(default=512, gt=0)
    """Bound on the whole sequence, template and both copies; longer texts are truncated with a warning."""
    batch_size: int = Field(default=32, gt=0)
    """Texts per forward pass (batches of long texts are smaller: token budget ``batch_size * 256``)."""
    normalize_embeddings: bool = True
    """L2-normalize the vectors, so dot product equals cosine similarity."""
    device: str | None = None
    """"cuda", "mps", "cpu"...; None picks the best available."""
    dtype: str | None = None
    """"float32", "bfloat16"...; None means bfloat16 on CUDA, float32 elsewhere."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Passed to ``AutoModel.from_pretrained`` (revision, trust_remote_code, attn_implementation, ...)."""
    show_progress: bool = False
    """Show a progress bar while embedding."""
    cache_folder: str | None = None
    """Hugging Face download cache folder."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), populate_by_name=True)

    _encoder: EchoEncoder = PrivateAttr()

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        from echo_embeddings import EchoEncoder

        self._encoder = EchoEncoder.from_pretrained(
            self.model_name,
            template=self.template,
            pooling=self.pooling,
            max_length=self.max_length,
            normalize=self.normalize_embeddings,
            device=self.device,
            dtype=self.dtype,
            model_kwargs=self.model_kwargs,
            cache_folder=self.cache_folder,
        )

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        resolve_template(value)  # raises with the list of presets
        return value

    @property
    def encoder(self) -> EchoEncoder:
        """The underlying :class:`echo_embeddings.EchoEncoder`."""
        return self._encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents with the template's document form."""
        return self._encoder.encode_documents(
            texts, batch_size=self.batch_size, show_progress=self.show_progress
        ).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed a query with the template's query form and ``query_instruction``."""
        if not isinstance(text, str):
            raise TypeError(f"the query is {type(text).__name__}, expected str: {text!r:.80}")
        return self._encoder.encode_queries([text], instruction=self.query_instruction)[0].tolist()

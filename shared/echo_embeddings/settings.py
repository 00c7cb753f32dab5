"""EncoderSettings: the pydantic fields that configure an EchoEncoder, shared by the framework adapters.

The LangChain and LlamaIndex classes inherit these fields (and their validation) and add only their framework's
own names for batch size, normalization and progress bars. Importing this module does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator

from . import DEFAULT_MODEL
from .templates import resolve_template

if TYPE_CHECKING:
    from .encoder import EchoEncoder


class EncoderSettings(BaseModel):
    """Which model, template and pooling to embed with; builds the (shared) EchoEncoder."""

    model_config = ConfigDict(protected_namespaces=())

    model_name: str = Field(default=DEFAULT_MODEL, description="Hub id, local folder or .gguf file of a causal LM.")
    template: str | dict[str, str] = Field(
        default="echo",
        description="A preset (echo, echo-paragraph, classical, echo-instruct), a pattern string with {text} "
        "slots, or a {'document': ..., 'query': ..., 'instruction': ...} mapping.",
    )
    pooling: Literal["mean", "last"] | None = Field(
        default=None,
        description="mean over the second copy (zero-shot) or last token (last-token fine-tuned models); "
        "None: the template's own (mean for every preset but prompteol).",
    )
    query_instruction: str | None = Field(
        default=None,
        description="Fills the query form's {instruction} slot, or leads the query prompt if the template has none.",
    )
    max_length: int = Field(
        default=512, gt=0, description="Bound on the whole sequence (template and both copies); longer texts are cut."
    )
    device: str | None = Field(default=None, description="cuda, mps, cpu...; None picks cuda, then mps, then cpu.")
    dtype: str | None = Field(default=None, description="float32, bfloat16...; None: bfloat16 on CUDA, else float32.")
    model_kwargs: dict[str, Any] = Field(
        default_factory=dict,
        description="Passed to AutoModel.from_pretrained (revision, trust_remote_code, attn_implementation, ...).",
    )
    cache_folder: str | None = Field(default=None, description="Hugging Face download cache folder.")

    _encoder: EchoEncoder = PrivateAttr()

    @field_validator("template")
    @classmethod
    def _known_template(cls, value: str | dict[str, str]) -> str | dict[str, str]:
        resolve_template(value)  # raises with the list of presets
        return value

    @property
    def encoder(self) -> EchoEncoder:
        """The underlying :class:`echo_embeddings.EchoEncoder`."""
        return self._encoder

    def _load_encoder(self, normalize: bool) -> None:
        from .encoder import EchoEncoder

        self._encoder = EchoEncoder.from_pretrained(
            self.model_name,
            template=self.template,
            pooling=self.pooling,
            max_length=self.max_length,
            normalize=normalize,
            device=self.device,
            dtype=self.dtype,
            model_kwargs=self.model_kwargs,
            cache_folder=self.cache_folder,
        )

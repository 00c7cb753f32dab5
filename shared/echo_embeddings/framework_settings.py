"""EncoderSettings: [EchoConfig][] as the pydantic fields of a framework adapter, and the encoder it builds.

The LangChain and LlamaIndex classes inherit every setting (its default, validation and description) from
``EchoConfig`` and add only their framework's own names for some of them, as ``aliases``. Importing this module
does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import PrivateAttr, model_validator

from .config import EchoConfig, with_folder_settings

if TYPE_CHECKING:
    from .encoder import EchoEncoder


class EncoderSettings(EchoConfig):
    """Every [EchoConfig][] setting, under the names a framework's users know, and the (shared) encoder."""

    aliases: ClassVar[dict[str, str]] = {}
    """A framework's names for settings: ``{alias: setting}``. Either name is accepted, not both."""

    _encoder: EchoEncoder = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _resolve_names_and_folder(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for alias, name in cls.aliases.items():
            if alias in data:
                if name in data:
                    raise ValueError(f"{alias!r} and {name!r} are the same setting: give one")
                data[name] = data.pop(alias)
        return with_folder_settings(data)  # a fine-tuned model folder says how to read it

    @model_validator(mode="after")
    def _float_vectors(self) -> EncoderSettings:
        if self.precision != "float32":
            raise ValueError(
                f"precision={self.precision!r}: vector stores take lists of floats; use the store's own quantization "
                "(Qdrant, FAISS), or EchoEncoder.encode for quantized arrays"
            )
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        """A setting changed after construction applies from the next call: the encoder is rebuilt with it (on the
        same loaded model unless it chooses another). A value the encoder refuses leaves the old one in place."""
        name = self.aliases.get(name, name)
        old = getattr(self, name, None)
        super().__setattr__(name, value)
        if name in EchoConfig.model_fields and self.__pydantic_private__ and "_encoder" in self.__pydantic_private__:
            try:
                self._load_encoder()
            except Exception:
                super().__setattr__(name, old)
                raise

    @property
    def fingerprint(self) -> str:
        """The settings fingerprint of these vectors ([echo_embeddings.EchoEncoder.fingerprint][]): the
        namespace for a cache of them."""
        return self._encoder.fingerprint

    @property
    def encoder(self) -> EchoEncoder:
        """The underlying [echo_embeddings.EchoEncoder][]."""
        return self._encoder

    def _load_encoder(self, *, show_progress: bool = False) -> None:
        """Build [encoder][] from these settings (sharing a model already loaded with the same ones)."""
        from .encoder import EchoEncoder

        # Not model_dump: LlamaIndex's adds keys of its own.
        settings = {name: getattr(self, name) for name in EchoConfig.model_fields}
        self._encoder = EchoEncoder.from_pretrained(show_progress=show_progress, **settings)

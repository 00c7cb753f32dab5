"""ServerConfig: every setting of ``echo-embeddings serve``, declared once. Importing it needs no web framework."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

API_KEY_ENV = "ECHO_EMBEDDINGS_API_KEY"


class ServerConfig(BaseModel):
    """How the server listens, whom it serves and how much it takes."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    host: str = Field(default="127.0.0.1", description="Address to bind (loopback only unless told otherwise).")
    port: StrictInt = Field(default=8000, ge=0, le=65535, description="TCP port (0: any free port).")
    api_key: str | None = Field(
        default=None,
        description=f"Require 'Authorization: Bearer KEY' on /v1 (also from ${API_KEY_ENV}); not empty: leave it out "
        "for no key.",
    )
    served_model_name: str | None = Field(default=None, description="The model name clients send (default: model).")
    queue_size: StrictInt = Field(default=4096, ge=1, description="Texts waiting at most; beyond it, 503.")
    max_texts_per_request: StrictInt = Field(default=2048, ge=1, description="Texts in one request at most (413).")
    max_chars_per_text: StrictInt = Field(default=100_000, ge=1, description="Characters per text at most (413).")
    max_body_bytes: StrictInt = Field(default=16 * 2**20, ge=1, description="Request body size at most (413).")
    batch_wait_ms: float = Field(
        default=2.0,
        ge=0,
        description="How long a pass may wait, in milliseconds, for as many texts as the last pass held (or a "
        "tenth of the last pass's time, if longer).",
    )

    @field_validator("api_key")
    @classmethod
    def _not_empty(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("an empty key would let in an empty Bearer token; leave api_key out to require none")
        return value

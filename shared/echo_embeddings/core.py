"""EchoCore: the one inference core, a loaded causal LM read through an [EchoConfig][echo_embeddings.config.EchoConfig].

Both ways of reading texts use it: [EchoEncoder][echo_embeddings.EchoEncoder] (batch planning, packing, windows,
stats and quantization on top) and the sentence-transformers module
[EchoTransformer][echo_embeddings.st.EchoTransformer] (a thin adapter to sentence-transformers' module protocol,
through which training runs). The core owns what decides a
vector: the checks of the settings against the model, the template tokenizer for each length bound, which
instruction a form reads, the shared prefix and its cached states, the pass from a collated batch to token states
([EchoCore.states][]), pooling, and the settings fingerprint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from .causality import is_causal
from .collation import unpack
from .config import EchoConfig
from .errors import ConfigError
from .loading import LoadedModel
from .pooling import pool, pool_spans
from .prefix_cache import PrefixCache, whole_pass_tokens
from .templates import PoolingName, Template
from .tokenization import TemplateTokenizer

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel


class EchoCore:
    """A loaded model, its settings and what follows from them; one per encoder or sentence-transformers module.

    Raises [ConfigError][echo_embeddings.errors.ConfigError] when the settings do not fit the model (``max_length`` past
    its positions, ``truncate_dim`` past its width, a template that cannot fit ``max_length``).
    """

    def __init__(self, loaded: LoadedModel, config: EchoConfig) -> None:
        check_max_length(config.max_length, loaded)
        check_vector_size(config, loaded)
        self.loaded = loaded
        self.config = config
        self.template: Template = config.resolved_template
        self.pooling: PoolingName = config.resolved_pooling
        self.model: PreTrainedModel | PeftModel = loaded.model
        self.whole_from = whole_pass_tokens(loaded.device)  # the long-input policy of this device
        self.prefix_cache = PrefixCache(self.model, whole_from=self.whole_from)
        self._tokenizers: dict[int | None, TemplateTokenizer] = {}
        self.tokenizer()  # a template that cannot fit max_length fails here

    @classmethod
    def for_model(cls, loaded: LoadedModel, config: EchoConfig | None = None) -> EchoCore:
        """The core of ``loaded`` read with ``config``; None reads it as its folder says (a fine-tuned model's
        ``echo_config.json``, the default model's shipped settings), as ``from_pretrained`` does. A config that
        names another model is a [ConfigError][echo_embeddings.errors.ConfigError]."""
        if config is None:
            config = EchoConfig.create(loaded.name)
        elif config.model_name != loaded.name:
            raise ConfigError(
                f"the config names the model {config.model_name!r}, but the loaded model is {loaded.name!r}: "
                "load the config's model, or leave config out to read the loaded model's own settings"
            )
        return cls(loaded, config)

    def tokenizer(self, max_length: int | None = None) -> TemplateTokenizer:
        """The template tokenizer for a whole-sequence bound: ``max_length``, else the config's, else the model's
        position limit."""
        if max_length not in self._tokenizers:
            self._tokenizers[max_length] = TemplateTokenizer(
                self.loaded.tokenizer,
                self.template,
                max_length or self.config.max_length or position_limit(self.loaded),
                max_text_tokens=self.config.max_text_tokens,
                truncation=self.config.truncation,
                position_limit=position_limit(self.loaded),
            )
        return self._tokenizers[max_length]

    def instruction(self, query: bool, instruction: str | None) -> str | None:
        """The instruction a form reads: ``instruction`` when given, else the config's
        ``query_instruction``/``document_instruction``; None means the template's own. An empty string counts as
        not given, as sentence-transformers passes ``""`` for "no prompt"."""
        if instruction:
            return instruction
        return (self.config.query_instruction if query else self.config.document_instruction) or None

    def shared_prefix(
        self, *, query: bool, instruction: str | None, tokenizer: TemplateTokenizer | None = None
    ) -> tuple[int, ...]:
        """The tokens every input of this form starts with, whose states the prefix cache computes once; none for a
        model whose early states depend on later tokens. ``instruction`` as [instruction][] resolved it."""
        if not is_causal(self.model):
            return ()
        return (tokenizer or self.tokenizer()).shared_prefix(query=query, instruction=instruction)

    def states(
        self, prefix: tuple[int, ...], batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Each row's hidden states after ``prefix``, its token mask and its pooled span's mask, on the model's device.

        ``batch`` is ``collation.collate``'s or ``collation.collate_packed``'s, with ``prefix`` (which every row
        starts with) left out. Outside training the prefix's states come from the cache; with gradients on
        (training) every row runs whole, prefix included, so that the gradients reach the prefix's states too.
        """
        device = self.loaded.device
        input_ids, pool_mask = batch["input_ids"].to(device), batch["pool_mask"].to(device)
        if "gather_index" in batch:  # packed rows
            hidden = self.prefix_cache.forward(
                prefix, input_ids, batch["attention_mask"].to(device), batch["position_ids"].to(device)
            )
            return unpack(hidden, batch["gather_index"].to(device)), batch["token_mask"].to(device), pool_mask
        token_mask = batch["attention_mask"].to(device)
        if not (self.model.training or torch.is_grad_enabled()):
            return self.prefix_cache.forward(prefix, input_ids, token_mask), token_mask, pool_mask
        head = torch.tensor(prefix, dtype=input_ids.dtype, device=device).expand(len(input_ids), -1)
        whole = self.model(
            input_ids=torch.cat([head, input_ids], dim=1),
            attention_mask=torch.cat([torch.ones_like(head), token_mask], dim=1),
        ).last_hidden_state
        return whole[:, len(prefix) :], token_mask, pool_mask

    def pool(
        self, hidden: torch.Tensor, pool_mask: torch.Tensor, token_mask: torch.Tensor, *, normalize: bool
    ) -> torch.Tensor:
        """One float32 vector per row: the states under ``pool_mask`` pooled the template's way, unit length if
        ``normalize``."""
        vectors = pool(hidden, pool_mask, token_mask, self.pooling)
        return torch.nn.functional.normalize(vectors, dim=-1) if normalize else vectors

    def pool_spans(self, states: torch.Tensor, span_masks: torch.Tensor, last: int) -> torch.Tensor:
        """One float32 vector per span of one input's ``states`` (late chunking's chunks), pooled the template's
        way (``pooling.pool_spans``; ``last`` is the input's final token), unit length if
        the config normalizes."""
        vectors = pool_spans(states, span_masks, last, self.pooling)
        return torch.nn.functional.normalize(vectors, dim=-1) if self.config.normalize else vectors

    def vectors(self, hidden: torch.Tensor, pool_mask: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """The vectors these settings give, in float32: [pool][] with the config's ``normalize``, then cut to
        ``truncate_dim`` (unit length again if ``normalize``)."""
        vectors = self.pool(hidden, pool_mask, token_mask, normalize=self.config.normalize)
        if self.config.truncate_dim is None or self.config.truncate_dim >= vectors.shape[-1]:
            return vectors
        vectors = vectors[..., : self.config.truncate_dim]
        return torch.nn.functional.normalize(vectors, dim=-1) if self.config.normalize else vectors

    def replace_model(self, model: PreTrainedModel | PeftModel) -> None:
        """Run ``model`` (the same network, e.g. wrapped with LoRA adapters or merged) from now on."""
        self.model = model
        self.prefix_cache = PrefixCache(model, whole_from=self.whole_from)

    def fingerprint(self, *, weights: str | None = None, dtype: Any = None) -> str:
        """The settings fingerprint ([echo_embeddings.fingerprint][]) of these vectors; ``weights`` and ``dtype``
        default to the loaded model's (and its ``model_kwargs`` count). Given ``weights`` (a saved folder's), the
        loading options are left out: the folder's files hold what they changed."""
        from .fingerprint import fingerprint

        return fingerprint(
            self.config,
            self.loaded.weights_id if weights is None else weights,
            max_length=self.tokenizer().max_length,
            dtype=self.model.dtype if dtype is None else dtype,
            model_kwargs=self.loaded.load_kwargs.get("model_kwargs") if weights is None else None,
        )


def position_limit(loaded: LoadedModel) -> int | None:
    """The model's position limit (``max_position_embeddings``), or None when its config has none."""
    return getattr(loaded.model.config, "max_position_embeddings", None) or None


def check_max_length(max_length: int | None, loaded: LoadedModel) -> None:
    """``max_length`` must fit the model's position embeddings."""
    limit = position_limit(loaded)
    if limit and max_length is not None and max_length > limit:
        raise ConfigError(f"max_length must be at most {limit} for {loaded.name}, got {max_length!r}")


def check_vector_size(config: EchoConfig, loaded: LoadedModel) -> None:
    """``truncate_dim`` and ``quantization_ranges`` must fit the model's hidden size."""
    dim = config.truncate_dim or loaded.dim
    if dim > loaded.dim:
        raise ConfigError(f"truncate_dim must be at most {loaded.dim} for {loaded.name}, got {dim}")
    if config.quantization_ranges is not None and len(config.quantization_ranges[0]) != dim:
        raise ConfigError(
            f"quantization_ranges has {len(config.quantization_ranges[0])} dimensions, the vectors {dim}: compute "
            "them with EchoEncoder.quantization_ranges at the same truncate_dim"
        )

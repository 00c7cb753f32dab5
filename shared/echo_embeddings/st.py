"""sentence-transformers modules for echo embeddings, and a builder.

sentence-transformers' own ``Pooling(include_prompt=False)`` drops one fixed-length prefix per batch, which cannot
express "the second copy of a variable-length text". So echo brings its own input module, [EchoTransformer][]: it
owns the causal LM and its tokenizer, puts each text into the template (query form for ``encode_query``, document
form otherwise; a prompt fills the ``{instruction}`` slot), and in ``forward`` emits ``token_embeddings`` and the
``sentence_embedding`` its settings give (pooled, normalized and cut to ``truncate_dim`` by the inference core), so
the pipeline never disagrees with the settings saved beside it. [EchoPooling][] remains for folders saved by
release 0.2 and earlier, whose pipelines list it.

sentence-transformers >= 6 loads classes from outside its own package only with ``trust_remote_code=True``:
``SentenceTransformer(path, trust_remote_code=True)``, or [load_sentence_transformer][] (no flag needed).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.base.modules import InputModule, Module

from . import __version__
from .collation import collate
from .config import CONFIG_FILE, FINGERPRINT_KEY, FOLDER_KEYS, EchoConfig, folder_settings_from
from .core import EchoCore
from .errors import ConfigError, InputError
from .files import follow_umask
from .fingerprint import weights_identity
from .late_chunking import marked_span, token_spans
from .loading import load_model
from .templates import PoolingName, Template
from .texts import check_texts
from .tokenization import ModelInput, TemplateTokenizer, one_truncation_warning

if TYPE_CHECKING:
    from peft import PeftModel
    from sentence_transformers.base.modality_types import PairInput, SingleInput
    from transformers import PreTrainedModel
    from typing_extensions import Self


class EchoTransformer(InputModule):
    """A causal LM behind an echo template: texts in, token states and the pooled-span mask out.

    Args:
        model_name_or_path: hub id, local folder or ``.gguf`` file; None for the default model.
        settings: [EchoConfig][echo_embeddings.config.EchoConfig] fields (``template``, ``max_length``,
            ``query_instruction``, ``device``, ``dtype``, ``model_kwargs``, ...); a folder's own
            ``echo_config.json`` supplies the defaults.

    A thin adapter over the inference core ([EchoCore][echo_embeddings.core.EchoCore]), which
    [EchoEncoder][echo_embeddings.EchoEncoder] reads with too: same instructions, prefix, states and pooling, so
    the same vectors. Outside training, ``forward`` runs the template's shared prefix once and reuses its keys and
    values; in training mode every sequence runs whole, so gradients reach it.
    """

    config_file_name = CONFIG_FILE
    config_keys = list(FOLDER_KEYS)

    def __init__(self, model_name_or_path: str | None = None, **settings: Any) -> None:
        super().__init__()
        config = EchoConfig.create(model_name_or_path, **settings)
        if config.truncation == "windows":
            raise ConfigError("truncation='windows' gives a text several inputs; sentence-transformers needs one")
        # Not shared with other encoders: sentence-transformers moves, casts and trains its modules.
        self._loaded = load_model(config.model_name, **config.loading_options(), shared=False)
        self.auto_model: PreTrainedModel | PeftModel = self._loaded.model
        self.tokenizer = self._loaded.tokenizer
        self.echo_config = config

    @property
    def echo_config(self) -> EchoConfig:
        """The settings this module reads texts with; setting new ones applies them to the next batch."""
        return self.core.config

    @echo_config.setter
    def echo_config(self, config: EchoConfig) -> None:
        core = EchoCore(self._loaded, config)
        core.replace_model(self.auto_model)  # the module's current network (LoRA-wrapped, moved or cast)
        self.core = core

    @property
    def template(self) -> Template:
        return self.core.template

    @property
    def max_seq_length(self) -> int:
        """Tokens of each text read: ``max_text_tokens`` (sentence-transformers' name for it)."""
        return self.echo_config.max_text_tokens

    @max_seq_length.setter
    def max_seq_length(self, value: int) -> None:
        self.echo_config = self.echo_config.replace(max_text_tokens=value)

    def get_config_dict(self) -> dict[str, Any]:
        return self.echo_config.folder_settings()

    def get_embedding_dimension(self) -> int:
        return self.echo_config.truncate_dim or int(self.auto_model.config.hidden_size)

    def replace_model(self, model: PreTrainedModel | PeftModel) -> None:
        """Use ``model`` (the same network, e.g. wrapped with LoRA adapters or merged) from now on."""
        self.auto_model = model
        self.core.replace_model(model)

    def train(self, mode: bool = True) -> EchoTransformer:
        self.core.prefix_cache.clear()  # cached prefix states are stale once the weights may change
        return super().train(mode)

    def preprocess(
        self,
        inputs: Sequence[SingleInput | PairInput],
        prompt: str | None = None,
        task: str | None = None,
        max_length: int | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Template, tokenize and pad a batch of texts (any other input is an InputError naming its index): query
        form if ``task == "query"``; ``prompt`` is the instruction. A text that marks a span
        ([mark_span][echo_embeddings.late_chunking.mark_span]) is read whole and pools that span's tokens of the
        second copy: a late-chunked chunk, for training on chunks pooled inside their document.

        Without a prompt (None or ``""``), the config's ``query_instruction``/``document_instruction`` apply, then
        the template's, as in ``EchoEncoder.encode``. ``max_length`` (a trainer's per-call override) bounds this
        batch's whole sequences, as ``max_length`` does.
        """
        query = task == "query"
        instruction = self.core.instruction(query, prompt)
        tokenizer = self.core.tokenizer(max_length)
        marked = [marked_span(text, i) for i, text in enumerate(check_texts(inputs))]
        items = tokenizer([text for text, _ in marked], query=query, instruction=instruction)
        if any(span for _, span in marked):
            items = [
                item if span is None else self._span_input(tokenizer, item, text, span, i, query, instruction)
                for i, (item, (text, span)) in enumerate(zip(items, marked, strict=True))
            ]
        cut = sum(item.truncated for item in items)
        budget = tokenizer.budget(query=query, instruction=instruction)
        trainer_cut = (
            max_length is not None
            and budget is not None
            and (tokenizer.max_text_tokens is None or budget < tokenizer.max_text_tokens)
        )
        remedy = "raise train_max_length (the trainer's max_length) to read more" if trainer_cut else None
        tokenizer.warn_truncated(cut, len(items), query=query, instruction=instruction, remedy=remedy)
        prefix = self.core.shared_prefix(query=query, instruction=instruction, tokenizer=tokenizer)
        features: dict[str, Any] = collate(items, tokenizer.pad_id, len(prefix))
        features["prefix_ids"] = prefix  # batch metadata, not a per-row tensor: columns that share it still merge
        return features

    def _span_input(
        self,
        tokenizer: TemplateTokenizer,
        item: ModelInput,
        text: str,
        span: tuple[int, int],
        index: int,
        query: bool,
        instruction: str | None,
    ) -> ModelInput:
        """``item`` pooling only the tokens of ``span`` in its copy of ``text`` (the head of which it reads)."""
        if self.core.pooling != "mean" or self.core.config.truncation == "tail":
            raise ConfigError(
                f"inputs[{index}]: a marked span is pooled by its mean over the head of the text: pooling 'mean' and "
                f"truncation 'head' or 'error', not {self.core.pooling!r} and {self.core.config.truncation!r}"
            )
        _, offsets = tokenizer.with_offsets(text, query=query, instruction=instruction)
        ((first, last),) = token_spans(offsets, [span], index)
        budget = tokenizer.budget(query=query, instruction=instruction)
        read = budget if item.truncated and budget is not None else item.text_tokens
        if last > read:
            raise InputError(
                f"inputs[{index}]: the marked span ends at token {last} of the text, past the {read} read: raise "
                "train_max_length (or max_length), or mark a span nearer the start"
            )
        return ModelInput(item.input_ids, item.pool_start + first, item.pool_start + last, item.truncated, item.text,
                          item.text_tokens)  # fmt: skip

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Token states of what follows the shared prefix ``prefix_ids`` in every input, and the vectors
        ([EchoCore.states][echo_embeddings.core.EchoCore.states]: the prefix's states come from the cache outside
        training; in training every sequence runs whole, so gradients reach the prefix too)."""
        hidden, token_mask, pool_mask = self.core.states(features.get("prefix_ids", ()), features)
        features.update(token_embeddings=hidden, attention_mask=token_mask, pool_mask=pool_mask)
        features["sentence_embedding"] = self.core.vectors(hidden, pool_mask, token_mask)
        return features

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        """Save the weights, tokenizer and ``echo_config.json``, which also records the folder's ``fingerprint``
        ([echo_embeddings.fingerprint][]) as an encoder reads it with these settings in float32."""
        self.auto_model.save_pretrained(output_path, safe_serialization=safe_serialization)
        self.save_tokenizer(output_path)
        self.save_config(output_path)
        path = Path(output_path) / CONFIG_FILE
        saved = json.loads(path.read_text(encoding="utf-8"))
        weights = weights_identity(output_path, self.auto_model)
        saved[FINGERPRINT_KEY] = self.core.fingerprint(weights=weights, dtype="float32")
        path.write_text(json.dumps(saved, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        _require_this_package(output_path)
        follow_umask(Path(output_path))  # safetensors writes weights as 0600

    @classmethod
    def load(
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        init_defaults: dict[str, Any] | None = None,
        *,
        trust_remote_code: bool = False,
        model_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Self:
        """The module saved in ``model_name_or_path`` (a folder or hub id), with its ``echo_config.json``'s settings
        (``init_defaults``, sentence-transformers' defaults for a module's config, are not used: the folder's file
        holds every setting)."""
        # The folder's echo_config.json is read by EchoConfig.create; for a hub model, fetch it here.
        try:
            config = cls.load_config(
                model_name_or_path,
                subfolder=subfolder,
                token=token,
                cache_folder=cache_folder,
                revision=revision,
                local_files_only=local_files_only,
            )
        except json.JSONDecodeError as err:
            where = Path(model_name_or_path, subfolder, CONFIG_FILE)
            raise ConfigError(f"{where}: unreadable echo configuration ({err})") from None
        config = folder_settings_from(config, Path(model_name_or_path, subfolder, CONFIG_FILE))
        hub = {"token": token, "revision": revision, "local_files_only": local_files_only, "subfolder": subfolder}
        hub = {key: value for key, value in hub.items() if value}
        return cls(
            model_name_or_path,
            **config,
            model_kwargs={**hub, "trust_remote_code": trust_remote_code, **(model_kwargs or {})},
            cache_folder=cache_folder,
        )


class EchoPooling(Module):
    """The pooling module of pipelines saved by release 0.2 and earlier, now a pass-through: [EchoTransformer][]
    emits ``sentence_embedding`` itself, pooled as its settings say. ``pooling``, which those folders record, is
    not read: the settings in ``echo_config.json`` are."""

    config_keys = ["embedding_dimension"]

    def __init__(self, embedding_dimension: int, pooling: PoolingName | None = None) -> None:
        super().__init__()
        self.embedding_dimension = embedding_dimension

    def forward(self, features: dict[str, torch.Tensor], **kwargs: Any) -> dict[str, torch.Tensor]:
        return features

    def get_embedding_dimension(self) -> int:
        return self.embedding_dimension

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        self.save_config(output_path)


class EchoSentenceTransformer(SentenceTransformer):
    """A ``SentenceTransformer`` that checks the whole input list before sentence-transformers sorts and batches it,
    so a bad item is named by the caller's own index (the module only ever sees one sorted batch)."""

    @property
    def echo_transformer(self) -> EchoTransformer:
        """The first module: the echo reading of the model (a [ConfigError][echo_embeddings.errors.ConfigError] if
        another module was put there)."""
        module = self[0]
        if not isinstance(module, EchoTransformer):
            raise ConfigError(f"the first module is a {type(module).__name__}, not an EchoTransformer")
        return module

    def encode(self, inputs: Any, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(inputs, str):  # a single str is sentence-transformers' own shorthand for one text
            check_texts(inputs)
        module = self[0]
        counting = (
            one_truncation_warning(module.core.tokenizer())
            if isinstance(module, EchoTransformer)
            else contextlib.nullcontext()
        )
        with counting:  # one warning per call, as EchoEncoder.encode gives
            return super().encode(inputs, *args, **kwargs)


def sentence_transformer(model_name: str | None = None, **settings: Any) -> EchoSentenceTransformer:
    """A ``SentenceTransformer`` that embeds with echo: the same vectors as ``EchoEncoder`` with these settings.

    ``settings`` are [EchoConfig][echo_embeddings.config.EchoConfig] fields. ``model.encode_query`` uses the
    template's query form and ``encode_document`` its document form; a ``prompt``/``prompt_name`` fills the
    template's ``{instruction}`` slot. Pooling, normalization and ``truncate_dim`` follow the config (a folder's own
    by default), also after a change to the module's ``echo_config``; its ``encode(precision=...)`` quantizes, so
    the ``precision`` setting is refused here.
    """
    if settings.get("precision", "float32") != "float32":
        raise ConfigError("precision: sentence-transformers quantizes per call: model.encode(texts, precision=...)")
    transformer = EchoTransformer(model_name, **settings)
    return EchoSentenceTransformer(modules=[transformer], device=str(transformer.auto_model.device))


def load_sentence_transformer(path: str, **kwargs: Any) -> SentenceTransformer:
    """Load a saved echo ``SentenceTransformer`` (an ``EchoSentenceTransformer``) without ``trust_remote_code``.

    A causal LM's folder without ``modules.json`` gets the echo modules, as [sentence_transformer][] builds
    them. Only this package's two module classes are trusted; any other custom class still needs the flag. Relies on
    ``SentenceTransformer._load_with_module_classes`` (private API of sentence-transformers 6, also used by its
    trainer), which this package's tests check.
    """
    if Path(path).is_dir() and not (Path(path) / "modules.json").is_file():
        # A causal LM's folder, not a saved SentenceTransformer: build the echo modules over it, as every other
        # surface reads it (sentence-transformers would fall back to plain mean pooling).
        unused = sorted(set(kwargs) - {"device"})
        if unused:
            raise ConfigError(f"{path} is a model folder, not a saved SentenceTransformer: {unused} do not apply")
        return sentence_transformer(path, device=kwargs.get("device"))
    classes = {f"{cls.__module__}.{cls.__name__}": cls for cls in (EchoTransformer, EchoPooling)}
    return EchoSentenceTransformer._load_with_module_classes(path, classes, **kwargs)


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

"""Command-line options generated from the settings models, so an option never disagrees with the setting it sets.

Every model-using command offers the [SETTING_OPTIONS][] of [EchoConfig][echo_embeddings.config.EchoConfig]; a
command with settings of its own (training, the server) offers every field of its model with
[config_options][]. Type, choices, help and default come from the pydantic field. No torch here.
"""

from __future__ import annotations

import argparse
import json
import time
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from ..config import SHOWN_DEFAULT, EchoConfig
from ..errors import InputError
from . import report

if TYPE_CHECKING:
    from pydantic import BaseModel

    from ..encoder import EchoEncoder

SETTING_OPTIONS = {
    "model_name": "--model",
    "template": "--template",
    "pooling": "--pooling",
    "batch_size": "--batch-size",
    "max_text_tokens": "--max-text-tokens",
    "max_length": "--max-length",
    "truncation": "--truncation",
    "truncate_dim": "--truncate-dim",
    "query_instruction": "--query-instruction",
    "document_instruction": "--document-instruction",
    "precision": "--precision",
    "device": "--device",
    "dtype": "--dtype",
}
"""The [EchoConfig][echo_embeddings.config.EchoConfig] settings every model-using command offers, by option name."""


def positive_int(value: str) -> int:
    """argparse type: an int of at least 1."""
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return number


def model_options(
    parser: argparse.ArgumentParser,
    *,
    repeat_template: bool = False,
    defaults: dict[str, str] | None = None,
    helps: dict[str, str] | None = None,
    leave_out: tuple[str, ...] = (),
) -> None:
    """Add the [SETTING_OPTIONS][] but those in ``leave_out`` (which the command does not use); ``defaults`` names
    the command's own defaults where they are not the settings', ``helps`` says what a setting does in this command
    where the settings' description does not; ``repeat_template`` lets ``--template`` be given several times (one
    run per template)."""
    for name, option in SETTING_OPTIONS.items():
        if name in leave_out:
            continue
        kwargs = setting_option(name, EchoConfig.model_fields[name])
        if defaults and name in defaults:
            kwargs["help"] = f"{EchoConfig.model_fields[name].description} Default: {defaults[name]}"
        if helps and name in helps:
            default = kwargs["help"].rfind(" Default:")
            kwargs["help"] = helps[name] + (kwargs["help"][default:] if default >= 0 else "")
        if name == "template" and repeat_template:
            kwargs.update(action="append", help=kwargs["help"] + ". Repeatable.")
        parser.add_argument(option, **kwargs)


def run_options(parser: argparse.ArgumentParser, *, quiet: bool = True) -> None:
    """``--threads`` (see [apply_threads][]) and, where the command reports its progress, ``--quiet``."""
    parser.add_argument(
        "--threads", type=positive_int, default=None, help="torch's CPU threads (default: torch's, one per core)"
    )
    if quiet:
        parser.add_argument("--quiet", action="store_true", help="no loading line and no progress (bar or lines)")


def apply_threads(args: argparse.Namespace) -> None:
    """Set torch's CPU threads to ``--threads``, if given (on a shared machine fewer threads can run faster)."""
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)


def config_options(parser: argparse.ArgumentParser, config: type[BaseModel], title: str) -> None:
    """An option group with an option per field of the pydantic ``config``: ``--field-name``."""
    group = parser.add_argument_group(title)
    for name, field in config.model_fields.items():
        group.add_argument("--" + name.replace("_", "-"), **setting_option(name, field))


def setting_option(name: str, field: Any) -> dict[str, Any]:
    """argparse keywords for a pydantic field: its type or choices, its description and default (None when not
    given, so the setting's own default applies)."""
    kwargs: dict[str, Any] = {
        "dest": name,
        "default": None,
        "help": f"{field.description} Default: {shown_default(field)}",
    }
    declared = _declared_type(field.annotation)
    kind = get_origin(declared) or declared
    literals = (field.annotation, *get_args(field.annotation))  # Literal[...] or Literal[...] | None
    choices = [c for arg in literals if get_origin(arg) is Literal for c in get_args(arg)]
    if choices:
        kwargs["choices"] = choices
    elif kind is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif kind is list:
        kwargs["nargs"] = "+"
        item = _declared_type(get_args(declared)[0])
        if item is int:
            kwargs["type"] = int
    elif kind in (int, float):
        kwargs["type"] = kind
    return kwargs


def shown_default(field: Any) -> Any:
    """A field's default as help and docs say it (``SHOWN_DEFAULT``, where the declared one is a fallback)."""
    return (field.json_schema_extra or {}).get(SHOWN_DEFAULT, field.default)


def _declared_type(annotation: Any) -> Any:
    """A field's annotation without ``| None`` and ``Annotated``: ``StrictInt | None`` -> int."""
    kinds = get_args(annotation) if get_origin(annotation) in (Union, UnionType) else (annotation,)
    kind = next(arg for arg in kinds if arg is not type(None))
    return get_args(kind)[0] if get_origin(kind) is Annotated else kind


def given(args: argparse.Namespace, names: Any) -> dict[str, Any]:
    """The options among ``names`` given on the command line (the others keep their settings' defaults)."""
    return {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}


INFERENCE_ONLY = ("precision", "truncate_dim")
"""Settings of the vectors a model gives, which training and distillation do not use."""


def encoder_from(args: argparse.Namespace, *, template: str | None) -> EchoEncoder:
    """The encoder the [SETTING_OPTIONS][] (and ``--quantization-ranges``, where offered) ask for, reading
    ``template``."""
    from ..encoder import EchoEncoder

    settings = {name: getattr(args, name) for name in SETTING_OPTIONS}
    ranges = getattr(args, "quantization_ranges", None)
    if ranges is not None:
        try:
            settings["quantization_ranges"] = json.loads(ranges.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise InputError(f"{ranges}: cannot read quantization ranges ({err})") from None
    config = EchoConfig.create(**{**settings, "template": template})  # a bad setting fails before the loading line
    apply_threads(args)
    if not args.quiet:
        report(f"loading {config.model_name} ...")
    start = time.monotonic()
    encoder = EchoEncoder.from_config(config)
    if not args.quiet:
        report(f"loaded {encoder.model_name} on {encoder.device} in {time.monotonic() - start:.0f} s")
    return encoder

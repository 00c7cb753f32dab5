"""Export a finished LoRA training run's adapter as a shipped trained model ([echo_embeddings.trained][]).

``python -m echo_embeddings.training.export RUN FOLDER`` writes ``FOLDER/adapter.safetensors`` (the final
checkpoint's LoRA matrices, named after the base model's weights, in bfloat16 unless ``--dtype`` says otherwise),
its ``SHA256SUMS`` and the run's ``echo_config.json`` (less its fingerprint record, which names the run's own
weights: the shipped model is the adapter merged into the base). ``make train-recipe`` runs it on the recipe's run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import CONFIG_FILE, FINGERPRINT_KEY
from ..digests import file_sha256
from ..errors import ConfigError
from ..files import follow_umask
from ..trained import ADAPTER_FILE, CHECKSUM_FILE
from .trainer import CHECKPOINTS, LOG_FILE, TRAINABLE_FILE, _latest_checkpoint


def export_adapter(run: str | Path, folder: str | Path, *, dtype: str = "bfloat16") -> str:
    """Write the adapter of the finished run ``run`` into ``folder``; returns its SHA-256."""
    import torch
    from safetensors.torch import load_file, save_file

    run, folder = Path(run), Path(folder)
    try:
        log = json.loads((run / LOG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"{run}: not a finished training run ({err})") from None
    options = log["training"]
    if not options["lora"]:
        raise ConfigError(f"{run}: trained every weight, not LoRA adapters: there is no adapter to export")
    latest = _latest_checkpoint(run / CHECKPOINTS)
    final_step = max(entry.get("step", 0) for entry in log["log"])
    if latest is None or int(Path(latest).name.split("-")[1]) != final_step:
        raise ConfigError(f"{run}: no checkpoint of the final step ({final_step}) in {run / CHECKPOINTS}")
    tensors = {}
    for name, tensor in load_file(Path(latest) / TRAINABLE_FILE).items():
        # "0.auto_model.base_model.model.layers.0.self_attn.q_proj.lora_A.default.weight" -> "layers.0...lora_A.weight"
        plain = name.split("base_model.model.", 1)[-1].replace(".default.", ".")
        tensors[plain] = tensor.to(getattr(torch, dtype)).contiguous()
    folder.mkdir(parents=True, exist_ok=True)
    metadata = {"lora_r": str(options["lora_r"]), "lora_alpha": str(options["lora_alpha"]), "step": str(final_step)}
    save_file(tensors, folder / ADAPTER_FILE, metadata=metadata)
    digest = file_sha256(folder / ADAPTER_FILE)
    (folder / CHECKSUM_FILE).write_text(f"{digest}  {ADAPTER_FILE}\n", encoding="ascii")
    settings = json.loads((run / CONFIG_FILE).read_text(encoding="utf-8"))
    settings.pop(FINGERPRINT_KEY, None)
    (folder / CONFIG_FILE).write_text(json.dumps(settings, indent=4) + "\n", encoding="utf-8")
    follow_umask(folder)  # safetensors writes 0600
    return digest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", help="the output folder of a finished LoRA training run")
    parser.add_argument("folder", help="where to write the adapter, its checksum and its echo_config.json")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    args = parser.parse_args()
    digest = export_adapter(args.run, args.folder, dtype=args.dtype)
    print(f"{Path(args.folder) / ADAPTER_FILE}: SHA-256 {digest}")


if __name__ == "__main__":
    main()

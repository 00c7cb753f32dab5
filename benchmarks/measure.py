"""What the benchmarks measure with: FLOPs and positions of every forward pass, the matrix-multiply peak, and causal
LMs of published shapes with random weights (speed does not depend on the weights)."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

import torch

# Published configs (hub config.json of HuggingFaceTB/SmolLM2-135M-Instruct and mistralai/Mistral-7B-v0.1).
SMOLLM2_135M = dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                    num_key_value_heads=3, max_position_embeddings=8192, rope_theta=100000.0, rms_norm_eps=1e-5,
                    tie_word_embeddings=True)  # fmt: skip
MISTRAL_7B = dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                  num_key_value_heads=8, max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-5)  # fmt: skip
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            max_position_embeddings=4096)  # fmt: skip


def random_model(folder: Path, tokenizer: Any, shape: dict) -> Path:
    """A causal LM of ``shape`` with seeded random weights, saved with ``tokenizer`` into ``folder``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id, **shape)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


class ForwardCounter:
    """Counts what the model computes: positions (with padding), padding and FLOPs of every forward pass."""

    def __init__(self, model: torch.nn.Module, linear_params: int) -> None:
        config = model.config
        self.layers, self.hidden = config.num_hidden_layers, config.hidden_size
        self.linear_params = linear_params
        self.reset()
        model.register_forward_pre_hook(self._count, with_kwargs=True)

    def reset(self) -> None:
        self.positions = self.padding = 0
        self.flops = 0.0

    def _count(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
        batch, length = kwargs["input_ids"].shape
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        past = cache.get_seq_length() if cache is not None else 0
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.ndim == 4:  # a packed pass: additive, (batch, 1, length, keys), every key computed
            query = torch.arange(length, device=mask.device)
            real = int((mask[:, 0, query, mask.shape[-1] - length + query] == 0).sum())  # text tokens see themselves
            attention = 4 * self.layers * self.hidden * batch * length * mask.shape[-1]
        else:
            real = int(mask[:, past:].sum()) if mask is not None else batch * length
            attention = 4 * self.layers * self.hidden * batch * length * (past + (length + 1) / 2)
        self.positions += batch * length
        self.padding += batch * length - real
        self.flops += 2 * self.linear_params * batch * length + attention


def gemm_peak(size: int = 2048, repeats: int = 5, device: str = "cpu", dtype: torch.dtype = torch.float32) -> float:
    """Best matrix-multiply FLOP/s of ``device`` in ``dtype`` (on CPU, with torch's own threads)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    torch.mm(a, b)
    best = math.inf
    for _ in range(repeats):
        _synchronize(device)
        start = time.perf_counter()
        torch.mm(a, b)
        _synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def device_name(device: str | torch.device) -> str:
    """The GPU's name, or the CPU and its core count, for a result's header."""
    device = torch.device(device)
    return torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"


def _synchronize(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()

"""The model forward pass, with the template's shared prefix computed once.

Every input of a template starts with the same tokens (BOS, "Rewrite the following sentence:", a fixed
instruction). A causal LM's states for those tokens never depend on what follows, so their keys and values are
computed once per prefix and reused for every batch; only the rest of each sequence goes through the model.
"""

from __future__ import annotations

import copy
import inspect
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from peft import PeftModel
    from transformers import PreTrainedModel

MAX_PREFIXES = 16

WHOLE_PASS_TOKENS = 512
"""On a CPU, a lone unpadded input at least this long (prefix included) runs whole, with no mask, instead of after
the cached prefix: given no mask, the attention's causal kernel skips the masked half of the scores where a mask
makes it compute them all (measured on the results page's CPU section), for a few prefix tokens computed again.
[whole_pass_tokens][] decides it for a device."""


def whole_pass_tokens(device: torch.device) -> int | None:
    """The length from which an input runs whole and alone on ``device``: ``WHOLE_PASS_TOKENS`` on a CPU, where one
    long input fills the cores; None (never) on an accelerator, where long inputs share passes."""
    return WHOLE_PASS_TOKENS if device.type == "cpu" else None


class PrefixCache:
    """Runs ``model`` on batches that all start with the same token prefix, computing the prefix only once; a lone
    unpadded input of ``whole_from`` tokens or more (None: never) runs whole instead, with no mask."""

    def __init__(self, model: PreTrainedModel | PeftModel, *, whole_from: int | None = None) -> None:
        self.model = model
        self.whole_from = whole_from
        # transformers 5 renamed the forward argument past_key_values -> cache; accept either. A wrapper such as
        # peft's PeftModel forwards **kwargs, so ask the model it wraps: a wrong name would be silently ignored.
        base = getattr(model, "get_base_model", lambda: model)()
        params = inspect.signature(base.forward).parameters
        self._cache_arg = "cache" if "cache" in params else "past_key_values"
        self._caches: OrderedDict[tuple[int, ...], Any] = OrderedDict()
        self._lock = threading.Lock()

    @torch.inference_mode()
    def forward(
        self,
        prefix: tuple[int, ...],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Last hidden states of ``input_ids`` (the part after ``prefix``), as if ``prefix`` preceded every row.

        ``attention_mask`` is 2-D (1 for tokens, 0 for padding; the prefix's columns are added here), or a 4-D
        mask that already covers the prefix's columns, given with its ``position_ids`` (a packed pass). One unpadded
        input of at least ``whole_from`` tokens runs whole, prefix included, with no mask.
        """
        positions = {} if position_ids is None else {"position_ids": position_ids}
        if not prefix:
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **positions).last_hidden_state
        if (
            self.whole_from is not None
            and input_ids.shape[0] == 1
            and attention_mask.ndim == 2
            and len(prefix) + input_ids.shape[1] >= self.whole_from
            and bool(attention_mask.all())
        ):
            whole = torch.cat([input_ids.new_tensor([prefix]), input_ids], dim=1)
            return self.model(input_ids=whole).last_hidden_state[:, len(prefix) :]
        cache = copy.deepcopy(self._cache_for(prefix))  # the forward pass appends to it
        cache.batch_repeat_interleave(input_ids.shape[0])
        if attention_mask.ndim == 2:
            prefix_mask = attention_mask.new_ones((input_ids.shape[0], len(prefix)))
            attention_mask = torch.cat([prefix_mask, attention_mask], dim=1)
        return self.model(
            input_ids=input_ids,
            attention_mask=attention_mask,
            use_cache=True,
            **positions,
            **{self._cache_arg: cache},
        ).last_hidden_state

    def clear(self) -> None:
        """Forget every cached prefix (after the model's weights change)."""
        with self._lock:
            self._caches.clear()

    def _cache_for(self, prefix: tuple[int, ...]) -> Any:
        with self._lock:
            if prefix in self._caches:
                self._caches.move_to_end(prefix)
                return self._caches[prefix]
            device = next(self.model.parameters()).device
            output = self.model(input_ids=torch.tensor([prefix], device=device), use_cache=True)
            self._caches[prefix] = getattr(output, self._cache_arg)
            if len(self._caches) > MAX_PREFIXES:
                self._caches.popitem(last=False)
            return self._caches[prefix]

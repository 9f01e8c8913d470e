"""One forward pass that returns logits and, for MoE models, the router logits."""

from __future__ import annotations

from typing import Any

import torch

from ringrl.models.loading import is_moe


def forward(
    model: Any,
    input_ids_BT: torch.Tensor,
    attention_mask_BT: torch.Tensor,
    position_ids_BT: torch.Tensor | None = None,
    router: bool = True,
) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """``(logits_BTV, router_logits)``; router_logits is one ``[B*T, E]`` tensor per MoE layer, or ``()``.

    With ``position_ids_BT`` the rows are *packed*: several sequences end to end, each
    numbering its positions from 0. The attention mask is then left to transformers,
    which builds a block-diagonal causal mask from the position restarts, so no token
    sees another sequence. ``router=False``: a pass that needs no router terms (the
    reference model, pi_old) asks the model not to collect them."""
    kwargs: dict[str, Any] = {"input_ids": input_ids_BT, "attention_mask": attention_mask_BT, "use_cache": False}
    if position_ids_BT is not None:
        kwargs.update(attention_mask=None, position_ids=position_ids_BT)
    moe = is_moe(model)
    if moe:
        kwargs["output_router_logits"] = router
    out = model(**kwargs)
    router = tuple(getattr(out, "router_logits", None) or ()) if moe else ()
    return out.logits, router

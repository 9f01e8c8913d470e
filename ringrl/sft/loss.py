"""The SFT objective: next-token cross-entropy on response tokens only."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def sft_loss(
    logits_BTV: torch.Tensor, input_ids_BT: torch.Tensor, loss_mask_BT: torch.Tensor, denominator: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Sum of ``-log p(x_t | x_<t)`` over positions where ``loss_mask_BT`` is True, divided by ``denominator``.

    Position ``t`` is predicted from the logits at ``t - 1``; the mask marks target
    tokens (the response and its end token), so the prompt never enters the loss.
    ``denominator`` is the number of target tokens in the whole optimizer step, fixed
    before the first micro-batch runs, so accumulation over any split gives the same
    gradient as one batch.
    """
    logits_BTV = logits_BTV[:, :-1].float()
    targets_BT = input_ids_BT[:, 1:]
    mask_BT = loss_mask_BT[:, 1:]
    nll_BT = F.cross_entropy(logits_BTV.reshape(-1, logits_BTV.shape[-1]), targets_BT.reshape(-1), reduction="none")
    nll_BT = nll_BT.view_as(targets_BT) * mask_BT
    n = mask_BT.sum()
    loss = nll_BT.sum() / denominator
    return loss, {"nll_sum": nll_BT.sum().detach(), "tokens": n.detach()}


def sft_loss_from_logprobs(
    logprobs_BT: torch.Tensor, loss_mask_BT: torch.Tensor, denominator: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """:func:`sft_loss` from the targets' log-probs (``[B, T-1]``, aligned with ``input_ids[:, 1:]``,
    e.g. from :func:`ringrl.models.forward.token_stats`, which never holds ``[B, T, V]``).

    ``loss_mask_BT`` is the ``[B, T]`` mask over input positions, as for :func:`sft_loss`.
    The sum over target tokens is float32, divided by the step's ``denominator``."""
    mask_BT = loss_mask_BT[:, 1:].to(logprobs_BT.device)
    nll_BT = torch.where(mask_BT.bool(), -logprobs_BT.float(), 0.0)
    loss = nll_BT.sum() / denominator
    return loss, {"nll_sum": nll_BT.sum().detach(), "tokens": mask_BT.sum().detach()}

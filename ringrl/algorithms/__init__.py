"""The RL algorithm as pure functions (the Ring-lite paper's RL objective, Eq. 1 to 6).

No model objects, no process groups, no I/O: the trainer calls these and knows no
algorithm. Where things are:

- ``types.py``       Sample, ScoredGroup, SelectedSample, FormedBatch (typed records).
- ``advantages.py``  GRPO group advantages (R - mean) / (std + eps).
- ``c3po.py``        C3PO token-budget selection (Eq. 3) and batch former (Eq. 2).
- ``grpo.py``        GRPO batch former, per-response length normalisation (Eq. 1).
- ``dapo.py``        DAPO batch former (token-mean) and dynamic sampling's group filter.
- ``formers.py``     the formers by name (``BATCH_FORMERS``), per-token weights.
- ``losses.py``      token log-probs, entropy, KL k3, the PPO-clip policy loss (Eq. 1, 2, 4).
- ``moe.py``         MoE router terms: load balance (Eq. 5), router z-loss (Eq. 6), expert load.
- ``microbatch.py``  token-count micro-batches (padded or packed) and data-parallel balancing.

See docs/algorithms.md for how the trainer strings them together.
"""

from ringrl.algorithms.advantages import assign_advantages, grpo_advantages
from ringrl.algorithms.c3po import c3po_needs_more, form_c3po_batch, select_budget
from ringrl.algorithms.config import FormerConfig
from ringrl.algorithms.dapo import dapo_keep_groups, dapo_needs_more, form_dapo_batch, informative_groups
from ringrl.algorithms.formers import (
    BATCH_FORMERS,
    FILL_POLICIES,
    BatchFormer,
    FillPolicy,
    get_batch_former,
    get_fill_policy,
    token_weights,
)
from ringrl.algorithms.grpo import form_grpo_batch
from ringrl.algorithms.losses import kl_k3, policy_loss, token_entropy, token_logprobs
from ringrl.algorithms.microbatch import balance_across_ranks, pack_by_tokens, split_by_tokens
from ringrl.algorithms.moe import expert_load, load_balance_loss, moe_aux_loss, router_z_loss
from ringrl.algorithms.types import FormedBatch, Sample, ScoredGroup, SelectedSample

__all__ = [
    "BATCH_FORMERS",
    "FILL_POLICIES",
    "BatchFormer",
    "FillPolicy",
    "FormedBatch",
    "FormerConfig",
    "Sample",
    "ScoredGroup",
    "SelectedSample",
    "assign_advantages",
    "balance_across_ranks",
    "c3po_needs_more",
    "dapo_keep_groups",
    "dapo_needs_more",
    "expert_load",
    "form_c3po_batch",
    "form_dapo_batch",
    "form_grpo_batch",
    "get_batch_former",
    "get_fill_policy",
    "grpo_advantages",
    "informative_groups",
    "kl_k3",
    "load_balance_loss",
    "moe_aux_loss",
    "pack_by_tokens",
    "policy_loss",
    "router_z_loss",
    "select_budget",
    "split_by_tokens",
    "token_entropy",
    "token_logprobs",
    "token_weights",
]

"""Rollout engines: how responses are sampled from the policy.

:class:`~ringrl.rollout.hf.HFEngine` (transformers ``generate``, CPU and GPU) is the
default. An engine returns, for every prompt, ``n`` :class:`Completion` records with the
sampled token ids and the engine's own log-probs of them (kept to measure the mismatch
with the trainer's recomputed log-probs).
"""

from ringrl.rollout.hf import Completion, HFEngine

__all__ = ["Completion", "HFEngine"]

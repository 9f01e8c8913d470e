"""Rollout engines: how responses are sampled from the policy, for RL and for evaluation.

:class:`~ringrl.rollout.hf.HFEngine` (our own sampling loop over a transformers model's
KV cache, CPU and GPU) is the one engine of ringrl; :class:`~ringrl.rollout.hf.Engine` is
the protocol another backend (vLLM, SGLang) would implement. An engine returns, for every
prompt, ``n`` :class:`Completion` records with the sampled token ids, the engine's own
log-probs of them and the entropies of the sampling distribution.
"""

from ringrl.rollout.hf import Completion, Engine, HFEngine, ignored_sampling_settings
from ringrl.rollout.sampling import restrict, sample_step

__all__ = ["Completion", "Engine", "HFEngine", "ignored_sampling_settings", "restrict", "sample_step"]

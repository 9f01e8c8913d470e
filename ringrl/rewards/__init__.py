"""Verifiable rewards: math, science, logic and sandboxed code; a pool that scores batches.

The reward is the Ring-lite paper's sparse rule-based one: 1.0 when
a verifier accepts the final answer, else 0.0, no format reward, no partial credit.
Verifiers are total: any response, however broken or large, gets a :class:`Verdict`
with a status (``correct``, ``wrong``, ``no_answer``, ``timeout``, ``error``, and for
code ``runtime_error``, ``compile_error``, ``memory_limit``, ``output_limit``,
``unsupported_language``). See docs/rewards.md.
"""

from ringrl.rewards.extract import extract_code_block, extract_last_boxed
from ringrl.rewards.pool import RewardPool, score_batch
from ringrl.rewards.registry import register_verifier, verifier_names
from ringrl.rewards.sandbox import Limits
from ringrl.rewards.types import Verdict

__all__ = [
    "Limits",
    "RewardPool",
    "Verdict",
    "extract_code_block",
    "extract_last_boxed",
    "register_verifier",
    "score_batch",
    "verifier_names",
]

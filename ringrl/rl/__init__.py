"""Stage 3 of the recipe: reasoning RL with C3PO (default), GRPO or DAPO.

The algorithm lives in :mod:`ringrl.algorithms` (pure functions); this package
orchestrates: rollouts (:mod:`ringrl.rl.rollout`), the loss pass over token-count
micro-batches (:mod:`ringrl.rl.update`), checkpoint and exact resume
(:mod:`ringrl.rl.state`), and the step and loop (:mod:`ringrl.rl.trainer`).
"""

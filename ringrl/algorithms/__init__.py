"""The RL algorithm as pure functions (PAPER_NOTES.md, "RL objective", Eq. 1 to 6).

No model objects, no process groups, no I/O: the trainer calls these and knows no
algorithm. Where things are:

- ``moe.py``        MoE router terms: load balance (Eq. 5), router z-loss (Eq. 6), expert load.
- ``losses.py``     token log-probs, entropy, KL k3, the PPO-clip policy loss (Eq. 1, 2, 4).
"""

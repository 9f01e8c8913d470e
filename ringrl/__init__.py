"""ringrl: the Ring-lite training recipe (long-CoT SFT, entropy-based checkpoint
selection, two-stage RL with C3PO, verifiable rewards, evaluation) as a library and CLI."""

__version__ = "0.1.0"

"""Session-wide tiny fixtures for the foundation, SFT and RL tests.

Everything here is built once per session in temporary directories and kept tiny
(hidden 32, 2 layers, vocabulary about 300) so the whole suite stays fast on 2 cores.
Fixture names carry a ``ringrl_`` prefix so they never shadow a sub-folder's fixtures.
Models are loaded with ``device=cpu`` (``model.device=cpu`` in configs) even where CUDA exists:
the exactness assertions (resume, accumulation, golden curve) assume fp32 on CPU.
Helpers are reached through the ``ringrl_util`` fixture (this module), not by importing
``conftest`` (several folders have one).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

TINY_SHAPE = dict(
    vocab_size=300,
    hidden_size=32,
    num_layers=2,
    num_heads=2,
    num_kv_heads=1,
    num_experts=4,
    experts_per_token=2,
    expert_size=16,
    shared_expert_size=32,
    max_positions=1024,
    seed=0,
)


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """The skip count, every run: the default run should skip nothing where every feature works,
    so a non-zero count is worth a look (``-ra``, the default addopts, lists each reason)."""
    skipped = terminalreporter.stats.get("skipped", [])
    terminalreporter.write_line(f"ringrl: {len(skipped)} test(s) skipped")


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread():
    """The suite shares 2 cores with other work: one intra-op thread is fastest for tiny models."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def parity_score(rows, responses):
    """Deterministic fake verifier: reward 1 when the response has an even number of characters.

    Random tokens decode to strings of varying length, so groups get mixed rewards and
    non-zero advantages; no reward pool is needed.
    """
    return [float(len(r) % 2 == 0) for r in responses]


def zero_grader(rows, responses):
    return [0.0] * len(rows)


def perturbed_reference(model, scale: float = 0.05):
    """A frozen copy of ``model`` with seeded noise on every weight: a reference that differs, so
    the KL term has a gradient."""
    import copy

    ref = copy.deepcopy(model)
    torch.manual_seed(0)
    with torch.no_grad():
        for p in ref.parameters():
            p.add_(scale * torch.randn_like(p))
    return ref.requires_grad_(False)


def random_groups(seed: int, vocab: int):
    """Three prompts x four random responses (3 to 14 tokens) with mixed rewards, advantages
    assigned, and pi_old off the current policy so that PPO ratios clip."""
    import random

    from ringrl.algorithms import assign_advantages
    from ringrl.algorithms.types import Sample, ScoredGroup

    rng = random.Random(seed)
    groups = []
    for g in range(3):
        prompt = [rng.randrange(4, vocab) for _ in range(rng.randint(5, 12))]
        samples = []
        for i in range(4):
            n = rng.randint(3, 14)
            resp = [rng.randrange(4, vocab) for _ in range(n)]
            old = [-5.7 + rng.uniform(-0.6, 0.6) for _ in range(n)]
            samples.append(
                Sample(
                    f"g{g}",
                    i,
                    prompt,
                    resp,
                    rollout_logprobs=[x + 0.01 for x in old],
                    reward=float(rng.random() < 0.5),
                    old_logprobs=old,
                )
            )
        groups.append(ScoredGroup(f"g{g}", samples))
    return assign_advantages(groups)


@pytest.fixture(scope="session")
def ringrl_util():
    """The helpers of this module: ``parity_score``, ``zero_grader``, ``random_groups``,
    ``perturbed_reference``, ``load_weights``, ``unchanged_params``, ``load_script``
    (``sys.modules["conftest"]`` may be another folder's conftest by now)."""
    return SimpleNamespace(
        parity_score=parity_score,
        zero_grader=zero_grader,
        random_groups=random_groups,
        perturbed_reference=perturbed_reference,
        load_weights=load_weights,
        unchanged_params=unchanged_params,
        load_script=load_script,
    )


@pytest.fixture(scope="session")
def ringrl_corpus() -> list[str]:
    from ringrl.tasks import corpus, make_split

    rows = make_split("math", "train", 12, seed=0) + make_split("logic", "train", 12, seed=0)
    return corpus(rows)


@pytest.fixture(scope="session")
def ringrl_tiny_cfg():
    from ringrl.models.tiny import TinyModelConfig

    return TinyModelConfig(**TINY_SHAPE)


@pytest.fixture(scope="session")
def ringrl_moe_dir(tmp_path_factory, ringrl_corpus, ringrl_tiny_cfg) -> Path:
    """The embedded tiny MoE (Qwen2-MoE, shared + 4 routed experts, top-2) and its tokenizer."""
    from ringrl.models.tiny import build_tiny

    return build_tiny(tmp_path_factory.mktemp("models") / "tiny-moe", ringrl_corpus, ringrl_tiny_cfg)


@pytest.fixture(scope="session")
def ringrl_dense_dir(tmp_path_factory, ringrl_moe_dir) -> Path:
    """A tiny dense Llama with the MoE's tokenizer (a plain HF causal LM directory, not built by ringrl)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(ringrl_moe_dir)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=1024,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    torch.manual_seed(1)
    model = LlamaForCausalLM(cfg)
    path = tmp_path_factory.mktemp("models") / "tiny-dense"
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def ringrl_other_tok_dir(tmp_path_factory, ringrl_tiny_cfg) -> Path:
    """A tiny MoE whose tokenizer was trained on a different corpus (a mismatching reference model)."""
    from ringrl.models.tiny import build_tiny

    corpus = [f"the quick brown fox jumps over the lazy dog {i}" for i in range(50)]
    return build_tiny(tmp_path_factory.mktemp("models") / "other-tok", corpus, ringrl_tiny_cfg)


def load_script(name: str):
    """``benchmarks/NAME.py`` imported as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py"
    )
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load_weights(path) -> dict[str, torch.Tensor]:
    """Parameters of the HF model saved at ``path``, by name, loaded with plain transformers
    (on-disk names can differ from parameter names, e.g. fused expert tensors)."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path)
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def unchanged_params(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor], names) -> list[str]:
    """Names among ``names`` whose tensor is bit-identical before and after."""
    return [n for n in names if torch.equal(before[n], after[n])]

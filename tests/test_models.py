"""The embedded tiny MoE + tokenizer round-trip through plain transformers; any HF causal LM loads."""

from __future__ import annotations

import pytest
import torch

from ringrl.errors import UserError
from ringrl.models import load_policy


def test_tiny_moe_round_trips_through_plain_transformers(tmp_path, ringrl_corpus, ringrl_tiny_cfg):
    from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen2MoeForCausalLM

    from ringrl.models.tiny import build_model, train_tokenizer

    tok = train_tokenizer(ringrl_corpus, ringrl_tiny_cfg.vocab_size)
    model = build_model(ringrl_tiny_cfg, tok).eval()
    model.save_pretrained(tmp_path, safe_serialization=True)
    tok.save_pretrained(tmp_path)
    assert list(tmp_path.glob("*.safetensors"))

    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    loaded_tok = AutoTokenizer.from_pretrained(tmp_path)
    assert isinstance(loaded, Qwen2MoeForCausalLM)
    c = loaded.config
    assert (c.num_experts, c.num_experts_per_tok, c.num_hidden_layers, c.hidden_size) == (4, 2, 2, 32)
    assert c.shared_expert_intermediate_size == 32 and c.moe_intermediate_size == 16
    assert len(loaded_tok) == len(tok) <= 300 and c.vocab_size == len(tok)

    texts = ["What is 47 + 38 - 15?", "Sort these numbers from smallest to largest: 41, 7, 23."]
    for t in texts:
        assert loaded_tok(t)["input_ids"] == tok(t)["input_ids"]
        assert loaded_tok.decode(loaded_tok(t)["input_ids"]) == t
    # digits are one token each (arithmetic is learnable digit by digit)
    assert len(loaded_tok("12345", add_special_tokens=False)["input_ids"]) == 5

    batch = loaded_tok(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        a = model(**batch).logits
        b = loaded(**batch).logits
    assert a.shape == (2, batch["input_ids"].shape[1], len(tok))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    # router logits come back from the HF forward (the MoE terms need them)
    with torch.no_grad():
        out = loaded(**batch, output_router_logits=True)
    assert len(out.router_logits) == 2 and out.router_logits[0].shape[-1] == 4

    # the chat template is saved and renders ChatML with a generation prompt
    assert loaded_tok.chat_template
    rendered = loaded_tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert loaded_tok.eos_token == "<|im_end|>" and loaded_tok.pad_token == "<|pad|>"
    assert loaded_tok.convert_tokens_to_ids("<|im_start|>") != loaded_tok.unk_token_id
    assert len(loaded_tok("<|im_start|>", add_special_tokens=False)["input_ids"]) == 1


def test_build_tiny_is_seeded(tmp_path, ringrl_corpus, ringrl_tiny_cfg, ringrl_moe_dir, ringrl_util):
    """Same corpus and config -> the same tokenizer and bit-identical weights; another seed differs."""
    from dataclasses import replace

    from ringrl.models.tiny import build_tiny

    again = build_tiny(tmp_path / "again", ringrl_corpus, ringrl_tiny_cfg)
    assert (again / "tokenizer.json").read_text() == (ringrl_moe_dir / "tokenizer.json").read_text()
    a, b = ringrl_util.load_weights(ringrl_moe_dir), ringrl_util.load_weights(again)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    other = ringrl_util.load_weights(build_tiny(tmp_path / "other", ringrl_corpus, replace(ringrl_tiny_cfg, seed=1)))
    assert not torch.equal(a["model.layers.0.mlp.gate.weight"], other["model.layers.0.mlp.gate.weight"])
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temporary directory left


def test_load_policy_moe_and_dense(ringrl_moe_dir, ringrl_dense_dir):
    from ringrl.models.forward import forward
    from ringrl.models.loading import is_moe, moe_top_k

    for path, moe in ((ringrl_moe_dir, True), (ringrl_dense_dir, False)):
        model, tok = load_policy(path, device="cpu", dtype="float32")
        assert next(model.parameters()).dtype == torch.float32
        assert tok.pad_token_id is not None and tok.padding_side == "left"
        assert is_moe(model) is moe
        ids = torch.tensor([[5, 6, 7, 8]])
        logits, router = forward(model, ids, torch.ones_like(ids))
        assert logits.shape == (1, 4, len(tok))
        if moe:
            assert moe_top_k(model) == 2 and len(router) == 2 and router[0].shape == (4, 4)
        else:
            assert router == ()


def test_dense_model_is_a_plain_llama(ringrl_dense_dir):
    model, _ = load_policy(ringrl_dense_dir, device="cpu")
    assert type(model).__name__ == "LlamaForCausalLM"


def test_non_causal_lm_dir_is_user_error(tmp_path, ringrl_moe_dir):
    from transformers import BertConfig, BertForMaskedLM, T5Config

    # a masked-LM BERT checkpoint (weights and tokenizer present): 'bert' has a causal class in
    # transformers' mapping (BertLMHeadModel), so only the saved architecture says it is not one
    bert = tmp_path / "bert"
    BertForMaskedLM(
        BertConfig(vocab_size=300, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    ).save_pretrained(bert)
    for f in ringrl_moe_dir.glob("tokenizer*"):
        (bert / f.name).write_bytes(f.read_bytes())
    with pytest.raises(UserError) as e:
        load_policy(bert)
    assert "not a causal language model" in str(e.value) and "BertForMaskedLM" in str(e.value)
    assert "\n" not in str(e.value)

    t5 = tmp_path / "t5"
    T5Config(vocab_size=50, d_model=16, num_layers=1, num_heads=2, d_ff=32).save_pretrained(t5)
    with pytest.raises(UserError, match="'t5' is not a causal language model"):
        load_policy(t5)

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no config.json"):
        load_policy(empty)
    with pytest.raises(UserError, match="not found"):
        load_policy(tmp_path / "missing")

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    with pytest.raises(UserError, match="config.json"):
        load_policy(broken)

    # a causal LM config without weights: a one-line error, not a traceback
    noweights = tmp_path / "noweights"
    noweights.mkdir()
    (noweights / "config.json").write_text((ringrl_moe_dir / "config.json").read_text())
    with pytest.raises(UserError) as e:
        load_policy(noweights)
    assert "\n" not in str(e.value)


def test_bad_dtype_and_device_are_user_errors(ringrl_moe_dir):
    with pytest.raises(UserError, match="dtype"):
        load_policy(ringrl_moe_dir, dtype="float8")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="CUDA"):
            load_policy(ringrl_moe_dir, device="cuda")


def test_tiny_config_validation():
    from ringrl.config import load_config
    from ringrl.errors import ConfigError
    from ringrl.sft.config import SFTConfig

    with pytest.raises(ConfigError) as e:
        load_config(SFTConfig, overrides=["model.tiny.experts_per_token=5", "model.tiny.num_experts=4"])
    assert e.value.key == "model.tiny.experts_per_token"

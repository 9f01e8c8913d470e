"""Chat-format rows (``messages``): SFT trains every assistant turn and nothing else, RL and eval
prompts render the conversation through the chat template, malformed lists are one line."""

from __future__ import annotations

import json

import pytest
from transformers import AutoTokenizer

from ringrl.cli import main
from ringrl.data.prompts import MATH_SUFFIX, render_prompt
from ringrl.data.rows import check_row, load_rows, row_prompt
from ringrl.errors import DataError, UserError
from ringrl.sft.data import collate, encode_example

CONVERSATION = [
    {"role": "system", "content": "You add numbers."},
    {"role": "user", "content": "2 + 3"},
    {"role": "assistant", "content": "5"},
    {"role": "user", "content": "and 4 + 4"},
    {"role": "assistant", "content": "8"},
]


@pytest.fixture(scope="module")
def tok(ringrl_moe_dir):
    return AutoTokenizer.from_pretrained(ringrl_moe_dir)


def trained_text(tok, example) -> list[str]:
    mask = collate([example], tok.pad_token_id)["loss_mask"][0].tolist()
    runs, cur = [], []
    for i, on in enumerate(mask):
        if on:
            cur.append(example.input_ids[i])
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    if cur:
        runs.append(tok.decode(cur))
    return runs


def test_loss_covers_every_assistant_turn_and_nothing_else(tok):
    ex = encode_example(tok, {"messages": CONVERSATION})
    # the ChatML template closes each turn with <|im_end|> (the eos): trained through it, not past it
    assert trained_text(tok, ex) == ["5<|im_end|>", "8<|im_end|>"]
    full = tok.apply_chat_template(CONVERSATION, tokenize=False)
    assert tok.decode(ex.input_ids) == full  # the whole conversation, system prompt included
    assert ex.n_target == len(tok("5<|im_end|>")["input_ids"]) + len(tok("8<|im_end|>")["input_ids"])


def test_single_turn_messages_train_like_prompt_response(tok):
    msgs = {"messages": [{"role": "user", "content": "2 + 3"}, {"role": "assistant", "content": "5"}]}
    plain = {"prompt": "2 + 3", "response": "5", "domain": "general"}
    a, b = encode_example(tok, msgs), encode_example(tok, plain)
    assert a.input_ids[: a.n_prompt] == b.input_ids[: b.n_prompt]  # same rendered prompt
    assert trained_text(tok, a) == trained_text(tok, b)


def test_rl_prompt_from_messages(tok):
    row = {"messages": CONVERSATION[:2], "domain": "math", "answer": "5"}
    assert check_row(row, "rl") is None and row_prompt(row) == "2 + 3"
    text = render_prompt(tok, row)
    assert text == (
        "<|im_start|>system\nYou add numbers.<|im_end|>\n"
        f"<|im_start|>user\n2 + 3\n{MATH_SUFFIX}<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize(
    ("messages", "purpose", "message"),
    [
        ("hi", "sft", "must be a non-empty list"),
        ([{"content": "x"}], "sft", "item 0 must be an object with 'role' and 'content'"),
        ([{"role": "bot", "content": "x"}], "sft", "unknown role 'bot'"),
        ([{"role": "user", "content": ""}], "sft", "'content' must be a non-empty string"),
        ([{"role": "user", "content": "q"}], "sft", "needs an assistant turn"),
        ([{"role": "user", "content": "q"}, {"role": "system", "content": "s"}], "rl", "system message may only"),
        (CONVERSATION, "rl", "must end with the user turn"),
    ],
)
def test_malformed_messages_name_the_line_and_field(tmp_path, messages, purpose, message):
    path = tmp_path / "rows.jsonl"
    good = {"messages": CONVERSATION[:3]} if purpose == "sft" else {"prompt": "q", "domain": "math", "answer": "1"}
    bad = {"messages": messages, "domain": "math", "answer": "1"}
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    with pytest.raises(DataError) as e:
        load_rows(path, purpose)
    assert str(e.value).startswith(f"{path}:2: field 'messages' ") and message in str(e.value)


def test_messages_without_a_chat_template_is_one_line(tok):
    bare = AutoTokenizer.from_pretrained(tok.name_or_path)
    bare.chat_template = None
    with pytest.raises(UserError, match="chat-format rows .* need a tokenizer with a chat template"):
        encode_example(bare, {"messages": CONVERSATION})


def test_sft_trains_on_chat_rows(tmp_path, ringrl_moe_dir, capsys):
    rows = tmp_path / "chat.jsonl"
    rows.write_text("".join(json.dumps({"messages": CONVERSATION}) + "\n" for _ in range(8)))
    held = tmp_path / "held.jsonl"  # held-out prompts as messages too (they end with the user turn)
    held.write_text(json.dumps({"messages": CONVERSATION[:2], "domain": "math", "answer": "5"}) + "\n")
    out = tmp_path / "run"
    args = ["sft", f"model.path={ringrl_moe_dir}", f"data.train={rows}", f"data.eval={held}", f"out={out}"]
    args += ["epochs=1", "progress=false", "tensorboard=false", "threads=1", "entropy.max_new_tokens=8"]
    assert main(args) == 0, capsys.readouterr().err
    m = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    ex = encode_example(AutoTokenizer.from_pretrained(ringrl_moe_dir), {"messages": CONVERSATION})
    assert sum(r["train/tokens"] for r in m) == 8 * ex.n_target  # the two assistant turns of each row
    assert (out / "checkpoints" / "epoch-1" / "config.json").is_file()


@pytest.fixture
def rendered(monkeypatch):
    """Every prompt the RL rollout and the evaluator render, as rendered."""
    import ringrl.eval.runner
    import ringrl.rl.rollout

    seen: list[str] = []

    def spy(tokenizer, row):
        seen.append(render_prompt(tokenizer, row))
        return seen[-1]

    monkeypatch.setattr(ringrl.rl.rollout, "render_prompt", spy)
    monkeypatch.setattr(ringrl.eval.runner, "render_prompt", spy)
    return seen


def test_rl_and_eval_run_on_chat_rows(tmp_path, ringrl_moe_dir, rendered, capsys):
    """Prompt rows given as messages (a system turn, then the user's) train RL and evaluate;
    the model sees the conversation through the chat template, system turn included."""
    rows = tmp_path / "chat.jsonl"
    turns = [[CONVERSATION[0], {"role": "user", "content": f"{i} + 3"}] for i in range(4)]
    rows.write_text(
        "".join(json.dumps({"messages": t, "domain": "math", "answer": str(i + 3)}) + "\n" for i, t in enumerate(turns))
    )
    out = tmp_path / "rl"
    args = ["rl", f"model.path={ringrl_moe_dir}", f"data.train={rows}", f"out={out}", "steps=1", "threads=1"]
    args += ["rollout.prompts_per_step=2", "rollout.samples_per_prompt=2", "rollout.max_new_tokens=8"]
    args += ["former.budget_tokens=16", "reward_workers=1", "progress=false", "tensorboard=false"]
    assert main(args) == 0, capsys.readouterr().err
    assert len(rendered) >= 2 and all(
        p.startswith("<|im_start|>system\nYou add numbers.<|im_end|>\n") for p in rendered
    )
    rendered.clear()
    results = tmp_path / "eval.json"
    args = ["eval", "--model", str(ringrl_moe_dir), "--benchmarks", f"chat={rows}", "--max-new-tokens", "8"]
    assert main([*args, "--output", str(results), "--no-progress", "--grader-workers", "1"]) == 0, (
        capsys.readouterr().err
    )
    users = [p.split("<|im_start|>user\n")[1].split("\n")[0] for p in rendered]
    assert sorted(users) == [f"{i} + 3" for i in range(4)]  # every problem, its own conversation
    assert all(p.startswith("<|im_start|>system\nYou add numbers.") for p in rendered)
    assert len(results.with_suffix(".samples.jsonl").read_text().splitlines()) == 4

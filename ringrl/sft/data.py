"""SFT examples: prompt rendered through the chat template, loss only on the response.

A row becomes ``input_ids = prompt_ids + response_ids + [eos]`` with ``n_prompt`` the
number of prompt tokens; the loss covers exactly the response tokens and the closing
end-of-sequence token (the prompt is masked).

A chat-format row (``messages``) is rendered whole through the chat template and cut at
each assistant turn: the text before a turn (system, user turns, earlier assistant turns and
the generation prompt) is masked, the turn itself (its content through the end-of-sequence
token that closes it, where the template writes one) is trained. Each piece is tokenised on its own, so a turn starts on a token boundary
exactly where generation would start. Templates that re-render earlier turns differently
once later turns follow (e.g. stripping reasoning) cannot be cut this way and are an error
naming the row. Batches are length-bucketed under a
token budget (padded tokens per micro-batch <= ``batch_tokens``), which keeps padding
small without packing several conversations into one attention window.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import torch

from ringrl.data.prompts import chat_template_of, render_prompt
from ringrl.errors import UserError


@dataclass(frozen=True)
class SFTExample:
    input_ids: list[int]
    n_prompt: int  # leading tokens excluded from the loss
    spans: tuple[tuple[int, int], ...] = ()  # trained [start, end) token ranges; empty: [n_prompt, len)

    @property
    def target_spans(self) -> tuple[tuple[int, int], ...]:
        return self.spans or ((self.n_prompt, len(self.input_ids)),)

    @property
    def n_target(self) -> int:
        return sum(end - start for start, end in self.target_spans)


def encode_example(tokenizer: Any, row: dict[str, Any]) -> SFTExample:
    if "messages" in row:
        return encode_conversation(tokenizer, row["messages"])
    prompt_ids = tokenizer(render_prompt(tokenizer, row), add_special_tokens=False)["input_ids"]
    response_ids = tokenizer(row["response"], add_special_tokens=False)["input_ids"]
    return SFTExample(list(prompt_ids) + list(response_ids) + [tokenizer.eos_token_id], len(prompt_ids))


def encode_conversation(tokenizer: Any, messages: list[dict[str, str]]) -> SFTExample:
    """A conversation with the loss on every assistant turn (see the module docstring)."""
    chat_template_of(tokenizer)

    def render(turns: list[dict[str, str]], gen: bool) -> str:
        return str(tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=gen))

    full = render(messages, False)
    pieces: list[tuple[str, bool]] = []  # (text, trained)
    at = 0
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        before, through = render(messages[:i], True), render(messages[: i + 1], False)
        if not (full.startswith(before) and full.startswith(through) and len(before) >= at):
            raise UserError(
                "the chat template renders earlier turns differently once later turns follow; "
                "train such conversations one assistant turn per row"
            )
        end = len(through)
        eos = tokenizer.eos_token or ""
        if eos and full.rfind(eos, len(before), end) >= 0:  # train through the end-of-turn token, not past it
            end = full.rfind(eos, len(before), end) + len(eos)
        pieces += [(full[at : len(before)], False), (full[len(before) : end], True)]
        at = end
    pieces.append((full[at:], False))
    ids: list[int] = []
    spans: list[tuple[int, int]] = []
    for text, trained in pieces:
        piece = list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []
        if trained:
            spans.append((len(ids), len(ids) + len(piece)))
        ids += piece
    return SFTExample(ids, spans[0][0], tuple(spans))


def encode_rows(tokenizer: Any, rows: list[dict[str, Any]], max_length: int) -> tuple[list[SFTExample], int]:
    """Encoded examples and the number of rows skipped for exceeding ``max_length``."""
    out, skipped = [], 0
    for row in rows:
        ex = encode_example(tokenizer, row)
        if len(ex.input_ids) > max_length:
            skipped += 1
            continue
        out.append(ex)
    return out, skipped


def bucket_batches(lengths: list[int], batch_tokens: int, rng: random.Random) -> list[list[int]]:
    """Index batches whose padded size (count x longest) stays within ``batch_tokens``.

    Indices are shuffled, sorted by length inside windows of about 50 batches (so the
    order stays random across windows), cut greedily, and the batch order shuffled.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    mean_len = max(1, sum(lengths) // max(1, len(lengths)))
    window = max(1, 50 * batch_tokens // mean_len)
    batches: list[list[int]] = []
    for w in range(0, len(order), window):
        chunk = sorted(order[w : w + window], key=lambda i: lengths[i])
        cur: list[int] = []
        longest = 0
        for i in chunk:
            new_longest = max(longest, lengths[i])
            if cur and new_longest * (len(cur) + 1) > batch_tokens:
                batches.append(cur)
                cur, new_longest = [], lengths[i]
            cur.append(i)
            longest = new_longest
        if cur:
            batches.append(cur)
    rng.shuffle(batches)
    return batches


def collate(examples: list[SFTExample], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ``input_ids``, ``attention_mask`` and ``loss_mask`` ([B, T], loss on targets)."""
    T = max(len(e.input_ids) for e in examples)
    B = len(examples)
    input_ids_BT = torch.full((B, T), pad_id, dtype=torch.long)
    attn_BT = torch.zeros((B, T), dtype=torch.long)
    loss_mask_BT = torch.zeros((B, T), dtype=torch.bool)
    for b, e in enumerate(examples):
        n = len(e.input_ids)
        input_ids_BT[b, :n] = torch.tensor(e.input_ids)
        attn_BT[b, :n] = 1
        for start, end in e.target_spans:
            loss_mask_BT[b, start:end] = True
    return {"input_ids": input_ids_BT, "attention_mask": attn_BT, "loss_mask": loss_mask_BT}

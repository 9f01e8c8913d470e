"""Prompts: the user message for a row and its rendering through the chat template.

Math and science get the paper's suffix (as in the Ring-lite paper); code asks for one
fenced Python block. The rendered prompt is the tokenizer's chat template applied to a
single user turn with the generation prompt appended; a tokenizer without a template
gets the bare message followed by a newline. A chat-format row (``messages``) is rendered
whole through the template, the domain's instruction appended to its last user turn; it
needs a tokenizer with a chat template.
"""

from __future__ import annotations

from typing import Any

from ringrl.data.rows import row_prompt
from ringrl.errors import UserError

MATH_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
CODE_SUFFIX = (
    "Write your solution as a complete Python program in a single ```python code block; "
    "it reads from standard input and prints the answer."
)
CODE_FUNCTION_SUFFIX = "Write your solution as a Python function in a single ```python code block."


def user_message(row: dict[str, Any]) -> str:
    """The text of the user turn for ``row`` (its prompt plus the domain's instruction)."""
    return with_instruction(row, row_prompt(row).strip())


def with_instruction(row: dict[str, Any], text: str) -> str:
    """``text`` followed by the instruction of the row's domain (none for ``raw_prompt`` rows)."""
    domain = row.get("domain")
    if row.get("raw_prompt"):  # the row's prompt is already complete
        return text
    if domain in ("math", "science", "logic"):
        return f"{text}\n{MATH_SUFFIX}"
    if domain == "code":
        suffix = CODE_FUNCTION_SUFFIX if row.get("entry_point") else CODE_SUFFIX
        return f"{text}\n{suffix}"
    return text


def chat_template_of(tokenizer: Any) -> None:
    """Raise a one-line error when ``tokenizer`` has no chat template (chat-format rows need one)."""
    if not getattr(tokenizer, "chat_template", None):
        name = getattr(tokenizer, "name_or_path", "") or "the model's tokenizer"
        raise UserError(f"{name}: chat-format rows ('messages') need a tokenizer with a chat template")


def render_prompt(tokenizer: Any, row: dict[str, Any]) -> str:
    """The full prompt string given to the model for ``row``."""
    if "messages" in row:
        chat_template_of(tokenizer)
        messages = [dict(m) for m in row["messages"]]
        last = max(i for i, m in enumerate(messages) if m["role"] == "user")
        messages[last]["content"] = with_instruction(row, messages[last]["content"].strip())
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    message = user_message(row)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
    return message + "\n"

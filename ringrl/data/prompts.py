"""Prompts: the user message for a row and its rendering through the chat template.

Math and science get the paper's suffix (as in the Ring-lite paper); code asks for one
fenced Python block. The rendered prompt is the tokenizer's chat template applied to a
single user turn with the generation prompt appended; a tokenizer without a template
gets the bare message followed by a newline.
"""

from __future__ import annotations

from typing import Any

from ringrl.data.rows import row_prompt

MATH_SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."
CODE_SUFFIX = (
    "Write your solution as a complete Python program in a single ```python code block; "
    "it reads from standard input and prints the answer."
)
CODE_FUNCTION_SUFFIX = "Write your solution as a Python function in a single ```python code block."


def user_message(row: dict[str, Any]) -> str:
    """The text of the user turn for ``row`` (its prompt plus the domain's instruction)."""
    text = row_prompt(row).strip()
    domain = row.get("domain")
    if row.get("raw_prompt"):  # the row's prompt is already complete
        return text
    if domain in ("math", "science", "logic"):
        return f"{text}\n{MATH_SUFFIX}"
    if domain == "code":
        suffix = CODE_FUNCTION_SUFFIX if row.get("entry_point") else CODE_SUFFIX
        return f"{text}\n{suffix}"
    return text


def render_prompt(tokenizer: Any, row: dict[str, Any]) -> str:
    """The full prompt string given to the model for ``row``."""
    message = user_message(row)
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True
        )
    return message + "\n"

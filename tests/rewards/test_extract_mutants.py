"""Answer extraction at its edges: the limits (2000-character answers, the 4x scan bound,
64 boxes tried), escaped braces at the very end, TeX boxes without braces, fences of
another kind inside a block. Written to kill the mutants benchmarks/mutation.sh found
surviving in ringrl/rewards/extract.py (see docs/testing.md)."""

from __future__ import annotations

import pytest

from ringrl.rewards.extract import MAX_ANSWER_CHARS, extract_code_block, extract_last_boxed


def test_escaped_closing_brace_does_not_close_the_box() -> None:
    assert extract_last_boxed(r"\boxed{a\}b}") == r"a\}b"
    assert extract_last_boxed(r"\boxed{a\}") is None  # truncated: only an escaped brace at the end
    assert extract_last_boxed(r"\boxed{7} then \boxed{a\}") == "7"


@pytest.mark.parametrize("text", ["the answer is \\boxed", "the answer is \\boxed   ", "\\boxed\n\t"])
def test_box_command_at_the_very_end(text: str) -> None:
    assert extract_last_boxed(text) is None


def test_tex_box_without_braces() -> None:
    assert extract_last_boxed(r"so \boxed X5 here") == "X5"
    assert extract_last_boxed("\\boxed\t7") == "7"
    assert extract_last_boxed(r"\boxed $5$") is None  # no token before the math delimiter
    assert extract_last_boxed(r"\boxedx1") is None  # \boxedx1 is another macro
    assert extract_last_boxed(r"\fboxy") is None
    assert extract_last_boxed(r"\boxed{3} and \boxedx1") == "3"


@pytest.mark.parametrize(
    "n, ok", [(MAX_ANSWER_CHARS - 1, True), (MAX_ANSWER_CHARS, True), (MAX_ANSWER_CHARS + 1, False)]
)
def test_answer_length_limit(n: int, ok: bool) -> None:
    answer = "1" * n
    assert extract_last_boxed("\\boxed{" + answer + "}") == (answer if ok else None)


@pytest.mark.parametrize("pad, ok", [(4 * MAX_ANSWER_CHARS - 2, True), (4 * MAX_ANSWER_CHARS - 1, False)])
def test_scan_bound_of_four_times_the_answer_limit(pad: int, ok: bool) -> None:
    """A box is scanned for at most 4 x 2000 characters: content of 7999 characters
    (mostly white space around a short answer) is read, 8000 is not."""
    text = "\\boxed{" + " " * pad + "5}"
    assert len(text) - len("\\boxed{}") == pad + 1
    assert extract_last_boxed(text) == ("5" if ok else None)


@pytest.mark.parametrize("bad, found", [(63, True), (64, False)])
def test_at_most_64_boxes_are_tried(bad: int, found: bool) -> None:
    text = r"\boxed{42} " + " ".join([r"\boxed{" + "9" * (MAX_ANSWER_CHARS + 1) + "}"] * bad)
    assert extract_last_boxed(text) == ("42" if found else None)


def test_a_fence_of_the_other_kind_does_not_close_a_block() -> None:
    text = "intro\n```\ncode\n~~~\nmore\n```\nafter\n"
    assert extract_code_block(text) == ("", "code\n~~~\nmore\n")
    text = "```\nfirst\n```\nthen\n```py\nsecond\n```python\nstill second\n```\n"
    assert extract_code_block(text) == ("py", "second\n```python\nstill second\n")


def test_opening_fence_on_the_last_line() -> None:
    assert extract_code_block("text\n```python") == ("python", "")
    assert extract_code_block("```python\n```") == ("python", "")
    assert extract_code_block("no fence") is None and extract_code_block(None) is None  # type: ignore[arg-type]

"""Cleansing rules (the Ring-lite paper's data curation): pure checks on one row.

Each rule is a function ``rule(row) -> str | None`` returning a short reason when the
row must be dropped and None otherwise. :data:`CLEANSING_RULES` lists them in the order
they are applied; a row is counted under the first rule that drops it.

The rules look at the row's question (``prompt``, ``problem`` or ``question``) and at its
reference ``answer``. They are written for precision: a rule fires only on patterns
that rarely occur in an ordinary single-answer problem. docs/curate.md states each
rule with examples of what is and is not caught.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Any

from ringrl.data.rows import row_prompt

Rule = Callable[[dict[str, Any]], str | None]

_ALLOWED_CONTROLS = {"\t", "\n", "\r"}
_IMAGE_PATTERNS = re.compile(
    r"!\[[^\]]*\]\(|<img\b|data:image/|\\includegraphics|"
    r"\b[\w\-/]+\.(?:png|jpe?g|gif|bmp|svg|webp|tiff?)\b",
    re.IGNORECASE,
)
# Option markers: "(A)" not glued to a preceding letter/digit (f(A) is not an option),
# or a line starting with "A." / "A)" / "A:" followed by text.
_PAREN_OPTION = re.compile(r"(?<![A-Za-z0-9])\(\s*([A-E])\s*\)")
_LINE_OPTION = re.compile(r"^[ \t]*([A-E])[.):][ \t]+\S", re.MULTILINE)
_BARE_LETTER_ANSWER = re.compile(r"^\(?\s*([A-E])\s*\)?\.?$")
# "true or false" / "yes or no" (also with "/") closing a clause: followed by ?, :, ., ),
# a comma or the end. "90% of the true/false questions" is a mention, not an ask.
_BINARY_PROMPT = re.compile(
    r"\b(?:true\s*(?:or|/)\s*false|false\s*(?:or|/)\s*true|yes\s*(?:or|/)\s*no|no\s*(?:or|/)\s*yes)"
    r"\b(?=\s*(?:[?:.),;]|$))",
    re.IGNORECASE,
)
_BINARY_ANSWERS = {"true", "false", "yes", "no"}
# Sub-question markers "(a) ... (b)" / "(i) ... (ii)" starting a clause: at the start of
# a line or after whitespace / sentence punctuation, and followed by white space; or a
# line starting "a)" / "1." / "2)".
_PART_MARKER = re.compile(
    r"(?:^|(?<=[\s.:;]))\((?P<paren>[a-h]|i{1,3}|iv|v|vi{1,3})\)(?=\s)"
    r"|^[ \t]*(?P<line>[a-h])\)(?=[ \t]+\S)"
    r"|^[ \t]*(?P<num>\d{1,2})[.)](?=[ \t]+\S)",
    re.MULTILINE,
)
_ROMAN = {"i", "ii", "iii", "iv", "v", "vi", "vii", "viii"}
_QUESTION_START = re.compile(
    r"^(?:find|compute|calculate|determine|evaluate|show|prove|what|how|which|why|who|"
    r"is|are|does|do|can|express|simplify|solve|give|write|explain|list|sketch|describe|state)\b",
    re.IGNORECASE,
)
# Spans whose question marks are not the problem's own questions: code, math, LaTeX
# environments, Asymptote drawings and quoted speech.
_NOT_PROSE = re.compile(
    r"```.*?```|``.*?''|`[^`]*`|\$\$.*?\$\$|\$[^$]*\$|\\\[.*?\\\]|\\\(.*?\\\)|"
    r"\\begin\{(\w+\*?)\}.*?\\end\{\1\}|\[asy\].*?\[/asy\]|"
    r'"[^"\n]*"|\u201c[^\u201d]*\u201d',
    re.DOTALL,
)
_RESTATEMENT = re.compile(r"^(?:that is|i\.e\.|in other words)\b", re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.?!]")


def question_sentences(prose: str) -> list[str]:
    r"""Each stretch of text between sentence ends (``.?!``) that ends in a question mark followed
    by whitespace, a closing bracket or the end, question mark included. Linear in the text (the
    regex ``[^.?!]*\?(?=\s|$|[)\]])`` it replaces rescanned from every position: quadratic on
    a long text without one)."""
    found, start = [], 0
    for m in _SENTENCE_END.finditer(prose):
        end = m.start()
        if prose[end] == "?":
            after = prose[end + 1 : end + 2]
            if not after or after.isspace() or after in ")]":
                found.append(prose[start : end + 1])
        start = end + 1
    return found


def _answer_text(row: dict[str, Any]) -> str | None:
    answer = row.get("answer")
    if isinstance(answer, bool):
        return str(answer).lower()
    if isinstance(answer, (int, float)):
        return str(answer)
    if isinstance(answer, str):
        return answer
    return None


def _is_code_row(row: dict[str, Any]) -> bool:
    return row.get("domain") == "code" or ("tests" in row and row.get("answer") is None)


def _unwrap(answer: str) -> str:
    """The answer without ``\\boxed{..}``/``\\text{..}`` wrappers, ``$`` and outer white space."""
    text = answer.strip().strip("$").strip()
    for _ in range(3):
        text = re.sub(r"^\\(?:boxed|text|textbf|mathrm)\{(.*)\}$", r"\1", text, flags=re.DOTALL)
        text = text.strip().strip("$").strip()
    return text


def _plain_answer(answer: str) -> str:
    """The unwrapped answer with punctuation removed, lower-cased."""
    return re.sub(r"[^\w]+", "", _unwrap(answer)).lower()


def empty_prompt(row: dict[str, Any]) -> str | None:
    """Drop rows without a non-empty question."""
    return None if row_prompt(row).strip() else "no question text (prompt/problem/question)"


def no_answer(row: dict[str, Any]) -> str | None:
    """Drop rows with no usable reference: an empty or missing ``answer``, or for code rows
    (``domain == "code"``, or ``tests`` and no answer) empty or missing ``tests``."""
    if _is_code_row(row):
        tests = row.get("tests", row.get("test_code"))
        if isinstance(tests, str) and tests.strip():
            return None
        if isinstance(tests, (list, dict)) and tests:
            return None
        return "code row without tests"
    answer = _answer_text(row)
    if answer is None:
        return "missing answer" if "answer" not in row else f"answer of type {type(row['answer']).__name__}"
    if not _unwrap(answer):
        return "empty answer"
    return None


def invalid_characters(row: dict[str, Any]) -> str | None:
    """Drop rows whose question or answer holds control characters (other than tab and
    new line), the replacement character U+FFFD, surrogates or non-characters, or an
    image (markdown ``![..](..)``, ``<img``, ``data:image/``, ``\\includegraphics`` or an
    image file name such as ``figure.png``). Asymptote ``[asy]`` drawings are text and kept."""
    for field, text in (("question", row_prompt(row)), ("answer", _answer_text(row) or "")):
        for ch in text:
            if ch in _ALLOWED_CONTROLS:
                continue
            cat = unicodedata.category(ch)
            if ch == "\ufffd":
                return f"replacement character U+FFFD in {field}"
            if cat in ("Cc", "Cs") or (0xFDD0 <= ord(ch) <= 0xFDEF) or (ord(ch) & 0xFFFE) == 0xFFFE:
                return f"invalid character U+{ord(ch):04X} in {field}"
        match = _IMAGE_PATTERNS.search(text)
        if match:
            return f"image reference {match.group(0)[:30]!r} in {field}"
    return None


def multiple_choice(row: dict[str, Any]) -> str | None:
    """Drop multiple-choice problems: the question lists options A, B and C (as ``(A)``
    markers or lines starting ``A.``/``A)``/``A:``), or the answer is a bare option letter
    while the question shows at least two option markers."""
    prompt = row_prompt(row)
    paren = {m.group(1) for m in _PAREN_OPTION.finditer(prompt)}
    line = {m.group(1) for m in _LINE_OPTION.finditer(prompt)}
    for labels, style in ((paren, "(A)"), (line, "A.")):
        if {"A", "B", "C"} <= labels:
            return f"options {', '.join(sorted(labels))} ({style} style)"
    answer = _answer_text(row)
    if answer is not None and _BARE_LETTER_ANSWER.match(_unwrap(answer)) and len(paren | line) >= 2:
        return f"answer is option letter {_unwrap(answer)!r}"
    return None


def true_false_yes_no(row: dict[str, Any]) -> str | None:
    """Drop true/false and yes/no problems: the answer is true, false, yes or no (after
    removing ``\\boxed``/``\\text``, ``$`` and punctuation), or, for non-code rows, the
    question asks "true or false" / "yes or no" (also with ``/``) at the end of a clause
    ("... true or false?", "Answer yes or no: ..."). Code rows are exempt from the
    question test: a program returning a bool is checked by its tests, not guessed."""
    answer = _answer_text(row)
    if answer is not None and _plain_answer(answer) in _BINARY_ANSWERS:
        return f"answer is {_plain_answer(answer)!r}"
    if _is_code_row(row):
        return None
    match = _BINARY_PROMPT.search(row_prompt(row))
    if match:
        return f"question asks {match.group(0).lower()!r}"
    return None


def _marker_family(m: re.Match[str]) -> tuple[str, str]:
    """``(family, label)`` of a part marker; families are numbered separately."""
    if m.group("paren") is not None:
        label = m.group("paren")
        return ("roman" if label in _ROMAN else "letter"), label
    if m.group("line") is not None:
        return "line-letter", m.group("line")
    return "number", m.group("num")


def _question_like(text: str) -> bool:
    text = text.strip()
    return "?" in text or bool(_QUESTION_START.match(text))


def several_subquestions(row: dict[str, Any]) -> str | None:
    """Drop problems with several sub-questions:

    - clause-starting part markers ``(a)``/``(b)``, ``(i)``/``(ii)``, lines starting
      ``a)``/``b)`` or ``1.``/``2.`` (or ``1)``), where at least two of the marked parts
      read as questions (hold a ``?`` or start with Find, Compute, Show, What, ...): a
      list of conditions "(i) f(0) = 0. (ii) ..." is kept;
    - for non-code rows, two or more question sentences outside math (``$..$``,
      ``\\[..\\]``, LaTeX environments), code (backticks), Asymptote drawings and quoted
      speech; a restatement starting "That is" / "In other words" does not count.
      Code rows are exempt: statements often end with a "Follow-up: ...?" aside.
    """
    prompt = row_prompt(row)
    markers = list(_PART_MARKER.finditer(prompt))
    families: dict[str, list[tuple[str, str]]] = {}
    for i, m in enumerate(markers):
        family, label = _marker_family(m)
        end = markers[i + 1].start() if i + 1 < len(markers) else len(prompt)
        families.setdefault(family, []).append((label, prompt[m.end() : end]))
    firsts = {"letter": ("a", "b"), "roman": ("i", "ii"), "line-letter": ("a", "b"), "number": ("1", "2")}
    for family, parts in families.items():
        labels = {label for label, _ in parts}
        if not set(firsts[family]) <= labels:
            continue
        questions = [label for label, text in parts if _question_like(text)]
        if len(questions) >= 2:
            return f"{len(questions)} sub-questions marked {', '.join(questions[:4])}"
    if not _is_code_row(row):
        prose = _NOT_PROSE.sub(" ", prompt)
        asked = [s for s in question_sentences(prose) if not _RESTATEMENT.match(s.strip())]
        if len(asked) >= 2:
            return f"{len(asked)} question sentences"
    return None


CLEANSING_RULES: dict[str, Rule] = {
    "empty_prompt": empty_prompt,
    "no_answer": no_answer,
    "invalid_characters": invalid_characters,
    "multiple_choice": multiple_choice,
    "true_false_yes_no": true_false_yes_no,
    "several_subquestions": several_subquestions,
}


def cleansing_reason(row: dict[str, Any]) -> tuple[str, str] | None:
    """``(rule_name, reason)`` of the first cleansing rule that drops ``row``, or None."""
    for name, rule in CLEANSING_RULES.items():
        reason = rule(row)
        if reason is not None:
            return name, reason
    return None

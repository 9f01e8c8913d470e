"""Text normalisation and word n-grams shared by de-duplication and decontamination."""

from __future__ import annotations

import hashlib
import re
import unicodedata

_NON_WORD = re.compile(r"[^\w]+|_+")


def normalize_text(text: str) -> str:
    """Unicode NFKC, case-folded, every run of non-alphanumeric characters (punctuation,
    symbols, ``$``, ``_``, white space) turned into one space, stripped.

    ``"What is 2+3?"`` and ``"what  is 2 - 3"`` both become ``"what is 2 3"``: the
    normalised form is for matching near-identical texts, never for grading.
    """
    return _NON_WORD.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def word_ngrams(words: list[str], n: int) -> set[str]:
    """The set of ``n``-word shingles of ``words`` joined by a space; a text shorter than
    ``n`` words gives one shingle, the whole text (an empty text gives none)."""
    if not words:
        return set()
    if len(words) <= n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def stable_hash64(text: str) -> int:
    """A 64-bit hash of ``text`` that is the same in every process (unlike ``hash``)."""
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "little")

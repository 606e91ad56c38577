"""Word splitting equal to the Rust SDK's ``eddy_sdk::text::words``: maximal runs of
characters for which Rust's ``char::is_alphanumeric`` holds, each lower-cased as Rust's
``str::to_lowercase`` does. The character data comes from tables generated from Rust
(``_text_tables.py``), not from this Python's ``unicodedata``, so every SDK agrees whatever
Unicode version its runtime knows. ASCII lines (most text) take ``str.lower`` and one regex,
both native code."""

import re

from ._text_tables import ALNUM_ENDS, ALNUM_STARTS, LOWER

_ASCII_WORD = re.compile(r"[a-z0-9]+")


def _class(starts, ends):
    parts = []
    for a, b in zip(starts, ends):
        parts.append(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}")
    return "[" + "".join(parts) + "]+"


_WORD = re.compile(_class(ALNUM_STARTS, ALNUM_ENDS))
# Rust's lower case of every word character: ASCII as usual, the rest from the table.
_LOWER = {c: chr(c + 32) for c in range(ord("A"), ord("Z") + 1)}
_LOWER.update(LOWER)
_SIGMA = "\u03a3"


def words(line):
    """The lower-cased words of ``line``, as a list:
    ``words("Café, Über-naïve DON'T 42") == ["café", "über", "naïve", "don", "t", "42"]``."""
    if line.isascii():
        return _ASCII_WORD.findall(line.lower())
    return [_lower(w) for w in _WORD.findall(line)]


def words_of_lines(lines):
    """``[w for line in lines for w in words(line)]``, in one pass over all the lines (a
    newline separates words like any non-alphanumeric character). ``flat_map(words)``
    uses it for whole batches."""
    return words("\n".join(lines))


def _lower(word):
    if word.isascii():
        return word.lower()
    lowered = word.translate(_LOWER)
    if _SIGMA in word:
        lowered = _final_sigma(word, lowered)
    return lowered


def _final_sigma(word, lowered):
    """Rust (like Unicode's Final_Sigma rule) lowers a capital sigma that ends a word --
    preceded by a cased letter and not followed by one, skipping case-ignorable characters
    -- to final sigma. Python's ``str.lower`` implements the same rule; its verdict for each
    sigma is read from two small probes (each sigma lowers to exactly one character)."""
    out = []
    for i, c in enumerate(word):
        if c == _SIGMA:
            after_cased = ("A" + _SIGMA + word[i + 1 :]).lower()[1] == "\u03c3"
            before_cased = (word[:i] + _SIGMA).lower()[-1] == "\u03c2"
            out.append("\u03c2" if before_cased and not after_cased else "\u03c3")
        else:
            out.append(_LOWER.get(ord(c), c))
    return "".join(out)

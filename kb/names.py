"""Product and category names as people type them: "Laptop", "laptops", "LAPTOPS " are one
name. A key compares them (case, spacing, punctuation and a plural -s ignored); one spelling
per key is shown and stored, so lists and filters hold each name once."""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

_SEPARATORS = re.compile(r"[\s_\-/]+")


@functools.lru_cache(maxsize=65_536)
def name_key(name: str) -> str:
    """What two spellings of one name share: "Laptops" and " laptop" -> "laptop"."""
    text = unicodedata.normalize("NFKC", name or "").casefold().strip()
    words = [w for w in _SEPARATORS.split(text) if w]
    return " ".join(_singular(w) for w in words)


def _singular(word: str) -> str:
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def display_names(names: Iterable[str], *, preferred: Iterable[str] = ()) -> dict[str, str]:
    """key -> the spelling to show: a ``preferred`` one (names already in use) when there is
    one, else the most frequent among ``names`` (ties: the first seen)."""
    names = [n for n in names if n and n.strip()]
    chosen: dict[str, str] = {}
    for name in preferred:
        if name and name.strip():
            chosen.setdefault(name_key(name), name)
    counts = Counter(names)
    order = {name: i for i, name in enumerate(dict.fromkeys(names))}
    for name, _ in sorted(counts.items(), key=lambda item: (-item[1], order[item[0]])):
        chosen.setdefault(name_key(name), name)
    return chosen


def distinct_by_key(names: Iterable[str]) -> list[str]:
    """One spelling per name (the first seen), sorted for a list a person picks from."""
    seen: dict[str, str] = {}
    for name in names:
        if name and name.strip():
            seen.setdefault(name_key(name), name)
    return sorted(seen.values(), key=str.casefold)

"""Which language a text is written in: one identifier for the whole service.

The identifier is lingua's (statistical n-gram models shipped inside its wheel; nothing is
downloaded). It is built on first use, with the low-accuracy mode (trigram models only,
about 100 MB, a fraction of a millisecond a text), which is reliable on texts of a few
words and more. A text too short, or made of identifiers and numbers, gets no language
rather than a guess: ``detect`` returns ``None`` when the best language is not clearly
ahead.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

# Below this many letters a guess is closer to noise than to evidence.
MIN_LETTERS = 12
# The best language's share of the detector's confidence needed to name it.
MIN_CONFIDENCE = 0.5

_LOCK = threading.Lock()


@dataclass(frozen=True)
class Detection:
    code: str  # ISO 639-1, lower case ("en", "de", "ja")
    name: str  # English name ("English", "German")
    confidence: float


@functools.lru_cache(maxsize=1)
def _detector():
    from lingua import LanguageDetectorBuilder

    with _LOCK:
        return LanguageDetectorBuilder.from_all_languages().with_low_accuracy_mode().build()


def detect(text: str) -> Detection | None:
    """The language of ``text``, or None when it is too short or no language is clearly ahead."""
    if not text or sum(ch.isalpha() for ch in text[:4000]) < MIN_LETTERS:
        return None
    values = _detector().compute_language_confidence_values(text[:4000])
    if not values or values[0].value < MIN_CONFIDENCE:
        return None
    best = values[0]
    return Detection(best.language.iso_code_639_1.name.lower(), best.language.name.title(), float(best.value))


def detect_code(text: str) -> str | None:
    found = detect(text)
    return found.code if found else None

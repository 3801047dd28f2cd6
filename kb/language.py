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
from pathlib import Path

import yaml

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


def warm_up_language_identifier() -> None:
    """Build the identifier now (a few seconds, once per process) rather than on first use."""
    _detector()


def detect(text: str) -> Detection | None:
    """The language of ``text``, or None when it is too short or no language is clearly ahead."""
    if not text or sum(ch.isalpha() for ch in text[:4000]) < MIN_LETTERS:
        return None
    values = _detector().compute_language_confidence_values(text[:4000])
    if not values or values[0].value < MIN_CONFIDENCE:
        return None
    best = values[0]
    return Detection(
        best.language.iso_code_639_1.name.lower(), best.language.name.title(), float(best.value)
    )


def detect_code(text: str) -> str | None:
    found = detect(text)
    return found.code if found else None


# --- which languages the service reads ---------------------------------------------------

ENGLISH_ONLY = frozenset({"en"})
# Request text read for its language: enough for a clear answer, cheap on a long paste.
DETECT_CHARS = 600


def _card_languages(folder: Path) -> list[str]:
    """The ``language:`` list of a model folder's card (README.md front matter), lower case."""
    card = folder / "README.md"
    try:
        text = card.read_text(encoding="utf-8")[:20_000]
    except (OSError, UnicodeDecodeError):
        return []
    if not text.startswith("---"):
        return []
    end = text.find("\n---", 3)
    if end < 0:
        return []
    try:
        meta = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return []
    value = meta.get("language") if isinstance(meta, dict) else None
    if isinstance(value, str):
        value = [value]
    return [str(v).strip().lower() for v in value or [] if str(v).strip()]


def model_languages(folder: Path | None, setting: str = "") -> frozenset[str] | None:
    """The languages the embedding model reads well, as ISO 639-1 codes; None for any.

    ``setting`` (KB_MODEL_LANGUAGES) decides when given: "all" (any language) or codes
    separated by commas. Otherwise the model card of ``folder`` (the ``language:`` of its
    README.md, as sentence-transformers and Hugging Face models carry it) says: a card that
    says "multilingual" and nothing more reads any language. A folder without a card, and
    the hashing encoder (no folder), count as English only.
    """
    setting = (setting or "").strip().lower()
    if setting:
        if setting in ("all", "any", "multilingual", "*"):
            return None
        return frozenset(code.strip() for code in setting.split(",") if code.strip())
    if folder is None:
        return ENGLISH_ONLY
    found = _card_languages(Path(folder))
    codes = frozenset(code for code in found if len(code) == 2)
    if "multilingual" in found and not codes:
        return None
    return codes or ENGLISH_ONLY


def _names(codes: frozenset[str]) -> str:
    from lingua import IsoCode639_1, Language

    names = []
    for code in sorted(codes):
        try:
            names.append(
                Language.from_iso_code_639_1(getattr(IsoCode639_1, code.upper())).name.title()
            )
        except (AttributeError, ValueError):
            names.append(code)
    return ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1] if names else ""


def request_language(text: str, served: frozenset[str] | None) -> dict:
    """What a request is written in and whether the model reads it well:
    ``{"code", "name", "served", "note"}``; code and name are None when the text is too
    short or too much made of codes to tell, and then it counts as served."""
    found = detect(text[:DETECT_CHARS])
    if found is None:
        return {"code": None, "name": None, "served": True, "note": ""}
    served_here = served is None or found.code in served
    note = (
        ""
        if served_here
        else (
            f"This request reads as {found.name}; the search model reads {_names(served)} well. "
            f"Results rest mostly on words shared with the knowledge base, so a fitting resolution "
            f"may be missed or ranked low. A multilingual model can be configured (KB_MODEL)."
        )
    )
    return {"code": found.code, "name": found.name, "served": served_here, "note": note}

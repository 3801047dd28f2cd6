"""Text normalisation shared by everything that stores, indexes or searches text."""

from __future__ import annotations

import unicodedata


def normalise_text(text: str) -> str:
    """NFKC: full-width letters (as East Asian keyboards type them), ligatures and other
    compatibility forms become the characters they stand for, so a full-width "VPN drops"
    reads as "VPN drops"; stored text and queries pass the same normalisation before they
    are tokenised or embedded. NUL bytes become spaces."""
    return unicodedata.normalize("NFKC", text.replace("\x00", " "))

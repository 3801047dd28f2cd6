"""Small shared pieces of test data and checks."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from pathlib import Path

TODAY = dt.datetime.now(dt.UTC).date()
SVG = "{http://www.w3.org/2000/svg}"

# An article that passes every lint rule; format with id, status, audience, review_by.
GOOD = """---
id: {id}
title: Good article
status: {status}
audience: {audience}
review_by: {review_by}
updated: 2026-01-01
---

## Symptoms
It breaks.

## Cause
A reason.

## Resolution
Fix it; see [the other one](other.md).

## Applies to
- Everything
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def parse_svg(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # well-formed XML, or this raises
    assert root.tag == f"{SVG}svg"
    return root

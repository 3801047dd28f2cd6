"""KCS capture: a draft article from a resolved incident.

The customer's words become the Symptoms, the resolution note the Resolution; the draft
links back to its incident (a ``source-incident`` tag and a ``source_incident:`` line).
Used by ``kb articles draft-from-incident`` and meant for the web pages as well.
"""

from __future__ import annotations

import datetime as dt
import re

from kb.authoring import (
    article_markdown,
    check_article_id,
    house_template_body,
    new_article_fields,
    slugify,
)
from kb.errors import ValidationError
from kb.models import Incident

MAX_TITLE_CHARS = 120
SOURCE_TAG = "source-incident"


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return " ".join(line.split())
    return ""


def _clip_title(text: str) -> str:
    if len(text) <= MAX_TITLE_CHARS:
        return text
    cut = text.rfind(" ", 0, MAX_TITLE_CHARS)
    return text[: cut if cut > 0 else MAX_TITLE_CHARS].rstrip(" ,.;:") + "…"


def markdown_safe(text: str) -> str:
    """Plain text that stays plain in Markdown: no raw HTML, no headings, no fences."""
    lines = []
    for line in text.replace("\r\n", "\n").split("\n"):
        line = line.replace("<", "\\<")
        stripped = line.lstrip()
        if stripped.startswith(("#", "```", "~~~", "---", "===")):
            line = line[: len(line) - len(stripped)] + "\\" + stripped
        lines.append(line.rstrip())
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _quoted(text: str) -> str:
    return "\n".join(f"> {line}".rstrip() for line in markdown_safe(text).split("\n"))


def draft_id_for(incident: Incident) -> str:
    """The default id of a draft: the incident's title as a slug, else its id."""
    slug = slugify(_first_line(incident.title) or _first_line(incident.description), 60)
    return slug or slugify(f"incident-{incident.id}")


def draft_from_incident(
    incident: Incident,
    *,
    article_id: str | None = None,
    owner: str = "",
    today: dt.date | None = None,
) -> tuple[str, str]:
    """A draft article (id, Markdown text) captured from a resolved incident.

    Raises ValidationError when the incident is not resolved or closed, or has no
    resolution note.
    """
    if incident.status not in ("resolved", "closed"):
        raise ValidationError(
            f"incident {incident.id} is {incident.status or 'open'}; only resolved or closed "
            "incidents can become articles"
        )
    if not incident.resolution.strip():
        raise ValidationError(f"incident {incident.id} has no resolution note to capture")
    article_id = check_article_id(article_id or draft_id_for(incident))
    title = _clip_title(_first_line(incident.title) or _first_line(incident.description))
    tags = [SOURCE_TAG, slugify(incident.id) or "unknown"]
    if incident.resolution_code.strip():
        tags.append(slugify(incident.resolution_code) or incident.resolution_code.strip())
    fields = new_article_fields(
        article_id,
        title,
        product=incident.product,
        category=incident.category,
        owner=owner,
        tags=tags,
        today=today,
    )
    symptoms = incident.description.strip() or incident.title.strip()
    if (
        incident.title.strip()
        and incident.description.strip()
        and not incident.description.lower().startswith(incident.title.strip().lower())
    ):
        symptoms = f"{incident.title.strip()}\n\n{incident.description.strip()}"
    applies = f"- {markdown_safe(incident.product)}" if incident.product.strip() else ""
    body = house_template_body(
        {
            "Symptoms": _quoted(symptoms),
            "Resolution": markdown_safe(incident.resolution),
            "Applies to": applies,
        },
        preamble=f"source_incident: {markdown_safe(incident.id)}",
    )
    return article_id, article_markdown(fields, body)


def draft_from_text(
    title: str,
    description: str,
    *,
    article_id: str,
    product: str = "",
    incident_ref: str = "",
    owner: str = "",
    today: dt.date | None = None,
) -> str:
    """A draft article (Markdown text) for an incident not solved yet, as an agent typed
    it into search: their words become the Symptoms; cause and resolution are left for
    whoever solves it. Raises ValidationError when both title and description are empty.
    """
    title, description = " ".join(title.split()), description.strip()
    if not (title or description):
        raise ValidationError("describe the incident before starting a draft")
    fields = new_article_fields(
        check_article_id(article_id),
        _clip_title(title or _first_line(description)),
        product=product,
        owner=owner,
        tags=["from-search"],
        today=today,
    )
    source = f"incident {markdown_safe(incident_ref)}" if incident_ref.strip() else "search"
    applies = f"- {markdown_safe(product)}" if product.strip() else ""
    body = house_template_body(
        {"Symptoms": _quoted(description or title), "Applies to": applies},
        preamble=f"Captured by {markdown_safe(owner or 'an agent')} from {source}; "
        "cause and resolution to be written.",
    )
    return article_markdown(fields, body)

"""Loading a folder of Markdown articles into the store: only articles that pass lint reach
agents, and no secret ever reaches the store."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

from kb.app.article_states import FINISHED_STATES, describe_errors, lint_errors
from kb.app.service import Service
from kb.articles import ArticleProblem, ParsedArticle, scan_articles
from kb.errors import RecordError
from kb.lint import LintProblem


@dataclass
class ArticleImport:
    imported: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    broken: list[ArticleProblem] = field(default_factory=list)  # files that could not be read
    refused: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): not imported
    warned: list[tuple[str, str]] = field(default_factory=list)  # (path, reason): drafts imported


def _file_text(path: Path) -> str:
    return path.read_bytes().decode("utf-8").replace("\r\n", "\n")


def import_article_folder(
    service: Service, folder: Path, *, changed_by: str = "", today: dt.date | None = None
) -> ArticleImport:
    """Import every article under ``folder`` in one transaction, after lint.

    An article with a secret (password, key, token, card or account number) is refused in
    any state: it is never written to the store. An article with other lint errors is
    refused when it would reach agents (not_validated, validated or public); a draft with
    them is imported, with the errors reported. Refused articles keep whatever version the
    store already holds. Raises RecordError when ``folder`` is not a folder.
    """
    scan = scan_articles(Path(folder))
    result = ArticleImport(broken=list(scan.problems))
    accepted: list[ParsedArticle] = []
    for parsed in scan.parsed:
        path = Path(parsed.article.path)
        try:
            errors: list[LintProblem] = lint_errors(_file_text(path), path, today=today)
        except (OSError, UnicodeDecodeError) as exc:
            raise RecordError(f"cannot read: {exc}", source=str(path)) from None
        article = parsed.article
        finished = article.status in FINISHED_STATES or article.audience == "public"
        secrets = [p for p in errors if p.code == "secret"]
        if secrets or (errors and finished):
            result.refused.append(
                (
                    str(path),
                    f"{article.id} not imported ({article.status}): "
                    + describe_errors(secrets or errors),
                )
            )
            continue
        if errors:
            result.warned.append(
                (str(path), f"{article.id} imported as a draft with " + describe_errors(errors))
            )
        accepted.append(parsed)
    counts = service.store().upsert_articles([p.article for p in accepted], changed_by=changed_by)
    result.imported = len(accepted)
    result.inserted, result.updated, result.unchanged = (
        counts.inserted,
        counts.updated,
        counts.unchanged,
    )
    return result

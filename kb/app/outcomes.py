"""Back into the ticket: what an agent's choice sends to the ticket system.

"Used this" gives the agent a ready resolution note (the fix, the article's title and link,
or the incident it came from) to paste into the ticket; the API returns the same text. With
KB_EVENTS_URL set, every new or changed choice also becomes an event (``resolution_used`` or
``none_helped``) in an outbox written in the same transaction as the choice; a background
thread in each worker posts each event once, signed like the storm webhook
(``X-KB-Signature: sha256=<hex HMAC-SHA256 of the body>``), and retries a failed post with
back-off. A post never takes longer than POST_DEADLINE_S in all, and a redirect is a failed
post (never followed: the signed body goes only where it was configured to go).
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from kb.app.service import Service
from kb.errors import NotFoundError
from search.state import article_resolution

log = logging.getLogger(__name__)

POST_DEADLINE_S = 10.0  # the whole post: connect, send, status line, headers and body
LEASE_S = 60.0  # longer than a post may take, so no other worker posts the same event meanwhile
MAX_BACKOFF_S = 600.0
CHECK_EVERY_S = 1.0


def result_link(kind: str, doc_id: str, base_url: str = "") -> str:
    """The page of an article or incident, absolute when ``base_url`` is given."""
    folder = "articles" if kind == "article" else "incidents"
    return f"{base_url.rstrip('/')}/{folder}/{quote(doc_id, safe='')}"


def resolution_note(kind: str, doc_id: str, title: str, resolution: str, link: str) -> str:
    """The text an agent pastes into the ticket's resolution (close notes, a reply, a
    resolution comment): where the fix came from, with its link, then the steps."""
    if kind == "article":
        source = f'Resolved with the knowledge article "{title}" ({link}).'
    else:
        source = f'Resolved as in the earlier incident {doc_id} "{title}" ({link}).'
    steps = resolution.strip()
    return f"{source}\n\nSteps:\n{steps}" if steps else source


def note_for(store, kind: str, doc_id: str, base_url: str = "") -> tuple[str, str]:
    """(title, resolution note) of a stored article or incident; raises NotFoundError."""
    if kind == "article":
        article = store.get_article(doc_id)
        title, resolution = article.title, article_resolution(article.body or "")[0]
    else:
        incident = store.get_incident(doc_id)
        title, resolution = incident.title, incident.resolution
    return title, resolution_note(
        kind, doc_id, title, resolution, result_link(kind, doc_id, base_url)
    )


def record_choice(
    service: Service,
    store,
    suggestion_id: str,
    *,
    outcome: str,
    used_id: str | None,
    agent: str,
    base_url: str = "",
    caller: str | None = None,
):
    """Record an agent's choice (``caller``: whoever asks, who must be whoever searched; see
    Store.record_feedback), and (with KB_EVENTS_URL set) queue its event in the same
    transaction. Returns (FeedbackRecord, resolution note or "")."""
    store.settle_suggestion(
        suggestion_id, principal=caller
    )  # a choice on a previewed search records it
    suggestion = store.get_suggestion(suggestion_id)  # NotFoundError for an unknown id
    shown = {r["id"]: r for r in suggestion["results"]}
    note, result = "", None
    if used_id and used_id in shown:
        kind = shown[used_id]["kind"]
        try:
            title, note = note_for(store, kind, used_id, base_url)
        except NotFoundError:  # erased since it was shown
            title = ""
        result = {
            "id": used_id,
            "kind": kind,
            "title": title,
            "rank": shown[used_id]["rank"],
            "url": result_link(kind, used_id, base_url),
        }
    event = None
    if service.config.events_url:
        event = {
            "suggestion_id": suggestion_id,
            "incident_id": suggestion.get("incident_ref") or "",
            "agent": agent or "anonymous",
            "result": result,
            "resolution_note": note,
            "search_url": f"{base_url.rstrip('/')}/?sid={quote(suggestion_id, safe='')}",
        }
    record = store.record_feedback(
        suggestion_id, outcome=outcome, used_id=used_id, agent=agent, caller=caller, event=event
    )
    return record, note


# --- posting ---------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def backoff_s(attempts: int) -> float:
    """Seconds before the next try after ``attempts`` failed ones: 1, 2, 4 ... up to 10 min."""
    return min(MAX_BACKOFF_S, 2.0**attempts)


def deliver_due_events(service: Service, *, now: datetime | None = None, limit: int = 100) -> int:
    """Post every event that is due (new, or a retry whose back-off has passed), oldest
    first; returns how many were delivered. A failure puts that event back with back-off."""
    from kb.app.storms import WebhookError, post, signature

    config, store = service.config, service.store()
    delivered = 0
    for _ in range(limit):
        moment = now or datetime.now(UTC)
        claim = store.claim_event_delivery(_iso(moment), _iso(moment + timedelta(seconds=LEASE_S)))
        if claim is None:
            break
        body = claim["payload"].encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "kb-events",
            "X-KB-Event": claim["kind"],
            "X-KB-Event-Id": claim["id"],
            "X-KB-Signature": signature(config.event_secret, body),
        }
        try:
            # Bounded as a whole, redirects never followed (the storm webhook's own post).
            post(config.events_url, body, headers, deadline=POST_DEADLINE_S)
        except (WebhookError, OSError) as exc:
            wait = backoff_s(claim["attempts"])
            store.event_delivery_failed(
                claim["id"], str(exc), _iso(moment + timedelta(seconds=wait))
            )
            log.warning(
                "event %s (%s): post failed (%s); next try in %.0f s",
                claim["id"],
                claim["kind"],
                exc,
                wait,
            )
            continue
        store.event_delivered(claim["id"])
        delivered += 1
    return delivered


class EventSender:
    """The background thread of one worker that posts the outbox's due events."""

    def __init__(self, service: Service, *, every_s: float = CHECK_EVERY_S):
        self.service = service
        self.every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kb-events", daemon=True)

    def start(self) -> EventSender:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=POST_DEADLINE_S + 5)

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            try:
                deliver_due_events(self.service)
            except Exception:  # noqa: BLE001 - a bad cycle is logged; the next one tries again
                log.exception("event delivery failed")

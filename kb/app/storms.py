"""Storms: many alike open incidents at once. `GET /api/v1/storms` lists the current ones;
with KB_WEBHOOK_URL set, a background thread in each worker posts every storm once to that
URL, signed (``X-KB-Signature: sha256=<hex HMAC of the body with KB_WEBHOOK_SECRET>``), and
retries a failed post with back-off. Nothing here runs on a request thread: a receiver that
hangs never slows a suggest request. Which storm was posted is kept in the store, with a
lease while a worker posts it, so several workers (and nodes) post each storm once.

The payload is the storm report, no more: its id, title (the most central incident's
title), size, product, first and latest incident (id and time) and the ids of its incidents.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import logging
import socket
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from kb.app.service import Service
from search.duplicates import find_storms

log = logging.getLogger(__name__)

# The whole post (connect, send, answer) ends within this many seconds, however slowly the
# receiver answers; a worker's lease on a storm lasts LEASE_FACTOR times as long, so no
# other worker posts the same storm while a post may still be under way.
POST_DEADLINE_S = 10.0
LEASE_FACTOR = 3.0
MAX_BACKOFF_S = 300.0
CHECK_EVERY_S = 1.0


def current_storms(service: Service, *, now: datetime | None = None) -> list[dict[str, Any]]:
    config = service.config
    open_set = service.suggester().open_incidents.current(service.store(), now=now)
    return find_storms(
        open_set,
        window_minutes=config.storm_window_minutes,
        min_size=config.storm_min_size,
        similarity=config.storm_similarity,
        now=now,
    )


def signature(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def lease_seconds() -> float:
    return LEASE_FACTOR * POST_DEADLINE_S


class WebhookError(Exception):
    """The receiver did not take the post: an error status, a redirect, or no answer in time."""


def post(url: str, body: bytes, headers: dict[str, str], *, deadline: float) -> int:
    """POST ``body`` to ``url`` and return the status, all of it within ``deadline``
    seconds: a receiver that answers one byte at a time is cut off at the deadline (a
    timer shuts the socket), not after each slow read. Redirects are never followed (the
    signed body and its headers go to the configured address only) and count as a failure,
    as do error statuses. Raises WebhookError or OSError."""
    parts = urlsplit(url)
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname, parts.port, timeout=deadline)
    expired = threading.Event()

    def cut_off() -> None:
        expired.set()
        sock = connection.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    timer = threading.Timer(deadline, cut_off)
    timer.daemon = True
    timer.start()
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", target, body=body, headers=headers)
        response = connection.getresponse()
        response.read(1024)
        status = response.status
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set():
            raise WebhookError(f"no complete answer within {deadline:.0f} s") from None
        raise WebhookError(f"{type(exc).__name__}: {exc}") from None
    finally:
        timer.cancel()
        connection.close()
    if expired.is_set():
        raise WebhookError(f"no complete answer within {deadline:.0f} s")
    if 300 <= status < 400:
        raise WebhookError(f"the receiver answered {status} (a redirect, not followed)")
    if status >= 300:
        raise WebhookError(f"the receiver answered {status}")
    return status


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def deliver_due(service: Service, *, now: datetime | None = None) -> int:
    """Post every storm that is due (new, or a retry whose back-off has passed); returns
    how many were delivered."""
    config, store = service.config, service.store()
    delivered = 0
    while True:
        moment = now or datetime.now(UTC)
        claim = store.claim_storm_delivery(
            _iso(moment), _iso(moment + timedelta(seconds=lease_seconds()))
        )
        if claim is None:
            return delivered
        body = json.dumps({"event": "storm", "storm": json.loads(claim["payload"])}).encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "kb-storms",
            "X-KB-Storm-Id": claim["id"],
            "X-KB-Signature": signature(config.webhook_secret, body),
        }
        try:
            post(config.webhook_url, body, headers, deadline=POST_DEADLINE_S)
            store.storm_delivered(claim["id"])
            delivered += 1
        except (WebhookError, OSError, ValueError, http.client.HTTPException) as exc:
            wait = min(MAX_BACKOFF_S, 2.0 ** claim["attempts"])
            # The back-off runs from the failure (a post may have taken its whole deadline).
            failed_at = now or datetime.now(UTC)
            store.storm_delivery_failed(
                claim["id"], str(exc), _iso(failed_at + timedelta(seconds=wait))
            )
            log.warning(
                "storm %s: webhook post failed (%s); next try in %.0f s", claim["id"], exc, wait
            )
            if now is not None:
                return delivered


class StormWatcher:
    """The background thread of one worker: find storms, record new ones, post them."""

    def __init__(self, service: Service):
        self.service = service
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="kb-storms", daemon=True)

    def start(self) -> StormWatcher:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def check_once(self) -> None:
        store = self.service.store()
        for storm in current_storms(self.service):
            store.record_storm(storm)
        if self.service.config.webhook_url:
            deliver_due(self.service)

    def _run(self) -> None:
        while not self._stop.wait(CHECK_EVERY_S):
            try:
                self.check_once()
            except Exception:  # noqa: BLE001 - a bad cycle is logged; the next one tries again
                log.exception("storm check failed")

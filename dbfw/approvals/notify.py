"""Webhook notification of new requests: POSTed as JSON, retried with backoff, never on the data path."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from typing import TYPE_CHECKING

from .. import log

if TYPE_CHECKING:
    from ..store.base import ApprovalRecord

QUEUE_LIMIT = 1000


class Notifier:
    """Posts each new request to a webhook as dbfw's JSON, and/or to a Slack incoming webhook as a message
    with the statement, requester, class, impact and a link to the request. (The URLs are secrets: never
    logged.)"""

    def __init__(self, url: str | None, attempts: int = 6, first_delay: float = 1.0, timeout: float = 5.0,
                 slack_url: str | None = None):
        self.url = url
        self.slack_url = slack_url
        self.attempts = attempts
        self.first_delay = first_delay
        self.timeout = timeout
        self._queue: asyncio.Queue[tuple[str, str, str, dict[str, object]]] = asyncio.Queue(QUEUE_LIMIT)
        self._worker: asyncio.Task[None] | None = None

    def submit(self, record: ApprovalRecord, approve_base: str) -> None:
        """Queue a notification; if the queue is full (the receiver is down for long), drop it and say so."""
        payload = {"id": record.id, "requester": record.requester, "database": record.database,
                   "listener": record.listener, "class": record.cls, "policy": record.policy, "statement": record.sql,
                   "required_approvals": record.required_approvals, "impact": record.impact,
                   "approve_url": f"{approve_base}/api/v1/approvals/{record.id}/approve" if approve_base else None}
        posts = [(self.url, "json", payload)] if self.url else []
        if self.slack_url:
            posts.append((self.slack_url, "slack", slack_message(record, approve_base)))
        for url, kind, body in posts:
            try:
                self._queue.put_nowait((url, kind, record.id, body))
            except asyncio.QueueFull:
                log.warning("notify.dropped", request=record.id, kind=kind, reason="queue full")
                return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            url, kind, request, payload = await self._queue.get()
            delay = self.first_delay
            for attempt in range(1, self.attempts + 1):
                try:
                    await asyncio.to_thread(self._post, url, payload)
                    log.event("notify.sent", request=request, kind=kind, attempt=attempt)
                    break
                except (OSError, urllib.error.URLError, ValueError) as e:
                    log.warning("notify.failed", request=request, kind=kind, attempt=attempt, error=type(e).__name__)
                    if attempt < self.attempts:
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 60)

    def _post(self, url: str, payload: dict[str, object]) -> None:
        body = json.dumps(payload).encode()
        req = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "dbfw"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            if resp.status >= 300:
                raise OSError(f"HTTP {resp.status}")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()


def _slack_text(text: str) -> str:
    """Text Slack shows as written: its control characters escaped, and no code fence closed early."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("```", "`\u200b``")


def slack_message(record: ApprovalRecord, base: str) -> dict[str, object]:
    """A Slack incoming-webhook message: the full statement, who asks, where, its class and impact, and a
    link to the request (on the reviewer console when it is served, else the API)."""
    from .impact import describe

    link = f"{base}/#request={record.id}" if base else ""
    impact = describe(record.impact) or "Impact: not estimated."
    facts = (f"*Requester:* {_slack_text(record.requester)}  *Database:* {_slack_text(record.database)}  "
             f"*Listener:* {_slack_text(record.listener)}\n*Class:* {_slack_text(record.cls)}  "
             f"*Policy:* {_slack_text(record.policy)}  *Approvals needed:* {record.required_approvals}\n"
             f"{_slack_text(impact)}")
    blocks: list[dict[str, object]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*dbfw: approval requested* `{record.id}`"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"```{_slack_text(record.sql)}```"}},
        {"type": "section", "text": {"type": "mrkdwn", "text": facts}},
    ]
    if link:
        blocks.append({"type": "actions", "elements": [
            {"type": "button", "text": {"type": "plain_text", "text": "Review"}, "url": link}]})
    return {"text": f"dbfw: {record.requester} asks to run a {record.cls} statement ({record.id})",
            "blocks": blocks}

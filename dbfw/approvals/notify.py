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
    def __init__(self, url: str, attempts: int = 6, first_delay: float = 1.0, timeout: float = 5.0):
        self.url = url
        self.attempts = attempts
        self.first_delay = first_delay
        self.timeout = timeout
        self._queue: asyncio.Queue[dict[str, object]] = asyncio.Queue(QUEUE_LIMIT)
        self._worker: asyncio.Task[None] | None = None

    def submit(self, record: ApprovalRecord, approve_base: str) -> None:
        """Queue a notification; if the queue is full (the receiver is down for long), drop it and say so."""
        payload = {"id": record.id, "requester": record.requester, "database": record.database,
                   "listener": record.listener, "class": record.cls, "policy": record.policy, "statement": record.sql,
                   "required_approvals": record.required_approvals,
                   "approve_url": f"{approve_base}/api/v1/approvals/{record.id}/approve" if approve_base else None}
        try:
            self._queue.put_nowait(payload)
        except asyncio.QueueFull:
            log.warning("notify.dropped", request=record.id, reason="queue full")
            return
        if self._worker is None or self._worker.done():
            self._worker = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            payload = await self._queue.get()
            delay = self.first_delay
            for attempt in range(1, self.attempts + 1):
                try:
                    await asyncio.to_thread(self._post, payload)
                    log.event("notify.sent", request=payload["id"], attempt=attempt)
                    break
                except (OSError, urllib.error.URLError, ValueError) as e:
                    log.warning("notify.failed", request=payload["id"], attempt=attempt, error=type(e).__name__)
                    if attempt < self.attempts:
                        await asyncio.sleep(delay)
                        delay = min(delay * 2, 60)

    def _post(self, payload: dict[str, object]) -> None:
        body = json.dumps(payload).encode()
        req = urllib.request.Request(self.url, data=body, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "dbfw"})
        with urllib.request.urlopen(req, timeout=self.timeout) as resp:
            if resp.status >= 300:
                raise OSError(f"HTTP {resp.status}")

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()

"""A small client of the admin API for the `dbfw approvals` commands (standard library only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


class ClientError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class AdminClient:
    def __init__(self, url: str, api_key: str, timeout: float = 10.0):
        self.url = url.rstrip("/")
        self.api_key = api_key
        self.timeout = timeout

    def request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"{self.url}{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.api_key}",
                                              "Content-Type": "application/json", "Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # the operator's admin URL
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read()).get("error", e.reason)
            except (ValueError, AttributeError):
                message = str(e.reason)
            raise ClientError(e.code, message) from None
        except (urllib.error.URLError, OSError) as e:
            raise ClientError(0, f"cannot reach the admin API at {self.url}: {getattr(e, 'reason', e)}") from None

    def list(self, status: str | None) -> list[dict[str, Any]]:
        query = f"?status={status}" if status else ""
        return self.request("GET", f"/api/v1/approvals{query}")["approvals"]

    def show(self, request_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/approvals/{request_id}")

    def approve(self, request_id: str, comment: str | None) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/approvals/{request_id}/approve", {"comment": comment})

    def deny(self, request_id: str, reason: str) -> dict[str, Any]:
        return self.request("POST", f"/api/v1/approvals/{request_id}/deny", {"reason": reason})

"""One log line per event: ``event key=value ...`` or JSON. Never a secret, never a result value."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_logger = logging.getLogger("dbfw")


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, Any] = getattr(record, "fields", {})
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        parts = [f"{ts}.{int(record.msecs):03d}Z", record.levelname.lower(), record.getMessage()]
        parts += [f"{k}={_quote(v)}" for k, v in fields.items() if v is not None]
        return " ".join(parts)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": record.created, "level": record.levelname.lower(), "event": record.getMessage()}
        out.update({k: v for k, v in getattr(record, "fields", {}).items() if v is not None})
        return json.dumps(out, default=str)


def _quote(v: Any) -> str:
    s = str(v)
    if not s or any(c in s for c in ' ="\n'):
        return json.dumps(s)
    return s


def setup(fmt: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    _logger.handlers[:] = [handler]
    _logger.setLevel(level.upper())
    _logger.propagate = False


def event(name: str, level: int = logging.INFO, **fields: Any) -> None:
    if _logger.isEnabledFor(level):
        _logger.log(level, name, extra={"fields": fields})


def warning(name: str, **fields: Any) -> None:
    event(name, logging.WARNING, **fields)


def debug(name: str, **fields: Any) -> None:
    event(name, logging.DEBUG, **fields)

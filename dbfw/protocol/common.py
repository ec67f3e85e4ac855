"""What every protocol session shares: settings, identities, the firewall, and the live sessions."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from ..audit.recorder import Recorder
from ..config import Settings
from ..identity import Identities
from ..verdict import Decider


class Session(Protocol):
    session_id: str

    def request_drain(self) -> None: ...

    def force_close(self) -> None: ...

    def rules_changed(self) -> None: ...

    async def cancel_upstream(self) -> None: ...


@dataclass
class Runtime:
    settings: Settings
    identities: Identities
    firewall: Decider
    draining: bool = False
    recorder: Recorder | None = None
    sessions: dict[str, Session] = field(default_factory=dict)
    connections: dict[str, int] = field(default_factory=dict)  # listener -> client connections open now
    # dbfw's own BackendKeyData (pid, secret) -> the session it was handed to.
    cancel_keys: dict[tuple[int, bytes], Session] = field(default_factory=dict)

    def new_session_id(self) -> str:
        return secrets.token_hex(8)

    def issue_cancel_key(self, session: Session, pid: int) -> tuple[int, bytes]:
        """The client sees the upstream backend's real pid (pg_backend_pid(), NOTIFY senders and
        pg_terminate_backend all use it) and a secret of dbfw's own: the upstream's secret never leaves dbfw."""
        while True:
            key = (pid, secrets.token_bytes(4))
            if key not in self.cancel_keys:
                self.cancel_keys[key] = session
                return key

    def session_for_cancel(self, pid: int, secret: bytes) -> Session | None:
        return self.cancel_keys.get((pid, secret))

    def add(self, session: Session, listener: str) -> int:
        """A client connection opens: how many the listener has now, this one included."""
        self.sessions[session.session_id] = session
        n = self.connections[listener] = self.connections.get(listener, 0) + 1
        return n

    def remove(self, session: Session, cancel_key: tuple[int, bytes] | None, listener: str) -> None:
        if self.sessions.pop(session.session_id, None) is not None:
            self.connections[listener] = self.connections.get(listener, 1) - 1
        if cancel_key is not None:
            self.cancel_keys.pop(cancel_key, None)


class Side(asyncio.Protocol):
    """One end of the relay: what arrives, ends or backs up is handed straight to the session."""

    __slots__ = ("_end", "_paused", "data_received")

    def __init__(self, on_data: Callable[[bytes], None], on_end: Callable[[BaseException | None], None],
                 on_paused: Callable[[bool], None]):
        self.data_received = on_data  # type: ignore[method-assign]
        self._end, self._paused = on_end, on_paused

    def eof_received(self) -> None:
        self._end(None)

    def connection_lost(self, exc: BaseException | None) -> None:
        self._end(exc)

    def pause_writing(self) -> None:
        self._paused(True)

    def resume_writing(self) -> None:
        self._paused(False)


def take_buffered(reader: asyncio.StreamReader) -> tuple[bytes, bool]:
    """What a stream reader has read ahead (the relay takes the transport over), and whether it saw EOF."""
    buffer = getattr(reader, "_buffer", None)
    data = bytes(buffer) if buffer else b""
    if buffer:
        buffer.clear()
    return data, reader.at_eof()

"""What every protocol session shares: settings, identities, the firewall, and the live sessions."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from .. import log
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


# Rows dropped past a result limit (each weighed as its bytes and 1 KiB more) before the statement is stopped
# upstream: a little past the limit ends by itself (and a late cancel could hit the next statement); a stream
# that goes on (SELECT * FROM a table of billions) is stopped.
FLOOD_BYTES = 16 << 20


class Relay:
    """What both protocols' asyncio shells share once the relay runs: how a side's end is reported, when
    reading from the client is held (a statement being decided, the upstream full), and the running
    statement's time limit. A shell sets the attributes below and has a ``core`` with ``timed_out(n)``
    and an async ``cancel_upstream()``."""

    _done: asyncio.Future[tuple[str, object, BaseException | None]] | None
    _client_t: asyncio.WriteTransport | None
    _up_t: asyncio.WriteTransport | None
    _client_holds: set[str]
    _timer: asyncio.TimerHandle | None
    _cancelling: asyncio.Task[None] | None
    core: Any

    def _finish(self, side: str, reason: object, exc: BaseException | None = None) -> None:
        done = self._done
        if done is not None and not done.done():
            done.set_result((side, reason, exc))

    # Reading from the client stops while a statement is being decided (so messages stay in order) and
    # while the upstream cannot take more; reading from the upstream stops while the client cannot.
    def _hold_client(self, why: str, on: bool) -> None:
        holds = self._client_holds
        before = bool(holds)
        if on:
            holds.add(why)
        else:
            holds.discard(why)
        t = self._client_t
        if bool(holds) != before and t is not None and not t.is_closing():
            t.pause_reading() if holds else t.resume_reading()

    def _client_write_paused(self, paused: bool) -> None:
        up_t = self._up_t
        if up_t is not None and not up_t.is_closing():
            up_t.pause_reading() if paused else up_t.resume_reading()

    def _arm(self, number: int, seconds: float | None) -> None:
        """The statement running now has a time limit (or none)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if seconds is not None:
            self._timer = asyncio.get_running_loop().call_later(seconds, self._time_is_up, number)

    def _time_is_up(self, number: int) -> None:
        self._timer = None
        core = self.core
        if core is not None and core.timed_out(number):
            self._cancelling = asyncio.get_running_loop().create_task(self.cancel_upstream())

    async def _stop_flood(self) -> None:
        """A result far past its limit (FLOOD_BYTES dropped) and still coming: stop it upstream. Reading it
        is held meanwhile, or dropping its rows (libuv reads 32 times a wakeup) would leave the event loop no
        time for the cancel's own round trips."""
        t = self._up_t
        if t is not None:
            t.pause_reading()
        # The client's next statement waits too: a cancel arriving after the flood ended on its own must find
        # the server idle (where it is ignored), not running that statement.
        self._hold_client("cancelling", True)
        log.warning("session.result_stopped_upstream", session=getattr(self, "session_id", ""))
        try:
            await self.cancel_upstream()
        finally:
            if t is not None and not t.is_closing():
                t.resume_reading()
            self._hold_client("cancelling", False)

    async def cancel_upstream(self) -> None:
        raise NotImplementedError

"""One client connection on a PostgreSQL listener: start-up, authentication, then the relay.

This is the asyncio shell around the sans-I/O session core (``core.py``): it reads from both sockets,
feeds the core, writes what the core gives back, and answers the core's questions (the firewall's
verdict on a statement, an audit record written before a statement runs). Start-up and the client's
authentication happen here first; then both transports are driven by protocol callbacks, so a
message that needs no waiting costs no task switch.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

from ... import log, metrics
from ...config import Listener
from ...context import StatementContext
from ...firewall import Verdict
from ..common import Relay, Runtime, Side, take_buffered
from . import messages as m
from .core import Ask, EndReason, PgCore, Question
from .opening import ClientGone, Opening
from .upstream import UpstreamConnection, send_cancel

STREAMABLE_FRONTEND = frozenset(b"Bd")  # Bind, CopyData: relayed, never held whole


class PgSession(Relay):
    def __init__(self, rt: Runtime, listener: Listener, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, tls: ssl.SSLContext | None):
        self.rt = rt
        self.listener = listener
        self.reader = reader
        self.writer = writer
        self.tls_context = tls
        self.session_id = rt.new_session_id()
        peer = writer.get_extra_info("peername")
        self.client_addr = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "local"
        frames = m.FrameReader(listener.max_message_size, startup=True, streamable=STREAMABLE_FRONTEND)
        self.opening = Opening(rt, listener, reader, writer, tls, self, self.client_addr, frames)
        # What the opening gives the relay.
        self.upstream: UpstreamConnection | None = None
        self.cancel_key: tuple[int, bytes] | None = None
        self.ctx: StatementContext | None = None  # the session's context as it started (the core's changes)
        self.core: PgCore | None = None
        self.draining = False
        self._drain_now = asyncio.Event()
        # The relay, once both transports are handed over to it.
        self._done: asyncio.Future[tuple[str, EndReason | None, BaseException | None]] | None = None
        self._client_t: asyncio.WriteTransport | None = None
        self._up_t: asyncio.WriteTransport | None = None
        self._client_holds: set[str] = set()
        self._task: asyncio.Task[None] | None = None  # answering the core's question
        self._timer: asyncio.TimerHandle | None = None  # the running statement's time limit
        self._cancelling: asyncio.Task[None] | None = None

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        self.opening.crowded = self.rt.add(self, self.listener.name) > self.listener.max_connections
        started = time.monotonic()
        reason = EndReason.CLOSED
        active = metrics.connections_active.labels(self.listener.name)
        active.inc()
        try:
            reason = await self._run()
        except m.ProtocolError as e:
            reason = EndReason.PROTOCOL_ERROR
            log.warning("session.protocol_error", session=self.session_id, client=self.client_addr, error=str(e))
            await self._fatal_quietly("08P01", f"dbfw: invalid message from the client: {e}")
        except (ClientGone, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            reason = EndReason.CLIENT_GONE
            log.debug("session.client_gone", session=self.session_id, error=type(e).__name__)
        except TimeoutError:
            reason = EndReason.AUTH_TIMEOUT
            await self._fatal_quietly("08006", "dbfw: authentication timed out")
        except Exception as e:  # a bug must cost one session, never the server
            reason = EndReason.INTERNAL_ERROR
            log.event("session.internal_error", 40, session=self.session_id, error=repr(e))
            await self._fatal_quietly("XX000", "dbfw: internal error; the session was closed")
        finally:
            active.dec()
            metrics.connections_total.labels(self.listener.name, str(reason)).inc()
            self.rt.remove(self, self.cancel_key, self.listener.name)
            if self.upstream is not None:
                self._close_upstream()
            self._close_client()
            self._ended(reason, started)

    def _ended(self, reason: EndReason, started: float) -> None:
        if self.ctx is None:
            return
        if self.rt.recorder is not None:
            self.rt.recorder.session_ended(self.ctx, str(reason))
        log.event("session.end", session=self.session_id, identity=self.ctx.identity, listener=self.listener.name,
                  reason=str(reason), statements=self.core.executions if self.core is not None else 0,
                  seconds=round(time.monotonic() - started, 3))

    async def _run(self) -> EndReason:
        try:
            reason = await self.opening.open()
        finally:
            self._opened()
        return reason if reason is not None else await self._relay()

    def _opened(self) -> None:
        o = self.opening
        self.upstream, self.cancel_key, self.ctx, self.core = o.upstream, o.cancel_key, o.ctx, o.core

    def request_drain(self) -> None:
        self.draining = True
        if self.core is None or self.core.inflight == 0:
            self._drain_now.set()

    def rules_changed(self) -> None:
        """Rules or identities were reloaded."""
        if self.core is not None:
            fw = self.rt.firewall
            self.core.rules_changed(fw.generation, fw.rules.limits)

    def force_close(self) -> None:
        if self.upstream is not None:
            self._close_upstream()
        self._close_client()

    async def cancel_upstream(self) -> None:
        up = self.upstream
        if up is not None:
            await send_cancel(self.rt.settings.upstreams[self.listener.upstream], up.pid, up.secret)

    def _close_client(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()

    def _close_upstream(self) -> None:
        up = self.upstream
        if up is None:
            return
        with contextlib.suppress(Exception):
            if not up.writer.is_closing():
                up.writer.write(m.Terminate().encode())
            up.writer.close()

    async def _fatal_quietly(self, sqlstate: str, message: str, detail: str | None = None) -> None:
        await self.opening.fatal_quietly(sqlstate, message, detail)

    # --- relay -------------------------------------------------------------------------------------

    async def _relay(self) -> EndReason:
        """Relay until one side ends. Both transports are driven by protocol callbacks from here on: a
        message that needs no waiting is handled in the callback itself, without a task switch."""
        assert self.upstream is not None and self.core is not None
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        up = self.upstream
        client_t, up_t = self.writer.transport, up.writer.transport
        self._client_t, self._up_t = client_t, up_t
        self._bytes_in = metrics.bytes_total.labels(self.listener.name, "client_to_upstream")
        self._bytes_out = metrics.bytes_total.labels(self.listener.name, "upstream_to_client")
        # What the stream readers of start-up had read ahead is handed to the relay.
        client_rest, client_eof = take_buffered(self.reader)
        up_rest, up_eof = take_buffered(up.reader)
        client_t.set_protocol(Side(self._client_data, lambda _: self._finish("client", EndReason.CLIENT_GONE),
                                   self._client_write_paused))
        up_t.set_protocol(Side(self._upstream_data, lambda _: self._finish("upstream", EndReason.UPSTREAM_GONE),
                               lambda paused: self._hold_client("upstream_full", paused)))
        client_t.resume_reading()
        up_t.resume_reading()
        if up_rest or self.core.scanner.more:
            self._upstream_data(up_rest)
        if up_eof:
            self._finish("upstream", EndReason.UPSTREAM_GONE)
        if client_rest or self.core.frames.buffered:
            self._client_data(client_rest)
        if client_eof:
            self._finish("client", EndReason.CLIENT_GONE)
        drain = asyncio.create_task(self._drain_now.wait())
        try:
            done, _ = await asyncio.wait({self._done, drain}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            drain.cancel()
            if self._task is not None:
                self._task.cancel()
            if self._timer is not None:
                self._timer.cancel()
            self._finish("relay", EndReason.CLOSED)
        return await self._relay_ended(drain in done)

    async def _relay_ended(self, drained: bool) -> EndReason:
        assert self._done is not None and self.core is not None
        side, reason, exc = self._done.result()
        if drained or reason == EndReason.DRAINED:
            await self._fatal_quietly("57P01", "dbfw: the firewall is shutting down", detail="reconnect to continue")
            return EndReason.DRAINED
        if side == "client":
            if exc is not None:
                raise exc
            if reason != EndReason.TERMINATE and self.core.inflight > 0:
                # The client vanished mid-statement: stop the work it left running upstream.
                log.event("session.client_vanished_busy", session=self.session_id, inflight=self.core.inflight)
                await self.cancel_upstream()
            return reason or EndReason.CLIENT_GONE
        if isinstance(exc, m.ProtocolError):
            log.warning("upstream.protocol_error", session=self.session_id, error=str(exc))
            await self._fatal_quietly("08P01", "dbfw: the database sent an invalid message")
            return EndReason.UPSTREAM_PROTOCOL_ERROR
        if exc is not None:
            raise exc
        if reason == EndReason.CLIENT_GONE:
            if self.core.inflight > 0:
                await self.cancel_upstream()
            return reason
        if not self.core.upstream_fatal:
            await self._fatal_quietly("08006", "dbfw: lost the connection to the database",
                                      detail="the statement in progress, if any, may not have completed")
        metrics.upstream_errors.labels(self.listener.name).inc()
        log.warning("upstream.lost", session=self.session_id, upstream=self.listener.upstream)
        return EndReason.UPSTREAM_LOST

    def _client_data(self, data: bytes) -> None:
        core = self.core
        if self._done is None or self._done.done() or core is None:
            return
        if data:
            if self.draining and core.inflight == 0 and core.question is None:
                # Shutting down and nothing in flight: new work is not started; the client is told why.
                self._finish("client", EndReason.DRAINED)
                return
            self._bytes_in.inc(len(data))
            core.arrived = time.perf_counter()
        try:
            core.client_data(data)
            self._pump()
        except Exception as e:
            self._finish("client", None, e)

    def _upstream_data(self, data: bytes) -> None:
        core = self.core
        if self._done is None or self._done.done() or core is None:
            return
        if data:
            self._bytes_out.inc(len(data))
        try:
            core.server_data(data)
            self._pump()
        except Exception as e:
            self._finish("upstream", None, e)
            return
        if self.draining and core.inflight == 0:
            self._drain_now.set()

    def _pump(self) -> None:
        """Carry out what the core asks: bytes to each side, a time limit to arm, a question to answer (at
        once when the firewall can, else in a task while the client's reading is held)."""
        core = self.core
        assert core is not None
        up, down = core.to_server, core.to_client
        while True:
            if up:  # writelines takes the bytes at once: the lists are emptied for the core's next output
                self._up_t.writelines(up)  # type: ignore[union-attr]
                up.clear()
            if down:
                client_t = self._client_t
                if client_t is None or client_t.is_closing():
                    self._finish("upstream", EndReason.CLIENT_GONE)
                    return
                client_t.writelines(down)
                down.clear()
            if core.timer is not None:
                self._arm(*core.timer)
                core.timer = None
            if core.cancel_now:
                core.cancel_now = False
                self._cancelling = asyncio.get_running_loop().create_task(self._stop_flood())
            if core.ended is not None:
                self._finish("client", core.ended)
                return
            question = core.question
            if question is None or self._task is not None:
                return
            verdict = self._answer_now(question)
            if verdict is None:
                self._hold_client("deciding", True)
                self._task = asyncio.get_running_loop().create_task(self._answer(question))
                return
            core.answer(verdict)

    def _answer_now(self, question: Question) -> Verdict | None:
        """The firewall's decision without waiting, when it can make one (see Firewall.check_now). The core
        tried already for a Query or Parse (PgCore.decide_now): only a decision made again is left."""
        core = self.core
        assert core is not None
        if question.kind == Ask.REDECIDE:
            return self.rt.firewall.check_now(core.ctx, question.sql, record=False)
        return None

    async def _answer(self, question: Question) -> None:
        fw, core, recorder = self.rt.firewall, self.core, self.rt.recorder
        assert core is not None
        verdict: Verdict | None = None
        try:
            if question.kind == Ask.QUERY:
                verdict = await fw.check(core.ctx, question.sql)
            elif question.kind == Ask.CALL:
                verdict = await fw.check_function_call(core.ctx, question.oid)
            elif question.kind == Ask.RECORD:
                assert recorder is not None and question.record is not None
                await recorder.statement(core.ctx, question.record)
            else:
                verdict = await fw.check(core.ctx, question.sql, record=False)
        except asyncio.CancelledError:
            self._finish("client", EndReason.CANCELLED)  # never leave the client paused with the relay running
            raise
        except Exception as e:
            self._finish("client", None, e)
            return
        finally:
            self._task = None
        try:
            core.answer(verdict)
            self._pump()
        except Exception as e:
            self._finish("client", None, e)
            return
        if self._task is None:
            self._hold_client("deciding", False)

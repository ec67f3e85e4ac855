"""One client connection on a MySQL listener: the opening (handshake, authentication, upstream), then the
relay around the sans-I/O core (``core.py``): read from both sockets, feed the core, write what it gives
back, answer its questions."""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

from ... import log, metrics
from ...config import Listener
from ...context import StatementContext
from ...verdict import Verdict
from ..common import Relay, Runtime, Side, take_buffered
from . import packets as p
from .core import Ask, EndReason, MyCore, Phase, Question
from .opening import ClientGone, Opening
from .upstream import MyUpstream, connect, query_rows

BACKLOG = 1 << 20


class _ClientWriter:
    """What the opening writes through during COM_CHANGE_USER: the relay's client transport."""

    def __init__(self, transport: asyncio.WriteTransport):
        self.transport = transport

    def write(self, data: bytes) -> None:
        self.transport.write(data)

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        self.transport.close()


class MySession(Relay):
    def __init__(self, rt: Runtime, listener: Listener, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, tls: ssl.SSLContext | None):
        self.rt, self.listener, self.reader, self.writer = rt, listener, reader, writer
        self.session_id = rt.new_session_id()
        peer = writer.get_extra_info("peername")
        self.client_addr = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else "local"
        self.opening = Opening(rt, listener, reader, writer, tls, self, self.client_addr)
        self.upstream: MyUpstream | None = None
        self.ctx: StatementContext | None = None
        self.core: MyCore | None = None
        self.draining = False
        self._drain_now = asyncio.Event()
        self._done: asyncio.Future[tuple[str, EndReason | None, BaseException | None]] | None = None
        self._client_t: asyncio.WriteTransport | None = None
        self._up_t: asyncio.WriteTransport | None = None
        self._client_holds: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None  # the running statement's time limit
        self._cancelling: asyncio.Task[None] | None = None
        self._auth_feed: asyncio.StreamReader | None = None

    # --- lifecycle ------------------------------------------------------------------------------------

    async def run(self) -> None:
        self.opening.crowded = self.rt.add(self, self.listener.name) > self.listener.max_connections
        started = time.monotonic()
        reason = EndReason.CLOSED
        active = metrics.connections_active.labels(self.listener.name)
        active.inc()
        try:
            reason = await self._run()
        except p.PacketError as e:
            reason = EndReason.PROTOCOL_ERROR
            log.warning("session.protocol_error", session=self.session_id, client=self.client_addr, error=str(e))
            await self.opening.refuse_quietly(p.Err(1835, "08S01", f"dbfw: malformed packet: {e}"))
        except (ClientGone, ConnectionError, asyncio.IncompleteReadError, ssl.SSLError) as e:
            reason = EndReason.CLIENT_GONE
            log.debug("session.client_gone", session=self.session_id, error=type(e).__name__)
        except TimeoutError:
            reason = EndReason.AUTH_TIMEOUT
        except Exception as e:  # a bug must cost one session, never the server
            reason = EndReason.INTERNAL_ERROR
            log.event("session.internal_error", 40, session=self.session_id, error=repr(e))
        finally:
            active.dec()
            metrics.connections_total.labels(self.listener.name, str(reason)).inc()
            self.rt.remove(self, None, self.listener.name)
            self._close()
            if self.ctx is not None:
                if self.rt.recorder is not None:
                    self.rt.recorder.session_ended(self.ctx, str(reason))
                log.event("session.end", session=self.session_id, identity=self.ctx.identity,
                          listener=self.listener.name, reason=str(reason),
                          statements=self.core.executions if self.core is not None else 0,
                          seconds=round(time.monotonic() - started, 3))

    async def _run(self) -> EndReason:
        o = self.opening
        try:
            reason = await o.open()
        finally:
            self.reader, self.writer = o.reader, o.writer  # over TLS, if the client asked for it
        self.upstream, self.ctx, self.core = o.upstream, o.ctx, o.core
        if reason is not None:
            return reason
        return await self._relay()

    def _close(self) -> None:
        up = self.upstream
        if up is not None:
            with contextlib.suppress(Exception):
                if not up.writer.is_closing():
                    up.writer.write(p.frame(bytes((p.Command.QUIT,)), 0)[0])
                up.writer.close()
        with contextlib.suppress(Exception):
            self.writer.close()

    def request_drain(self) -> None:
        self.draining = True
        if self.core is None or self.core.response is None:
            self._drain_now.set()

    def force_close(self) -> None:
        self._close()

    def rules_changed(self) -> None:
        if self.core is not None:
            fw = self.rt.firewall
            self.core.rules_changed(fw.generation, fw.rules.limits)

    async def cancel_upstream(self) -> None:
        """Stop what the upstream session runs now: KILL QUERY on a connection of dbfw's own."""
        up = self.upstream
        if up is None:
            return
        cfg = self.rt.settings.upstreams[self.listener.upstream]
        try:
            side = await connect(cfg, int(p.SUPPORTED), None, p.UTF8MB4_GENERAL_CI)
            try:
                await asyncio.wait_for(query_rows(side, f"KILL QUERY {int(up.handshake.connection_id)}"),
                                       cfg.connect_timeout)
                log.event("session.cancelled_upstream", session=self.session_id)
            finally:
                side.writer.close()
        except Exception as e:  # the statement goes on; the client still gets its answer when it ends
            log.warning("session.cancel_failed", session=self.session_id, error=type(e).__name__)

    # --- relay -----------------------------------------------------------------------------------------

    async def _relay(self) -> EndReason:
        assert self.upstream is not None and self.core is not None
        loop = asyncio.get_running_loop()
        self._done = loop.create_future()
        core = self.core
        client_t = self._client_t = self.writer.transport
        self._bytes_in = metrics.bytes_total.labels(self.listener.name, "client_to_upstream")
        self._bytes_out = metrics.bytes_total.labels(self.listener.name, "upstream_to_client")
        client_rest, client_eof = take_buffered(self.reader)
        core.client.feed(self.opening.packets.take_buffered())
        client_t.set_protocol(Side(self._client_data, lambda _: self._finish("client", EndReason.CLIENT_GONE),
                                   self._client_write_paused))
        client_t.resume_reading()
        self._attach_upstream()
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
        return await self._ended(drain in done)

    def _attach_upstream(self) -> None:
        up, core = self.upstream, self.core
        assert up is not None and core is not None
        up_t = self._up_t = up.writer.transport
        up_rest, up_eof = take_buffered(up.reader)
        core.server.feed(up.packets.take_buffered())
        up_t.set_protocol(Side(self._upstream_data, lambda _: self._finish("upstream", EndReason.UPSTREAM_GONE),
                               lambda paused: self._hold_client("upstream_full", paused)))
        up_t.resume_reading()
        self._upstream_data(up_rest)
        if up_eof:
            self._finish("upstream", EndReason.UPSTREAM_GONE)

    async def _ended(self, drained: bool) -> EndReason:
        assert self._done is not None and self.core is not None
        side, reason, exc = self._done.result()
        if drained or reason == EndReason.DRAINED:
            await self.opening.refuse_quietly(p.Err(1053, "08S01", "dbfw: the firewall is shutting down; "
                                                    "reconnect to continue"))
            return EndReason.DRAINED
        if isinstance(exc, p.PacketError):
            if side == "upstream":
                log.warning("upstream.protocol_error", session=self.session_id, error=str(exc))
                self._tell_client(p.Err(2027, "HY000", f"dbfw: {exc}"))
                return EndReason.UPSTREAM_PROTOCOL_ERROR
            raise exc
        if exc is not None:
            raise exc
        if side == "upstream" and reason == EndReason.UPSTREAM_GONE:
            metrics.upstream_errors.labels(self.listener.name).inc()
            log.warning("upstream.lost", session=self.session_id, upstream=self.listener.upstream)
            self._tell_client(p.Err(2013, "HY000", "dbfw: lost the connection to the database; the statement in "
                                    "progress, if any, may not have completed"))
            return EndReason.UPSTREAM_LOST
        return reason or EndReason.CLOSED

    def _tell_client(self, err: p.Err) -> None:
        core, t = self.core, self._client_t
        if core is None or t is None or t.is_closing():
            return
        seq = core.response.seq + 1 if core.response is not None else 1
        with contextlib.suppress(Exception):
            t.write(p.frame(err.encode(), seq)[0])

    def _client_data(self, data: bytes) -> None:
        if self._auth_feed is not None:  # COM_CHANGE_USER's login
            self._auth_feed.feed_data(data)
            return
        core = self.core
        if self._done is None or self._done.done() or core is None:
            return
        if data:
            if self.draining and core.response is None and core.question is None:
                self._finish("client", EndReason.DRAINED)
                return
            self._bytes_in.inc(len(data))
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
        if self.draining and core.response is None:
            self._drain_now.set()

    def _pump(self) -> None:
        core = self.core
        assert core is not None
        # A client that sends while its last command's response is still coming is read no further than
        # a little: its bytes wait in the socket, not in dbfw's memory.
        self._hold_client("backlog", core.phase != Phase.IDLE and core.client.buffered > BACKLOG)
        while True:
            up, down = core.to_server, core.to_client
            if up:
                self._up_t.writelines(up)  # type: ignore[union-attr]
                up.clear()
            if down:
                t = self._client_t
                if t is None or t.is_closing():
                    self._finish("upstream", EndReason.CLIENT_GONE)
                    return
                t.writelines(down)
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
            self._hold_client("deciding", True)
            self._task = asyncio.get_running_loop().create_task(self._answer(question))
            return

    async def _answer(self, question: Question) -> None:
        fw, core, recorder = self.rt.firewall, self.core, self.rt.recorder
        assert core is not None
        verdict: Verdict | None = None
        try:
            if question.kind == Ask.RECORD:
                assert recorder is not None and question.record is not None
                await recorder.statement(core.ctx, question.record)
            elif question.kind == Ask.KILL:
                verdict = await self._kill_query(question.target)
            elif question.kind == Ask.CHANGE_USER:
                await self._change_user(question.payload)
            else:
                verdict = await fw.check(core.ctx, question.sql, record=question.kind == Ask.QUERY)
        except asyncio.CancelledError:
            self._finish("client", EndReason.CANCELLED)
            raise
        except Exception as e:
            self._finish("client", None, e)
            return
        finally:
            self._task = None
        try:
            if question.kind != Ask.CHANGE_USER:  # else a new core, which has no question
                core.answer(verdict)
            self._pump()
        except Exception as e:
            self._finish("client", None, e)
            return
        if self._task is None:
            self._hold_client("deciding", False)

    async def _change_user(self, payload: bytes) -> None:
        """COM_CHANGE_USER: the opening logs the new user in over the relay's client connection, then the
        session goes on with a new upstream session, core and recording; the old upstream session ends."""
        o, old_core, old_ctx, old_up = self.opening, self.core, self.ctx, self.upstream
        assert old_core is not None and old_ctx is not None and old_up is not None and self._client_t is not None
        feed = self._auth_feed = asyncio.StreamReader()
        feed.feed_data(old_core.client.take_buffered())
        o.reader, o.writer, o.packets = feed, _ClientWriter(self._client_t), p.PacketReader(65536)  # type: ignore[assignment]
        new_id = self.rt.new_session_id()
        o.session_id = new_id
        self._hold_client("deciding", False)  # the client answers the login's questions
        try:
            reason = await o.change_user(payload)
        finally:
            self._auth_feed = None
        if reason is not None:
            self._finish("client", reason)
            return
        self.rt.sessions.pop(self.session_id, None)
        self.session_id, self.rt.sessions[new_id] = new_id, self
        self.upstream, self.ctx, self.core = o.upstream, o.ctx, o.core
        if self.rt.recorder is not None:
            self.rt.recorder.session_ended(old_ctx, str(EndReason.CHANGE_USER))
        log.event("session.end", session=old_ctx.session_id, identity=old_ctx.identity, listener=self.listener.name,
                  reason=str(EndReason.CHANGE_USER), statements=old_core.executions)
        old_t = old_up.writer.transport
        old_t.set_protocol(asyncio.Protocol())  # its end is not the session's
        with contextlib.suppress(Exception):
            old_t.write(p.frame(bytes((p.Command.QUIT,)), 0)[0])
            old_t.close()
        self._attach_upstream()
        core = self.core
        assert core is not None
        rest, _ = take_buffered(feed)
        core.client_data(o.packets.take_buffered() + rest)  # a command sent right behind the change goes on

    async def _kill_query(self, connection_id: int) -> Verdict | None:
        """KILL QUERY n naming a session of the same identity (by the id dbfw's handshake gave it): its
        running statement is stopped upstream. None: not such a session (the statement is decided as any)."""
        for session in list(self.rt.sessions.values()):
            if isinstance(session, MySession) and session.opening.connection_id == connection_id \
                    and session.ctx is not None and self.ctx is not None and session.ctx.identity == self.ctx.identity:
                log.event("session.kill_query", session=self.session_id, target=session.session_id)
                await session.cancel_upstream()
                return Verdict(True, cls="session")
        return None

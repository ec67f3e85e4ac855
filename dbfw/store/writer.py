"""Session recordings written by a process of their own (SQLite store).

Packing a flush of recorded statements into runs, encoding them and chaining them costs a few µs per
statement; done on a thread of the proxy's process, it also competes for the interpreter lock with
the event loop, which under load cost more than the work itself. The proxy hands each flush, pickled,
to this process over a pipe and waits for its answer (on the store's thread, never on the event
loop); the process writes it in one transaction of its own on the same database file (WAL mode; the
chain is extended under BEGIN IMMEDIATE, as by any dbfw process sharing the file).

Protocol on stdin/stdout: a 4-byte big-endian length, then a pickled ``(sessions, ends, events, flush)``;
the answer is the same framing around ``None`` (written) or an error message. End of input: exit.
If the process is gone, the store writes in-process instead (nothing is lost).
"""

from __future__ import annotations

import pickle
import select
import struct
import subprocess
import sys
import threading
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    from .base import Event, SessionClosed, SessionOpened

_LEN = struct.Struct("!I")
REPLY_TIMEOUT = 15.0  # a flush is a few ms; SQLite's own busy timeout is 10 s


def _read_frame(stream: IO[bytes]) -> bytes | None:
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = _LEN.unpack(head)
    body = stream.read(n)
    return body if len(body) == n else None


def _write_frame(stream: IO[bytes], payload: bytes) -> None:
    stream.write(_LEN.pack(len(payload)) + payload)
    stream.flush()


class RecordingWriter:
    """The proxy's end: one writer process, used from one thread at a time."""

    def __init__(self, path: str):
        self.path = path
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        self._proc = subprocess.Popen([sys.executable, "-m", "dbfw.store.writer_process", self.path],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        # The child says it has opened the database before the first flush is sent.
        ready, _, _ = select.select([self._proc.stdout], [], [], REPLY_TIMEOUT)
        reply = _read_frame(self._proc.stdout) if ready else None  # type: ignore[arg-type]
        if reply is None or pickle.loads(reply) is not None:
            self.close()
            raise OSError(f"the recording writer did not start: {pickle.loads(reply) if reply else 'no answer'}")


    def write(self, sessions: list[SessionOpened], ends: list[SessionClosed],
              events: list[Event], flush: tuple[str, str] | None = None) -> None:
        """Blocks until the batch is written. OSError: the process is gone (the batch may not be written);
        RuntimeError: it answered with an error (the batch is not written)."""
        with self._lock:
            proc = self._proc
            if proc is None or proc.stdin is None or proc.stdout is None:
                raise OSError("the recording writer is not running")
            # Plain tuples: pickling a NamedTuple runs Python code per record, on the proxy's CPU; the child
            # makes the records again.
            batch = (list(map(tuple, sessions)), list(map(tuple, ends)), list(map(tuple, events)), flush)
            _write_frame(proc.stdin, pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL))
            # A writer that stopped answering must not hold up the store's thread (approvals, durable
            # records): after REPLY_TIMEOUT it is ended and the store writes in-process.
            ready, _, _ = select.select([proc.stdout], [], [], REPLY_TIMEOUT)
            if not ready:
                proc.kill()
                raise OSError(f"the recording writer did not answer within {REPLY_TIMEOUT:.0f} s")
            reply = _read_frame(proc.stdout)
            if reply is None:
                raise OSError("the recording writer went away")
            error = pickle.loads(reply)
            if error is not None:
                raise RuntimeError(error)

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.stdin is not None:
                proc.stdin.close()
            proc.wait(10)
        except Exception:
            proc.kill()
            proc.wait()
        finally:
            if proc.stdout is not None:
                proc.stdout.close()

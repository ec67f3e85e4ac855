"""The recording writer's own process (see writer.py): reads batches from the proxy on stdin, writes them to
the SQLite store, answers on stdout."""

from __future__ import annotations

import pickle
import signal
import sys

from .base import Event, SessionClosed, SessionOpened
from .sqlite import SQLiteStore
from .writer import _read_frame, _write_frame


def main(path: str) -> int:
    # Stopping is the proxy's decision: it closes the pipe after its last flush.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    out, inp = sys.stdout.buffer, sys.stdin.buffer
    store = SQLiteStore(path, f"sqlite:///{path}")
    try:
        store._open()
    except Exception as e:
        _write_frame(out, pickle.dumps(f"{type(e).__name__}: {e}"))
        return 1
    _write_frame(out, pickle.dumps(None))
    while True:
        frame = _read_frame(inp)
        if frame is None:
            break
        try:
            sessions, ends, events, flush = pickle.loads(frame)
            store._record_sync([SessionOpened(*s) for s in sessions], [SessionClosed(*e) for e in ends],
                               [Event(*e) for e in events], flush)
            answer = None
        except Exception as e:  # the proxy keeps the batch and tries again
            answer = f"{type(e).__name__}: {e}"
        _write_frame(out, pickle.dumps(answer))
    if store._conn is not None:
        store._conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

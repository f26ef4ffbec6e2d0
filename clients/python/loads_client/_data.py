"""Test data: the rows of the run's data sources (``loads run --data NAME=FILE[:STRATEGY]``),
asked for one at a time on loads' data endpoint (docs/external-runners.md, "Test data").

loads gives each process ``LOADS_DATA_ENDPOINT`` (a ZeroMQ endpoint; connect a REQ socket) and
``LOADS_DATA_USER`` (this process's user, for ``per-user`` sources). A request is
``{"name": NAME, "user": LOADS_DATA_USER}``; the answer ``{"row": {...}, "index": N}`` or
``{"error": MESSAGE, "exhausted": bool, "stop": bool}``.
"""

from __future__ import annotations

import json
import os
import threading

__all__ = ["DataError", "DataStop", "row"]

#: How long a request waits for loads' answer, in milliseconds.
TIMEOUT_MS = 10_000


class DataError(Exception):
    """No row: the source is exhausted or not declared, or loads did not answer. Raised in a
    test, it makes the hit an error."""


class DataStop(DataError):
    """A ``queue-stop`` source is exhausted: the process stops its hits (this one is not
    counted)."""


_lock = threading.Lock()
_socket = None


def _connect(endpoint):
    import zmq

    s = zmq.Context.instance().socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, TIMEOUT_MS)
    s.setsockopt(zmq.SNDTIMEO, TIMEOUT_MS)
    s.connect(endpoint)
    return s


def row(name, env=None):
    """A row of the data source ``name``, as a dict of column -> text."""
    global _socket
    env = os.environ if env is None else env
    endpoint = env.get("LOADS_DATA_ENDPOINT", "").strip()
    if not endpoint:
        raise DataError(
            "data %r: no data endpoint (LOADS_DATA_ENDPOINT is not set); run the test under "
            "loads with --data %s=FILE[:STRATEGY]" % (name, name)
        )
    request = json.dumps({"name": name, "user": env.get("LOADS_DATA_USER", "")}).encode()
    import zmq

    with _lock:
        if _socket is None:
            _socket = _connect(endpoint)
        try:
            _socket.send(request)
            answer = json.loads(_socket.recv())
        except zmq.Again:
            # A REQ socket that got no answer cannot send again: start over.
            _socket.close()
            _socket = None
            raise DataError("data %r: loads did not answer within %d s" % (name, TIMEOUT_MS // 1000)) from None
    if "row" in answer:
        return dict(answer["row"])
    message = str(answer.get("error", "no row"))
    if answer.get("stop"):
        raise DataStop(message)
    raise DataError(message)


def close():
    """Closes the data socket (at the end of the process)."""
    global _socket
    with _lock:
        if _socket is not None:
            _socket.close()
            _socket = None

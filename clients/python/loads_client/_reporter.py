"""Event reporting: the ZeroMQ reporter used under loads, and the null reporter used elsewhere.

One reporter is current per process (``current()``); the runner installs a ``ZmqReporter`` before
the first hit, and everything else (``Session``, ``TestCase.incr_counter``...) reports through
whatever is current. Outside loads the current reporter is a ``NullReporter``: events are
discarded, so tests stay runnable with plain ``python -m unittest``.

Cost per event: the constant parts of every message (envelope, test name, ``data_type``) are
JSON-encoded once, the ``loads_status`` fragment once per hit, and an event is one string
concatenation or ``%`` format, one ``encode`` and one ``send`` on a socket created once.
"""

from __future__ import annotations

import json
import threading
import time

__all__ = ["NullReporter", "ZmqReporter", "current", "install", "format_time"]

# Most messages a PUSH socket queues while loads is slow to read them, before `send` blocks.
SEND_HIGH_WATER_MARK = 10_000

_dumps = json.dumps


class NullReporter:
    """Discards every event. Current outside loads (``python -m unittest``)."""

    enabled = False
    status = (1, 1, 1, 1)

    def begin_hit(self, hit):
        self.status = (self.status[0], self.status[1], hit, self.status[3])

    def start_test(self):
        pass

    def stop_test(self, elapsed=None):
        pass

    def add_success(self):
        pass

    def add_failure(self, message, kind, traceback):
        pass

    def add_error(self, message, kind, traceback):
        pass

    def add_hit(self, url, method, status, started, elapsed):
        pass

    def incr_counter(self, name):
        pass

    def socket_open(self):
        pass

    def socket_close(self):
        pass

    def socket_message(self, size, sent=False):
        pass

    def close(self, linger_ms=0):
        pass


# (second, "YYYY-MM-DDTHH:MM:SS") of the last formatted time; one tuple, so that threads racing
# across a second boundary never pair a second with another second's text.
_last_second = (None, "")


def format_time(t):
    """``t`` (seconds since the epoch) as ISO 8601 UTC with microseconds: 2026-11-26T05:00:00.250000Z."""
    global _last_second
    second, micros = divmod(int(round(t * 1_000_000)), 1_000_000)
    cached = _last_second
    if cached[0] == second:
        prefix = cached[1]
    else:
        # strftime once per second, not once per request.
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _last_second = (second, prefix)
    return "%s.%06dZ" % (prefix, micros)


class ZmqReporter:
    """Sends events to loads over a ZeroMQ PUSH socket, one JSON object per message.

    ``test`` is the name every test event carries; ``hits`` (0 in a duration run), ``users`` and
    ``user`` are the constant parts of ``loads_status``. Thread-safe: a lock guards the socket.
    """

    enabled = True

    def __init__(self, endpoint, run_id, agent_id, hostname, test, hits, users, user, context=None):
        import zmq  # imported here so that plain unit tests do not need pyzmq loaded

        self._zmq_context = context or zmq.Context()
        self._own_context = context is None
        sock = self._zmq_context.socket(zmq.PUSH)
        sock.setsockopt(zmq.SNDHWM, SEND_HIGH_WATER_MARK)
        try:
            sock.connect(endpoint)
        except zmq.ZMQError:
            sock.close(linger=0)
            if self._own_context:
                self._zmq_context.term()
            raise
        self._socket = sock
        self._send_raw = sock.send
        self._lock = threading.Lock()
        self._hits = int(hits)
        self._users = int(users)
        self._user = int(user)

        envelope = _dumps({"run_id": run_id, "agent_id": agent_id, "hostname": hostname})[1:-1]
        name = _dumps(test)

        def head(data_type, with_test=True):
            text = '{"data_type":"%s",%s' % (data_type, envelope)
            return text + ',"test":' + name if with_test else text

        self._start = head("startTest")
        self._stop = head("stopTest")
        self._success = head("addSuccess")
        self._failure = head("addFailure") + ',"exc_info":'
        self._error = head("addError") + ',"exc_info":'
        self._counter = head("incr_counter") + ',"name":'
        self._hit = head("add_hit", False) + ',"url":'
        self._socket_open = (head("socket_open", False) + "}").encode()
        self._socket_close = (head("socket_close", False) + "}").encode()
        self._socket_message = head("socket_message", False) + ',"size":%d}'
        self._socket_message_sent = head("socket_message", False) + ',"size":%d,"direction":"sent"}'
        self._methods = {}
        self.begin_hit(0)

    # -- hit bookkeeping -------------------------------------------------------------------------

    def begin_hit(self, hit):
        """Makes ``hit`` (1-based) the current hit: the ``loads_status`` of the next events."""
        self.status = (self._hits, self._users, hit, self._user)
        self._tail = ',"loads_status":[%d,%d,%d,%d]}' % self.status

    def _send(self, text):
        data = text.encode()
        with self._lock:
            self._send_raw(data)

    # -- test events -----------------------------------------------------------------------------

    def start_test(self):
        self._send(self._start + self._tail)

    def stop_test(self, elapsed=None):
        """The hit ended; ``elapsed``: its whole duration in seconds (set-up to tear-down)."""
        if elapsed is not None and 0.0 <= elapsed < 1e9:  # never a negative, NaN or infinite one
            self._send('%s,"elapsed":%r%s' % (self._stop, float(elapsed), self._tail))
        else:
            self._send(self._stop + self._tail)

    def add_success(self):
        self._send(self._success + self._tail)

    def add_failure(self, message, kind, traceback):
        self._send(self._failure + _dumps([message, kind, traceback]) + self._tail)

    def add_error(self, message, kind, traceback):
        self._send(self._error + _dumps([message, kind, traceback]) + self._tail)

    def incr_counter(self, name):
        self._send(self._counter + _dumps(name) + self._tail)

    # -- measurements ----------------------------------------------------------------------------

    def add_hit(self, url, method, status, started, elapsed):
        """One HTTP request: ``started`` in seconds since the epoch, ``elapsed`` in seconds."""
        m = self._methods.get(method)
        if m is None:
            m = self._methods[method] = ',"method":%s,"status":' % _dumps(method)
        if not (0.0 <= elapsed < 1e9):  # negative, NaN or infinite: never a valid measure
            elapsed = 0.0
        self._send(
            '%s%s%s%d,"started":"%s","elapsed":%r%s'
            % (self._hit, _dumps(url), m, status, format_time(started), float(elapsed), self._tail)
        )

    def socket_open(self):
        with self._lock:
            self._send_raw(self._socket_open)

    def socket_close(self):
        with self._lock:
            self._send_raw(self._socket_close)

    def socket_message(self, size, sent=False):
        template = self._socket_message_sent if sent else self._socket_message
        self._send(template % size)

    # -- end -------------------------------------------------------------------------------------

    def close(self, linger_ms=10_000):
        """Closes the socket, waiting at most ``linger_ms`` for queued messages to leave."""
        with self._lock:
            if self._socket is None:
                return
            self._socket.close(linger=linger_ms)
            self._socket = None
            self._send_raw = _closed
        if self._own_context:
            self._zmq_context.term()


def _closed(data):
    raise RuntimeError("the loads reporter is closed")


_current = NullReporter()


def current():
    """The reporter of this process (a ``NullReporter`` outside loads)."""
    return _current


def install(reporter):
    """Makes ``reporter`` current and returns the previous one."""
    global _current
    previous, _current = _current, reporter
    return previous

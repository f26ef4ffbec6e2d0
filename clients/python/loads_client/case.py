"""``TestCase``: a ``unittest.TestCase`` whose HTTP requests and counters are reported to loads."""

from __future__ import annotations

import os
import unittest

from . import _data, _reporter
from .session import Session

__all__ = ["TestCase", "DEFAULT_SERVER_URL"]

#: Where ``loads demo-server`` listens by default; used when ``LOADS_SERVER_URL`` is not set.
DEFAULT_SERVER_URL = "http://127.0.0.1:8080"


class TestCase(unittest.TestCase):
    """A unittest test case for loads.

    - ``self.session``: a ``requests.Session`` that reports every request (see ``Session``);
      one per test case instance, so under loads one per virtual user, reused by all its hits
      (connections and cookies are kept). URLs starting with ``/`` are relative to
      ``server_url``.
    - ``self.server_url``: ``LOADS_SERVER_URL`` (``loads run --server-url``), or
      ``http://127.0.0.1:8080`` (the default address of ``loads demo-server``), without a
      trailing ``/``.
    - ``self.incr_counter(name)``: adds one to a custom counter.
    - ``self.data(name)``: a row of the run's data source ``name`` (``loads run --data
      NAME=FILE[:STRATEGY]``), a dict of column -> text; raises ``DataError`` (the hit is an
      error) when there is none, e.g. ``data 'accounts' exhausted``.
    - ``self.loads_status``: ``(hits, users, current_hit, current_user)`` of the current hit.
    - ``self.report_socket_open()``, ``report_socket_close()``, ``report_socket_message(size)``:
      WebSocket statistics, for tests that drive a WebSocket library themselves.

    Outside loads (``python -m unittest``) it is an ordinary TestCase: the events are discarded.
    """

    def __init__(self, methodName="runTest"):
        super().__init__(methodName)
        self.server_url = (os.environ.get("LOADS_SERVER_URL") or DEFAULT_SERVER_URL).rstrip("/")
        self._loads_session = None

    @property
    def session(self):
        """The reporting HTTP session of this test case (created on first use)."""
        session = self._loads_session
        if session is None:
            session = self._loads_session = Session(self.server_url)
            if not _reporter.current().enabled:
                # A plain unit test: one instance per test method, so close its connections
                # when the test ends (no ResourceWarning). Under loads the runner closes it.
                self.addCleanup(self.close_session)
        return session

    @session.setter
    def session(self, value):
        self._loads_session = value

    def close_session(self):
        """Closes the session's connections; the next use of ``self.session`` opens a new one."""
        session, self._loads_session = self._loads_session, None
        if session is not None:
            session.close()

    @property
    def loads_status(self):
        """``(hits, users, current_hit, current_user)``; ``hits`` is 0 in a duration run."""
        return _reporter.current().status

    def data(self, name):
        """A row of the data source ``name``: a dict of column -> text, by the source's strategy
        (the next row, a random one, a row no other user gets, or this user's own row)."""
        return _data.row(str(name))

    def incr_counter(self, name):
        """Adds one to the custom counter ``name``."""
        _reporter.current().incr_counter(str(name))

    def report_socket_open(self):
        """Reports that a WebSocket was opened."""
        _reporter.current().socket_open()

    def report_socket_close(self):
        """Reports that a WebSocket was closed."""
        _reporter.current().socket_close()

    def report_socket_message(self, size, sent=False):
        """Reports a WebSocket message of ``size`` bytes, received (default) or ``sent``."""
        _reporter.current().socket_message(int(size), sent)

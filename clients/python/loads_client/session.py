"""An HTTP session that reports every request it makes to loads.

``Session`` is a ``requests.Session``: use it exactly like one. Each HTTP request it sends —
including each hop of a redirect — becomes one ``add_hit`` event with the URL, the method, the
status, when it started and how long it took (until the body was read, or until the headers with
``stream=True``). When a request raises (connection refused, timeout...), an ``add_hit`` with
status 0 is reported and the exception propagates to the test, whose hit becomes an error.

A URL that starts with a single ``/`` is resolved against ``base_url`` (the server URL), so
``session.get("/health")`` works like ``session.get(server_url + "/health")``.
"""

from __future__ import annotations

import time

import requests

from . import _reporter

__all__ = ["Session"]


class Session(requests.Session):
    """A ``requests.Session`` that reports an ``add_hit`` event for every request it sends."""

    def __init__(self, base_url=None):
        super().__init__()
        #: Base of relative URLs (``"/path"``); ``None`` leaves such URLs to requests (an error).
        self.base_url = base_url.rstrip("/") if base_url else None

    def request(self, method, url, *args, **kwargs):
        """Like requests.Session.request; a URL starting with ``/`` is relative to base_url."""
        if self.base_url and isinstance(url, str) and url.startswith("/") and not url.startswith("//"):
            url = self.base_url + url
        return super().request(method, url, *args, **kwargs)

    def send(self, request, **kwargs):
        """Sends ``request`` and reports one ``add_hit`` per hop (redirects included)."""
        # Each hop is timed and reported on its own: send the request without following
        # redirects, then follow them like requests does (resolve_redirects calls send again).
        allow_redirects = kwargs.pop("allow_redirects", True)
        # The defaults requests.Session.send applies, so that the hops see them too.
        kwargs.setdefault("stream", self.stream)
        kwargs.setdefault("verify", self.verify)
        kwargs.setdefault("cert", self.cert)
        reporter = _reporter.current()
        started = time.time()
        t0 = time.perf_counter()
        try:
            response = super().send(request, allow_redirects=False, **kwargs)
        except BaseException:
            reporter.add_hit(request.url, request.method, 0, started, time.perf_counter() - t0)
            raise
        reporter.add_hit(request.url, request.method, response.status_code, started, time.perf_counter() - t0)
        if allow_redirects and response.is_redirect:
            history = list(self.resolve_redirects(response, request, **kwargs))
            if history:
                history.insert(0, response)
                response = history.pop()
                response.history = history
        return response

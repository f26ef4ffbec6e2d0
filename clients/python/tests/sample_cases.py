"""Test cases that tests/test_client.py runs through ``python3 -m loads_client``.

Not collected by ``unittest discover`` (the name does not match ``test*.py``). The HTTP server
they talk to is the one test_client.py starts (``LOADS_SERVER_URL``): ``/ok`` answers 200,
``/redirect`` redirects to ``/ok``.
"""

import os
import time
import unittest

from loads_client import TestCase


class Sample(TestCase):
    def test_ok(self):
        res = self.session.get(self.server_url + "/ok")
        self.assertEqual(res.status_code, 200)
        self.incr_counter("ok-count")

    def test_mixed(self):
        """Hit h: success when h % 3 == 1, failure when 2, error when 0 (like raw_runner.py)."""
        hit = self.loads_status[2]
        self.session.get("/ok")  # relative to server_url
        if hit % 3 == 2:
            self.fail("failed on purpose")
        if hit % 3 == 0:
            raise ValueError("error on purpose")

    def test_refused(self):
        self.session.get(os.environ["SAMPLE_REFUSED_URL"], timeout=5)

    def test_redirect(self):
        res = self.session.get("/redirect")
        self.assertEqual(res.status_code, 200)
        self.assertEqual(len(res.history), 1)

    def test_sockets(self):
        self.report_socket_open()
        self.report_socket_message(10)
        self.report_socket_message(4, sent=True)
        self.report_socket_close()

    def test_subtests(self):
        for i in range(3):
            with self.subTest(i=i):
                self.assertNotEqual(i, 1)

    def test_status(self):
        self.assertEqual(self.session.get("/status/404").status_code, 404)

    @unittest.skip("skipped on purpose")
    def test_skipped(self):
        raise AssertionError("never runs")


class SetUpFails(TestCase):
    def setUp(self):
        raise RuntimeError("setUp broke")

    def test_never(self):
        self.incr_counter("never")


class TearDownFails(TestCase):
    def tearDown(self):
        raise RuntimeError("tearDown broke")

    def test_ran(self):
        self.incr_counter("ran")


class ClassFixtureFails(TestCase):
    @classmethod
    def setUpClass(cls):
        raise RuntimeError("class fixture broke")

    def test_nothing(self):
        pass


class Counters(TestCase):
    """No HTTP: for volume runs."""

    def test_count(self):
        self.incr_counter("n")


class Slow(TestCase):
    def test_sleep(self):
        time.sleep(0.05)

    def test_sleep_long(self):
        time.sleep(30)


class NotACase:
    def test_x(self):
        pass

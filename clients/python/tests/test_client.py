"""Tests of loads_client: the events ``python3 -m loads_client`` sends, checked exactly.

Run from the repository root or from clients/python (needs pyzmq and requests)::

    python3 -m unittest discover -s clients/python/tests
    python3 -m unittest discover -s tests          # from clients/python

Each test starts ``python3 -m loads_client`` in a subprocess (cwd: this directory, so that
``sample_cases`` is importable from the current directory; PYTHONPATH: the package), with a zmq
PULL socket bound on a random loopback port as ``LOADS_ZMQ_RECEIVER`` and a small HTTP server on
127.0.0.1 as ``LOADS_SERVER_URL``. Every loop is bounded in count and time; loopback only.
"""

import datetime
import http.server
import json
import math
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
for path in (PACKAGE_ROOT, HERE):  # the package, and sample_cases for the in-process tests
    if path not in sys.path:
        sys.path.insert(0, path)

import zmq  # noqa: E402

import loads_client  # noqa: E402
from loads_client import _reporter  # noqa: E402

RUN_ID = "run-123"
AGENT_ID = "agent-7"
HOSTNAME = socket.gethostname()
PROCESS_TIMEOUT = 60  # seconds: no subprocess of these tests may take longer
DRAIN_QUIET = 0.3  # seconds without a message after which the PULL socket is considered drained
DRAIN_MAX = 15  # seconds: longest wait for the expected messages


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/ok":
            self._answer(200, b"ok")
        elif self.path == "/redirect":
            self._answer(302, b"", [("Location", "/ok")])
        elif self.path.startswith("/status/"):
            self._answer(int(self.path.rsplit("/", 1)[1]), b"status")
        else:
            self._answer(404, b"not found")

    def _answer(self, status, body, headers=()):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def setUpModule():
    global SERVER, SERVER_THREAD, BASE_URL, REFUSED_URL
    SERVER = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    SERVER.daemon_threads = True
    SERVER_THREAD = threading.Thread(target=SERVER.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    SERVER_THREAD.start()
    BASE_URL = "http://127.0.0.1:%d" % SERVER.server_address[1]
    # A loopback port with nothing listening: bind, note the port, close.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    REFUSED_URL = "http://127.0.0.1:%d/refused" % s.getsockname()[1]
    s.close()


def tearDownModule():
    SERVER.shutdown()
    SERVER.server_close()
    SERVER_THREAD.join(5)


class Receiver:
    """A PULL socket bound on a random loopback port."""

    def __init__(self):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PULL)
        self.sock.bind("tcp://127.0.0.1:*")
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)

    def collect(self, expected=None):
        """Every message received until none came for DRAIN_QUIET seconds (and, when given, at
        least ``expected`` arrived or DRAIN_MAX passed). Returns the raw frames."""
        frames = []
        deadline = time.monotonic() + DRAIN_MAX
        while time.monotonic() < deadline:
            if self.sock.poll(int(DRAIN_QUIET * 1000)):
                while True:
                    try:
                        frames.append(self.sock.recv(zmq.NOBLOCK))
                    except zmq.Again:
                        break
            elif expected is None or len(frames) >= expected:
                break
        return frames

    def close(self):
        self.sock.close(linger=0)
        self.ctx.term()


def client_env(endpoint, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOADS_")}
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_ROOT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update({
        "LOADS_RUN_ID": RUN_ID,
        "LOADS_AGENT_ID": AGENT_ID,
        "LOADS_TOTAL_USERS": "1",
        "LOADS_CURRENT_USER": "1",
        "LOADS_SERVER_URL": BASE_URL,
        "SAMPLE_REFUSED_URL": REFUSED_URL,
    })
    if endpoint is not None:
        env["LOADS_ZMQ_RECEIVER"] = endpoint
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_client(args, env):
    return subprocess.Popen(
        [sys.executable, "-m", "loads_client"] + list(args),
        cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish(proc):
    try:
        out, err = proc.communicate(timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError("loads_client did not end within %d s; stderr: %s" % (PROCESS_TIMEOUT, err))
    return proc.returncode, out, err


def parse_started(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


class ClientCase(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.receiver = Receiver()
        self.addCleanup(self.receiver.close)

    def run_client(self, test, expected=None, users=1, **env):
        """Runs ``users`` processes of loads_client on ``test``; returns (events, results) where
        results are (returncode, stdout, stderr) per user and events are parsed JSON objects."""
        procs = []
        for user in range(1, users + 1):
            e = client_env(self.receiver.endpoint, LOADS_TOTAL_USERS=users, LOADS_CURRENT_USER=user, **env)
            procs.append(start_client([test], e))
        results = [finish(p) for p in procs]
        frames = self.receiver.collect(expected)
        return [json.loads(f) for f in frames], results

    def assert_ok(self, results):
        for rc, out, err in results:
            self.assertEqual(rc, 0, "loads_client failed: %s" % err)

    def assert_envelope(self, events):
        for ev in events:
            self.assertEqual(ev["run_id"], RUN_ID, ev)
            self.assertEqual(ev["agent_id"], AGENT_ID, ev)
            self.assertEqual(ev["hostname"], HOSTNAME, ev)

    def by_user(self, events):
        users = {}
        for ev in events:
            users.setdefault(ev.get("loads_status", [0, 0, 0, 0])[3], []).append(ev)
        return users

    def strip(self, ev):
        """An event without its envelope (and the variable fields of add_hit and exc_info)."""
        ev = {k: v for k, v in ev.items() if k not in ("run_id", "agent_id", "hostname")}
        if ev["data_type"] == "add_hit":
            ev.pop("started")
            ev.pop("elapsed")
        if ev["data_type"] == "stopTest":
            ev.pop("elapsed")
        if "exc_info" in ev:
            ev["exc_info"] = ev["exc_info"][:2]
        return ev


class HitsRun(ClientCase):
    def test_success_events_in_order_with_exact_fields(self):
        t0 = datetime.datetime.now(datetime.timezone.utc)
        name = "sample_cases.Sample.test_ok"
        events, results = self.run_client(name, expected=15, LOADS_TOTAL_HITS=3)
        t1 = datetime.datetime.now(datetime.timezone.utc)
        self.assert_ok(results)
        self.assertEqual(len(events), 15, events)
        self.assert_envelope(events)
        expected = []
        for hit in (1, 2, 3):
            st = [3, 1, hit, 1]
            expected += [
                {"data_type": "startTest", "test": name, "loads_status": st},
                {"data_type": "add_hit", "url": BASE_URL + "/ok", "method": "GET", "status": 200, "loads_status": st},
                {"data_type": "incr_counter", "test": name, "name": "ok-count", "loads_status": st},
                {"data_type": "addSuccess", "test": name, "loads_status": st},
                {"data_type": "stopTest", "test": name, "loads_status": st},
            ]
        self.assertEqual([self.strip(e) for e in events], expected)
        for ev in events:
            if ev["data_type"] == "add_hit":
                self.assertEqual(set(ev), {"data_type", "run_id", "agent_id", "hostname", "url", "method",
                                           "status", "started", "elapsed", "loads_status"})
                started = parse_started(ev["started"])
                self.assertTrue(t0 - datetime.timedelta(seconds=1) <= started <= t1, ev["started"])
                self.assertIsInstance(ev["elapsed"], float)
                self.assertTrue(0.0 <= ev["elapsed"] < 10.0, ev["elapsed"])
        # Each hit's whole duration, at least that of its request.
        for i, ev in enumerate(events):
            if ev["data_type"] == "stopTest":
                self.assertIsInstance(ev["elapsed"], float)
                self.assertTrue(events[i - 3]["elapsed"] <= ev["elapsed"] < 10.0, (events[i - 3], ev))

    def test_mixed_outcomes_several_users(self):
        name = "sample_cases.Sample.test_mixed"
        users, hits = 3, 7
        events, results = self.run_client(name, expected=users * hits * 4, users=users, LOADS_TOTAL_HITS=hits)
        self.assert_ok(results)
        self.assertEqual(len(events), users * hits * 4)
        self.assert_envelope(events)
        per_user = self.by_user(events)
        self.assertEqual(sorted(per_user), [1, 2, 3])
        for user, evs in per_user.items():
            expected = []
            for hit in range(1, hits + 1):
                st = [hits, users, hit, user]
                outcome = {1: ("addSuccess", None), 2: ("addFailure", ["failed on purpose", "AssertionError"]),
                           0: ("addError", ["error on purpose", "ValueError"])}[hit % 3]
                out = {"data_type": outcome[0], "test": name, "loads_status": st}
                if outcome[1]:
                    out["exc_info"] = outcome[1]
                expected += [
                    {"data_type": "startTest", "test": name, "loads_status": st},
                    {"data_type": "add_hit", "url": BASE_URL + "/ok", "method": "GET", "status": 200, "loads_status": st},
                    out,
                    {"data_type": "stopTest", "test": name, "loads_status": st},
                ]
            self.assertEqual([self.strip(e) for e in evs], expected)
        counts = {}
        for ev in events:
            counts[ev["data_type"]] = counts.get(ev["data_type"], 0) + 1
        # hits 1..7: h % 3 == 1 -> 1, 4, 7; == 2 -> 2, 5; == 0 -> 3, 6
        self.assertEqual(counts, {"startTest": 21, "add_hit": 21, "addSuccess": 9, "addFailure": 6,
                                  "addError": 6, "stopTest": 21})
        failure = next(e for e in events if e["data_type"] == "addFailure")
        self.assertIn("failed on purpose", failure["exc_info"][2])
        self.assertIn("sample_cases.py", failure["exc_info"][2])
        error = next(e for e in events if e["data_type"] == "addError")
        self.assertIn("Traceback", error["exc_info"][2])

    def test_connection_refused_is_an_error_with_a_status_0_hit(self):
        name = "sample_cases.Sample.test_refused"
        events, results = self.run_client(name, expected=8, LOADS_TOTAL_HITS=2)
        self.assert_ok(results)
        self.assertEqual([e["data_type"] for e in events],
                         ["startTest", "add_hit", "addError", "stopTest"] * 2)
        hit = events[1]
        self.assertEqual((hit["url"], hit["method"], hit["status"]), (REFUSED_URL, "GET", 0))
        self.assertEqual(events[2]["exc_info"][1], "requests.exceptions.ConnectionError")

    def test_each_redirect_hop_is_a_hit(self):
        name = "sample_cases.Sample.test_redirect"
        events, results = self.run_client(name, expected=5, LOADS_TOTAL_HITS=1)
        self.assert_ok(results)
        self.assertEqual([self.strip(e) for e in events], [
            {"data_type": "startTest", "test": name, "loads_status": [1, 1, 1, 1]},
            {"data_type": "add_hit", "url": BASE_URL + "/redirect", "method": "GET", "status": 302, "loads_status": [1, 1, 1, 1]},
            {"data_type": "add_hit", "url": BASE_URL + "/ok", "method": "GET", "status": 200, "loads_status": [1, 1, 1, 1]},
            {"data_type": "addSuccess", "test": name, "loads_status": [1, 1, 1, 1]},
            {"data_type": "stopTest", "test": name, "loads_status": [1, 1, 1, 1]},
        ])

    def test_http_error_status_is_a_hit_not_an_error(self):
        events, results = self.run_client("sample_cases.Sample.test_status", expected=4)
        self.assert_ok(results)
        self.assertEqual([e["data_type"] for e in events], ["startTest", "add_hit", "addSuccess", "stopTest"])
        self.assertEqual(events[1]["status"], 404)

    def test_socket_events(self):
        events, results = self.run_client("sample_cases.Sample.test_sockets", expected=7)
        self.assert_ok(results)
        self.assertEqual([self.strip(e) for e in events[1:5]], [
            {"data_type": "socket_open"},
            {"data_type": "socket_message", "size": 10},
            {"data_type": "socket_message", "size": 4, "direction": "sent"},
            {"data_type": "socket_close"},
        ])
        self.assertEqual([e["data_type"] for e in events], ["startTest", "socket_open", "socket_message",
                                                            "socket_message", "socket_close", "addSuccess", "stopTest"])

    def test_one_outcome_per_hit(self):
        cases = {
            "sample_cases.Sample.test_subtests": ["startTest", "addFailure", "stopTest"],
            "sample_cases.Sample.test_skipped": ["startTest", "addSuccess", "stopTest"],
            "sample_cases.SetUpFails.test_never": ["startTest", "addError", "stopTest"],
            "sample_cases.TearDownFails.test_ran": ["startTest", "incr_counter", "addError", "stopTest"],
        }
        for name, expected in cases.items():
            with self.subTest(test=name):
                events, results = self.run_client(name, expected=2 * len(expected), LOADS_TOTAL_HITS=2)
                self.assert_ok(results)
                self.assertEqual([e["data_type"] for e in events], expected * 2)
        # the setUp error is the hit's error
        events, _ = self.run_client("sample_cases.SetUpFails.test_never", expected=3)
        self.assertEqual(events[1]["exc_info"][:2], ["setUp broke", "RuntimeError"])

    def test_zero_hits_sends_nothing(self):
        events, results = self.run_client("sample_cases.Sample.test_ok", LOADS_TOTAL_HITS=0)
        self.assert_ok(results)
        self.assertEqual(events, [])

    def test_default_is_one_hit_and_agent_id_may_be_empty(self):
        events, results = self.run_client("sample_cases.Counters.test_count", expected=4, LOADS_AGENT_ID="")
        self.assert_ok(results)
        self.assertEqual([e["loads_status"] for e in events], [[1, 1, 1, 1]] * 4)
        self.assertEqual({e["agent_id"] for e in events}, {""})

    def test_class_fixture_failure_exits_1_with_traceback(self):
        events, results = self.run_client("sample_cases.ClassFixtureFails.test_nothing", LOADS_TOTAL_HITS=2)
        rc, _, err = results[0]
        self.assertEqual(rc, 1)
        self.assertIn("setUpClass", err)
        self.assertIn("class fixture broke", err)
        self.assertEqual(events, [])

    def test_volume_nothing_lost(self):
        users, hits = 4, 2500
        n = users * hits * 4
        t0 = time.monotonic()
        events, results = self.run_client("sample_cases.Counters.test_count", expected=n, users=users,
                                          LOADS_TOTAL_HITS=hits)
        elapsed = time.monotonic() - t0
        self.assert_ok(results)
        self.assertEqual(len(events), n)
        for user, evs in self.by_user(events).items():
            self.assertEqual([e["loads_status"][2] for e in evs], [h for h in range(1, hits + 1) for _ in range(4)])
        sys.stderr.write("[%d events from %d processes in %.2f s] " % (n, users, elapsed))


class DurationRun(ClientCase):
    def test_loops_for_the_duration(self):
        name = "sample_cases.Slow.test_sleep"
        t0 = time.monotonic()
        proc = start_client([name], client_env(self.receiver.endpoint, LOADS_DURATION="0.5",
                                               LOADS_TOTAL_USERS=2, LOADS_CURRENT_USER=2))
        rc, _, err = finish(proc)
        took = time.monotonic() - t0
        self.assertEqual(rc, 0, err)
        self.assertGreaterEqual(took, 0.5)
        self.assertLess(took, 0.5 + 10)
        events = [json.loads(f) for f in self.receiver.collect()]
        self.assert_envelope(events)
        hits = len(events) // 3
        self.assertGreaterEqual(hits, 2)
        self.assertLessEqual(hits, 11)  # 0.5 s / 0.05 s per hit, plus the one started last
        expected = []
        for hit in range(1, hits + 1):
            st = [0, 2, hit, 2]
            expected += [{"data_type": t, "test": name, "loads_status": st}
                         for t in ("startTest", "addSuccess", "stopTest")]
        self.assertEqual([self.strip(e) for e in events], expected)

    def test_sigterm_abandons_the_hit_and_exits_143(self):
        name = "sample_cases.Slow.test_sleep_long"
        proc = start_client([name], client_env(self.receiver.endpoint, LOADS_TOTAL_HITS=1))
        try:
            self.assertTrue(self.receiver.sock.poll(PROCESS_TIMEOUT * 1000), "no startTest")
            first = json.loads(self.receiver.sock.recv())
            proc.send_signal(signal.SIGTERM)
            rc, _, err = finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(first["data_type"], "startTest")
        self.assertEqual(rc, 143, err)
        self.assertEqual(self.receiver.collect(), [])


class BadUsage(ClientCase):
    def check(self, args, fragment, env=None, endpoint=True):
        e = client_env(self.receiver.endpoint if endpoint else None, LOADS_TOTAL_HITS=1)
        e.update(env or {})
        rc, out, err = finish(start_client(args, e))
        self.assertEqual(rc, 2, err)
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertTrue(err.startswith("loads_client: "), err)
        self.assertIn(fragment, err)
        self.assertEqual(out, "")

    def test_bad_usage_exits_2_with_one_line(self):
        self.check([], "expected one argument")
        self.check(["a.B.c", "extra"], "expected one argument")
        self.check(["--bogus"], "unknown option")
        self.check(["justaname"], "is not MODULE.CLASS.METHOD")
        self.check(["no_such_module.Foo.test_x"], "cannot import the module 'no_such_module'")
        self.check(["sample_cases.Missing.test_x"], "has no class 'Missing'")
        self.check(["sample_cases.NotACase.test_x"], "is not a unittest.TestCase subclass")
        self.check(["sample_cases.Sample.test_missing"], "has no method 'test_missing'")
        self.check(["sample_cases.Sample.test_ok"], "LOADS_ZMQ_RECEIVER is not set", endpoint=False)
        self.check(["sample_cases.Sample.test_ok"], "LOADS_ZMQ_RECEIVER='not-an-endpoint'",
                   {"LOADS_ZMQ_RECEIVER": "not-an-endpoint"})
        self.check(["sample_cases.Sample.test_ok"], "LOADS_TOTAL_HITS='ten'", {"LOADS_TOTAL_HITS": "ten"})
        self.check(["sample_cases.Sample.test_ok"], "LOADS_TOTAL_HITS='-1'", {"LOADS_TOTAL_HITS": "-1"})
        self.check(["sample_cases.Sample.test_ok"], "LOADS_CURRENT_USER='0'", {"LOADS_CURRENT_USER": "0"})
        self.check(["sample_cases.Sample.test_ok"], "LOADS_TOTAL_USERS='2.5'", {"LOADS_TOTAL_USERS": "2.5"})
        self.check(["sample_cases.Sample.test_ok"], "LOADS_DURATION='soon'",
                   {"LOADS_TOTAL_HITS": "", "LOADS_DURATION": "soon"})
        self.check(["sample_cases.Sample.test_ok"], "LOADS_DURATION='0'",
                   {"LOADS_TOTAL_HITS": "", "LOADS_DURATION": "0"})
        self.check(["sample_cases.Sample.test_ok"], "both LOADS_TOTAL_HITS and LOADS_DURATION",
                   {"LOADS_DURATION": "1"})
        self.assertEqual(self.receiver.collect(), [])

    def test_help(self):
        rc, out, err = finish(start_client(["--help"], client_env(None)))
        self.assertEqual((rc, err), (0, ""))
        self.assertTrue(out.startswith("usage: python3 -m loads_client TEST"), out)
        for var in ("LOADS_ZMQ_RECEIVER", "LOADS_TOTAL_HITS", "LOADS_DURATION", "LOADS_SERVER_URL"):
            self.assertIn(var, out)


class OutsideLoads(unittest.TestCase):
    def test_plain_unittest_runs_with_events_discarded(self):
        env = client_env(None, LOADS_ZMQ_RECEIVER="tcp://127.0.0.1:1")  # set, but unittest ignores it
        proc = subprocess.Popen(
            [sys.executable, "-m", "unittest", "-q", "sample_cases.Sample.test_ok", "sample_cases.Sample.test_mixed"],
            cwd=HERE, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        rc, _, err = finish(proc)
        self.assertEqual(rc, 0, err)
        self.assertIn("Ran 2 tests", err)
        self.assertNotIn("ResourceWarning", err)

    def test_in_process(self):
        import sample_cases

        self.assertFalse(_reporter.current().enabled)
        old = os.environ.get("LOADS_SERVER_URL")
        os.environ["LOADS_SERVER_URL"] = BASE_URL + "/"
        try:
            case = sample_cases.Sample("test_ok")
        finally:
            if old is None:
                del os.environ["LOADS_SERVER_URL"]
            else:
                os.environ["LOADS_SERVER_URL"] = old
        self.assertEqual(case.server_url, BASE_URL)
        result = unittest.TestResult()
        case.run(result)
        self.assertTrue(result.wasSuccessful(), result.errors + result.failures)
        self.assertEqual(case.loads_status, (1, 1, 1, 1))
        self.assertIsNone(case._loads_session)  # closed by its cleanup

    def test_default_server_url_is_the_demo_servers(self):
        self.assertEqual(loads_client.DEFAULT_SERVER_URL, "http://127.0.0.1:8080")


class WireFormat(unittest.TestCase):
    """The exact JSON of every event (the same fields as src/result/event.rs's tests)."""

    def test_every_event(self):
        ctx = zmq.Context()
        pull = ctx.socket(zmq.PULL)
        pull.bind("tcp://127.0.0.1:*")
        rep = _reporter.ZmqReporter(pull.getsockopt_string(zmq.LAST_ENDPOINT), "r1", "a", "h", "a::b", 10, 2, 1,
                                    context=ctx)
        try:
            rep.begin_hit(3)
            rep.start_test()
            rep.add_success()
            rep.add_failure("boom", "AssertionError", "x.py:1")
            rep.add_error("io", "OSError", "")
            started = datetime.datetime(2026, 11, 26, 5, 0, 0, 250000, tzinfo=datetime.timezone.utc).timestamp()
            rep.add_hit("http://127.0.0.1/\"é", "GET", 200, started, 0.25)
            rep.add_hit("http://127.0.0.1/", "POST", 0, started, float("nan"))
            rep.socket_open()
            rep.socket_close()
            rep.socket_message(12)
            rep.socket_message(5, sent=True)
            rep.incr_counter("logins")
            rep.stop_test()
            rep.stop_test(0.125)
            rep.stop_test(float("nan"))
            got = []
            for _ in range(14):
                self.assertTrue(pull.poll(5000))
                got.append(json.loads(pull.recv().decode("utf-8")))
        finally:
            rep.close(0)
            pull.close(0)
            ctx.term()
        env = {"run_id": "r1", "agent_id": "a", "hostname": "h"}
        st = [10, 2, 3, 1]
        expected = [
            {"data_type": "startTest", "test": "a::b", "loads_status": st},
            {"data_type": "addSuccess", "test": "a::b", "loads_status": st},
            {"data_type": "addFailure", "test": "a::b", "exc_info": ["boom", "AssertionError", "x.py:1"], "loads_status": st},
            {"data_type": "addError", "test": "a::b", "exc_info": ["io", "OSError", ""], "loads_status": st},
            {"data_type": "add_hit", "url": "http://127.0.0.1/\"é", "method": "GET", "status": 200,
             "started": "2026-11-26T05:00:00.250000Z", "elapsed": 0.25, "loads_status": st},
            {"data_type": "add_hit", "url": "http://127.0.0.1/", "method": "POST", "status": 0,
             "started": "2026-11-26T05:00:00.250000Z", "elapsed": 0.0, "loads_status": st},
            {"data_type": "socket_open"},
            {"data_type": "socket_close"},
            {"data_type": "socket_message", "size": 12},
            {"data_type": "socket_message", "size": 5, "direction": "sent"},
            {"data_type": "incr_counter", "test": "a::b", "name": "logins", "loads_status": st},
            {"data_type": "stopTest", "test": "a::b", "loads_status": st},
            {"data_type": "stopTest", "test": "a::b", "elapsed": 0.125, "loads_status": st},
            {"data_type": "stopTest", "test": "a::b", "loads_status": st},
        ]
        self.assertEqual(got, [dict(e, **env) for e in expected])

    def test_format_time(self):
        t = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.timezone.utc).timestamp()
        self.assertEqual(_reporter.format_time(t), "2026-01-02T03:04:05.678901Z")
        self.assertEqual(_reporter.format_time(math.floor(t)), "2026-01-02T03:04:05.000000Z")


if __name__ == "__main__":
    unittest.main()

"""The process loads starts for each virtual user: ``python3 -m loads_client TEST``.

It reads its orders from the environment (docs/external-runners.md), connects a ZeroMQ PUSH
socket to ``LOADS_ZMQ_RECEIVER``, and runs the test method TEST (``MODULE.CLASS.METHOD``) the
number of times asked (``LOADS_TOTAL_HITS``) or for the time asked (``LOADS_DURATION``), on one
instance of its class. Each run is one hit, reported as::

    startTest, [add_hit | incr_counter | socket_* ...], addSuccess | addFailure | addError, stopTest

where ``stopTest`` carries ``elapsed``, the hit's whole duration in seconds (from just before
``setUp`` to just after ``tearDown`` and the cleanups): loads' per-test hit durations.

with ``setUp``/``tearDown`` (and ``addCleanup`` callbacks) around each hit, through unittest's own
machinery: an ``AssertionError`` (``self.assert*``, ``self.fail``) is a failure, any other
exception — in the test, ``setUp`` or ``tearDown`` — is an error. The first problem of a hit
decides its outcome. A skipped test and an expected failure count as successes, an unexpected
success as a failure. ``setUpModule``/``setUpClass`` run once before the first hit,
``tearDownClass``/``tearDownModule`` once after the last.

Exit status: 0 when the hits ran, whatever their outcomes (failures are events, not an exit
status); 1 when a module or class fixture failed (its traceback is on stderr); 2 for bad usage (a
one-line message on stderr); 130 on SIGINT and 143 on SIGTERM (the hit in progress is abandoned:
only its ``startTest`` was sent).
"""

from __future__ import annotations

import importlib
import math
import os
import re
import signal
import socket
import sys
import time
import traceback
import unittest

from . import _data, _reporter

__all__ = ["main", "console_main", "Config", "UsageError", "load_test", "run"]

PROG = "python3 -m loads_client"

USAGE = """\
usage: python3 -m loads_client TEST

Run the unittest test method TEST (MODULE.CLASS.METHOD, e.g. test_site.TestSite.test_home,
importable from the current directory) for loads, and report its hits over ZeroMQ.

loads starts one such process per virtual user:
    loads run test_site.TestSite.test_home --test-runner "python3 -m loads_client {test}" -u 10 --hits 50

Environment (set by loads):
  LOADS_ZMQ_RECEIVER   ZeroMQ endpoint to send the events to (required), e.g. tcp://127.0.0.1:5555
  LOADS_RUN_ID         run id copied into every event
  LOADS_AGENT_ID       agent id copied into every event (empty for a local run)
  LOADS_TOTAL_USERS    virtual users of this cycle step (default 1)
  LOADS_CURRENT_USER   this process's user number, from 1 (default 1)
  LOADS_TOTAL_HITS     run the test this many times (default 1) ...
  LOADS_DURATION       ... or loop on it for this many seconds (e.g. 2.5); not both
  LOADS_SERVER_URL     base URL of the system under test (TestCase.server_url)
  LOADS_DATA_ENDPOINT  with loads run --data: where TestCase.data(NAME) asks for rows
  LOADS_DATA_USER      this process's user, for per-user data sources

To run the test once without loads: python3 -m unittest TEST

Exit status: 0 the hits ran (failed hits are reported to loads, not in the exit status),
1 a setUpModule/setUpClass/tearDownClass/tearDownModule failed, 2 bad usage,
130 interrupted (SIGINT), 143 terminated (SIGTERM).
"""

EXIT_OK = 0
EXIT_FIXTURE = 1
EXIT_USAGE = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143

#: How long closing the socket waits for queued events to leave: normally, and when interrupted.
LINGER_MS = 10_000
LINGER_INTERRUPTED_MS = 1_000

#: Longest message and traceback kept in a failure/error event, in characters.
MAX_MESSAGE = 2_000
MAX_TRACEBACK = 8_000

# When this process started, as near as Python can tell: a duration run ends LOADS_DURATION
# seconds after it, start-up and class fixtures included, as loads counts it.
_STARTED = time.monotonic()

_INT = re.compile(r"[0-9]+")
_FLOAT = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


class UsageError(Exception):
    """Bad usage: reported as one line on stderr, exit status 2."""


class Terminated(KeyboardInterrupt):
    """Raised by the SIGTERM handler. A KeyboardInterrupt, so unittest lets it through."""


# -- configuration --------------------------------------------------------------------------------


class Config:
    """The orders loads gives through the environment."""

    def __init__(self, endpoint, run_id="", agent_id="", users=1, user=1, hits=1, duration=None):
        self.endpoint = endpoint
        self.run_id = run_id
        self.agent_id = agent_id
        self.users = users
        self.user = user
        self.hits = hits  # None in a duration run
        self.duration = duration  # None in a hits run

    @classmethod
    def from_env(cls, env):
        """The configuration loads gives in the environment ``env`` (a mapping).

        Raises UsageError, naming the variable and what is expected, when one is missing or bad.
        """
        endpoint = env.get("LOADS_ZMQ_RECEIVER", "").strip()
        if not endpoint:
            raise UsageError(
                "LOADS_ZMQ_RECEIVER is not set: this command is started by loads "
                '(loads run TEST --test-runner "python3 -m loads_client {test}"); '
                "to run the test once without loads, use python3 -m unittest TEST"
            )
        users = _env_int(env, "LOADS_TOTAL_USERS", 1, 1, "the virtual users of the cycle step")
        user = _env_int(env, "LOADS_CURRENT_USER", 1, 1, "this process's user number")
        raw_hits = env.get("LOADS_TOTAL_HITS", "").strip()
        raw_duration = env.get("LOADS_DURATION", "").strip()
        if raw_hits and raw_duration:
            raise UsageError(
                "both LOADS_TOTAL_HITS and LOADS_DURATION are set; set only one of them "
                "(hits to run the test that many times, duration to loop on it for that many seconds)"
            )
        if raw_duration:
            if not _FLOAT.fullmatch(raw_duration) or not (0 < float(raw_duration) < math.inf):
                raise UsageError(
                    "LOADS_DURATION=%r is not a number of seconds; set it to a positive number "
                    "such as 30 or 2.5" % raw_duration
                )
            return cls(endpoint, env.get("LOADS_RUN_ID", ""), env.get("LOADS_AGENT_ID", ""),
                       users, user, None, float(raw_duration))
        hits = _env_int(env, "LOADS_TOTAL_HITS", 0, 1, "the hits per user")
        return cls(endpoint, env.get("LOADS_RUN_ID", ""), env.get("LOADS_AGENT_ID", ""),
                   users, user, hits, None)


def _env_int(env, name, minimum, default, what):
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not _INT.fullmatch(raw) or int(raw) < minimum:
        raise UsageError(
            "%s=%r is not a whole number >= %d; set it to %s (an integer >= %d) or unset it"
            % (name, raw, minimum, what, minimum)
        )
    return int(raw)


# -- the test -------------------------------------------------------------------------------------


def _one_line(text):
    return " ".join(str(text).split())


def load_test(name):
    """Imports ``MODULE.CLASS.METHOD`` (the current directory first on ``sys.path``) and returns
    ``(module, class, method_name)``; raises ``UsageError`` with the problem and its fix."""
    parts = name.split(".")
    if len(parts) < 3 or not all(p.isidentifier() for p in parts):
        raise UsageError(
            "the test %r is not MODULE.CLASS.METHOD; name a unittest method such as "
            "test_site.TestSite.test_home" % name
        )
    module_name, class_name, method_name = ".".join(parts[:-2]), parts[-2], parts[-1]
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise UsageError(
                "cannot import the module %r: not found in %s nor on PYTHONPATH; run loads from "
                "the directory that contains it (with --agents, ship it with --include-file)"
                % (module_name, cwd)
            ) from None
        raise UsageError(
            "importing the module %r failed: %s: %s; install what it needs" % (module_name, type(e).__name__, _one_line(e))
        ) from None
    except KeyboardInterrupt:
        raise
    except BaseException as e:  # noqa: BLE001 - anything a module does at import time
        raise UsageError(
            "importing the module %r failed: %s: %s; fix the module (python3 -c 'import %s' shows "
            "the traceback)" % (module_name, type(e).__name__, _one_line(e), module_name)
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise UsageError("the module %r has no class %r; check the test name %r" % (module_name, class_name, name))
    if not (isinstance(cls, type) and issubclass(cls, unittest.TestCase)):
        raise UsageError(
            "%s.%s is not a unittest.TestCase subclass; derive it from loads_client.TestCase"
            % (module_name, class_name)
        )
    if not callable(getattr(cls, method_name, None)):
        raise UsageError("the class %s.%s has no method %r; check the test name %r" % (module_name, class_name, method_name, name))
    return module, cls, method_name


def _kind(exc_type):
    module = getattr(exc_type, "__module__", "builtins")
    qualname = getattr(exc_type, "__qualname__", exc_type.__name__)
    return qualname if module == "builtins" else "%s.%s" % (module, qualname)


def _message(exc_value):
    text = str(exc_value)
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


class HitResult(unittest.TestResult):
    """Turns unittest's callbacks for one hit into loads events: ``startTest`` at once, then, when
    the hit ends, exactly one outcome (the first problem, else success) and ``stopTest``. Keeps
    nothing between hits (an ordinary TestResult would keep every failure and duration)."""

    def __init__(self, reporter):
        super().__init__()
        self._reporter = reporter
        self._outcome = None
        self._started = 0.0
        #: A ``queue-stop`` data source ran out: no more hits.
        self.stopped = False

    def startTest(self, test):
        self._outcome = None
        self._started = time.perf_counter()
        self._reporter.start_test()

    def _problem(self, kind, err, test):
        if self._outcome is not None and self._outcome != "success":
            return  # the first problem decides the outcome
        exc_type, exc_value, _ = err
        if isinstance(exc_type, type) and issubclass(exc_type, _data.DataStop):
            self._outcome = "stop"
            return
        try:
            tb = self._exc_info_to_string(err, test)
        except Exception:  # noqa: BLE001 - never lose the hit over its traceback
            tb = "".join(traceback.format_exception(*err))
        if len(tb) > MAX_TRACEBACK:
            tb = "...\n" + tb[-(MAX_TRACEBACK - 4):]
        self._outcome = (kind, _message(exc_value), _kind(exc_type), tb)

    def addSuccess(self, test):
        if self._outcome is None:
            self._outcome = "success"

    def addFailure(self, test, err):
        self._problem("failure", err, test)

    def addError(self, test, err):
        self._problem("error", err, test)

    def addSubTest(self, test, subtest, err):
        if err is not None:
            failure = issubclass(err[0], test.failureException)
            self._problem("failure" if failure else "error", err, test)

    def addSkip(self, test, reason):
        self.addSuccess(test)

    def addExpectedFailure(self, test, err):
        self.addSuccess(test)

    def addUnexpectedSuccess(self, test):
        if self._outcome is None or self._outcome == "success":
            self._outcome = ("failure", "unexpected success (the test is marked expectedFailure)",
                             "UnexpectedSuccess", "")

    def addDuration(self, test, elapsed):  # Python >= 3.12
        pass

    def stopTest(self, test):
        outcome, self._outcome = self._outcome, None
        if outcome is None:
            return  # interrupted (KeyboardInterrupt/SIGTERM): the hit is abandoned
        if outcome == "stop":
            # A queue-stop source ran out: the hit gets no outcome, and the process stops.
            self.stopped = True
            self._reporter.stop_test()
            return
        if outcome == "success":
            self._reporter.add_success()
        elif outcome[0] == "failure":
            self._reporter.add_failure(outcome[1], outcome[2], outcome[3])
        else:
            self._reporter.add_error(outcome[1], outcome[2], outcome[3])
        # The hit's whole duration, set-up and tear-down included: loads' per-test hit durations.
        self._reporter.stop_test(time.perf_counter() - self._started)


def _fixture(what, func):
    """Runs a module or class fixture; ``None`` when it passed, else an exit status."""
    try:
        func()
    except unittest.SkipTest as e:
        sys.stderr.write("loads_client: skipped by %s: %s\n" % (what, _one_line(e)))
        return EXIT_OK
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001
        sys.stderr.write("loads_client: %s failed:\n%s" % (what, traceback.format_exc()))
        return EXIT_FIXTURE
    return None


def run(module, cls, method_name, config, reporter):
    """Runs the fixtures and the hits; returns the exit status, or raises KeyboardInterrupt
    (then the remaining fixtures are skipped). A duration run starts no hit once
    ``config.duration`` seconds have passed since the process started."""
    set_up_module = getattr(module, "setUpModule", None)
    if set_up_module is not None:
        code = _fixture("setUpModule of %s" % module.__name__, set_up_module)
        if code is not None:
            return code
    status = _run_class(cls, method_name, config, reporter)
    tear_down_module = getattr(module, "tearDownModule", None)
    if tear_down_module is not None:
        status = _fixture("tearDownModule of %s" % module.__name__, tear_down_module) or status
    return status


def _run_class(cls, method_name, config, reporter):
    try:
        case = cls(method_name)
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001
        sys.stderr.write("loads_client: cannot create %s(%r):\n%s"
                         % (cls.__qualname__, method_name, traceback.format_exc()))
        return EXIT_FIXTURE
    # A skipped class (@unittest.skip) gets no class fixtures, as under unittest; its hits
    # are then skips, counted as successes.
    skipped = getattr(cls, "__unittest_skip__", False)
    if not skipped:
        code = _fixture("setUpClass of %s" % cls.__qualname__, cls.setUpClass)
        if code is not None:
            return code
    try:
        result = HitResult(reporter)
        begin_hit = reporter.begin_hit
        case_run = case.run
        if config.duration is None:
            for hit in range(1, config.hits + 1):
                begin_hit(hit)
                case_run(result)
                if result.stopped:
                    break
        else:
            deadline = _STARTED + config.duration
            hit = 0
            while time.monotonic() < deadline and not result.stopped:
                hit += 1
                begin_hit(hit)
                case_run(result)
    finally:
        _data.close()
        close = getattr(case, "close_session", None)
        if close is not None:
            close()
    if skipped:
        return EXIT_OK
    return _fixture("tearDownClass of %s" % cls.__qualname__, cls.tearDownClass) or EXIT_OK


# -- entry point ----------------------------------------------------------------------------------


def _on_sigterm(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM kills at once
    raise Terminated()


def main(argv=None, env=None):
    """Runs ``python3 -m loads_client``; returns the exit status."""
    argv = sys.argv[1:] if argv is None else list(argv)
    env = os.environ if env is None else env
    if argv and argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return EXIT_OK
    try:
        if len(argv) != 1 or argv[0].startswith("-"):
            raise UsageError(
                ("expected one argument, the test MODULE.CLASS.METHOD, got %d" % len(argv)
                 if len(argv) != 1 else "unknown option %r" % argv[0])
                + " (usage: %s TEST; %s --help tells more)" % (PROG, PROG)
            )
        test_name = argv[0]
        config = Config.from_env(env)
        module, cls, method_name = load_test(test_name)
        try:
            import zmq
        except ImportError:
            raise UsageError("pyzmq is not installed; install it with: python3 -m pip install pyzmq") from None
        try:
            reporter = _reporter.ZmqReporter(
                config.endpoint, config.run_id, config.agent_id, socket.gethostname(), test_name,
                config.hits if config.duration is None else 0, config.users, config.user,
            )
        except zmq.ZMQError as e:
            raise UsageError(
                "LOADS_ZMQ_RECEIVER=%r is not a ZeroMQ endpoint loads_client can connect to (%s); "
                "expected e.g. tcp://127.0.0.1:5555 or ipc:///tmp/loads.sock" % (config.endpoint, e)
            ) from None
    except UsageError as e:
        sys.stderr.write("loads_client: %s\n" % e)
        return EXIT_USAGE

    previous_handler = None
    if hasattr(signal, "SIGTERM"):
        try:
            previous_handler = signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:  # not the main thread (main called from a thread)
            previous_handler = None
    previous = _reporter.install(reporter)
    linger = LINGER_MS
    try:
        return run(module, cls, method_name, config, reporter)
    except Terminated:
        linger = LINGER_INTERRUPTED_MS
        return EXIT_SIGTERM
    except KeyboardInterrupt:
        linger = LINGER_INTERRUPTED_MS
        return EXIT_SIGINT
    finally:
        _reporter.install(previous)
        if previous_handler is not None:
            # Restored first: a SIGTERM while the socket lingers ends the process at once.
            signal.signal(signal.SIGTERM, previous_handler)
        reporter.close(linger)


def console_main():
    """Entry point of the ``loads-client`` console script."""
    sys.exit(main())

#!/usr/bin/env python3
"""A hand-written external runner for loads' integration tests: pyzmq and the standard library
only, no loads_client, following docs/external-runners.md by hand.

    python3 tests/external/raw_runner.py TEST [MODE]

Per process (one per virtual user and cycle step), after connecting its PUSH socket:
  1. MODE "malformed" only: 5 bad messages (see below).
  2. socket_open, socket_message (size 10), socket_close.
  3. For each hit h = 1..LOADS_TOTAL_HITS (or h = 1, 2... while LOADS_DURATION lasts):
     startTest; add_hit (url http://127.0.0.1/raw, GET, 200, elapsed 0.001); incr_counter "raw";
     addSuccess when h % 3 == 1, addFailure when h % 3 == 2, addError when h % 3 == 0; stopTest.
     Every test event carries TEST (argv[1]) as "test" and
     loads_status = [LOADS_TOTAL_HITS (0 in a duration run), LOADS_TOTAL_USERS, h, LOADS_CURRENT_USER].
  4. Closes the socket with a 10 s linger and exits 0.

Expected totals of `loads run TEST --test-runner "python3 tests/external/raw_runner.py {test}" -u U --hits H`
(one cycle step, one agent; with cycles, sum over the steps; with --agents N, times N):
  hits started (startTest)     U*H
  hits (outcomes)              U*H
  successes                    U*((H+2)//3)      h % 3 == 1: h = 1, 4, 7...
  failures                     U*((H+1)//3)      h % 3 == 2: h = 2, 5, 8...
  errors                       U*(H//3)          h % 3 == 0: h = 3, 6, 9...
  requests                     U*H, all GET http://127.0.0.1/raw, status 200, 1 ms each
  counter "raw"                U*H
  sockets opened / closed      U / U
  socket messages received     U, bytes received 10*U
  distinct problems            2: failure ("raw failure on purpose", "AssertionError")
                                  and error ("raw error on purpose", "RuntimeError")
  e.g. -u 2 --hits 5: 10 hits, 4 successes, 4 failures, 2 errors, 10 requests, raw = 10.
  Exit status 0 for every process; nothing on stderr.

MODE (argv[2], optional):
  die        writes "raw runner dying on purpose" to stderr and exits 3, sending nothing
             (expected: a run error naming exit status 3 and that stderr line, per process).
  hang       sends everything above, then sleeps forever without closing (expected: the events
             all counted, then the process terminated with SIGTERM after the step's duration
             plus the grace period, and reported as a run error).
  hang-hard  like hang, but ignores SIGTERM (expected: SIGKILL after SIGTERM did nothing).
  malformed  also sends, before everything else, per process: 4 malformed messages — b"not json",
             b'{"data_type":"add_hit"}' (missing fields), b'{"data_type":"addSuccess","test":5,
             "loads_status":"x"}' (wrong types), b'[1,2,3]' (not an object) — and one valid
             addSuccess with run_id "other-run" (ignored). Expected: the totals above unchanged,
             plus 4*U malformed messages and U messages of another run, counted and logged; the
             run goes on.

With LOADS_DURATION, the hits loop until the duration is over, pausing RAW_RUNNER_PAUSE seconds
after each hit (default 0.01, about 100 hits per second and process; default 0 in a hits run).

  batch      also sends, per process, one "batch" message (loads' mergeable summary, written by
             hand: 2 hits of test "raw.batched", all successes, and counter "batched" = 5), and
             puts an unknown field "extra" in every add_hit (ignored). Expected: the totals above,
             plus 2*U hits and successes under "raw.batched" and counter "batched" = 5*U.

Usage errors (no TEST, unknown MODE, missing or bad environment): a message on stderr, exit 2.
"""

import json
import os
import signal
import socket
import sys
import time

import zmq

MODES = ("", "die", "hang", "hang-hard", "malformed", "batch")

MALFORMED = [
    b"not json",
    b'{"data_type":"add_hit"}',
    b'{"data_type":"addSuccess","test":5,"loads_status":"x"}',
    b"[1,2,3]",
]


def usage(message):
    sys.stderr.write("raw_runner: %s\n" % message)
    sys.exit(2)


def env_int(name, default=None):
    raw = os.environ.get(name, "")
    if raw == "":
        if default is None:
            usage("%s is not set" % name)
        return default
    try:
        value = int(raw)
    except ValueError:
        usage("%s=%r is not an integer" % (name, raw))
    if value < 0:
        usage("%s=%r is negative" % (name, raw))
    return value


def main():
    if len(sys.argv) not in (2, 3):
        usage("usage: raw_runner.py TEST [die|hang|hang-hard|malformed|batch]")
    test = sys.argv[1]
    mode = sys.argv[2] if len(sys.argv) == 3 else ""
    if mode not in MODES:
        usage("unknown mode %r (expected one of die, hang, hang-hard, malformed, batch)" % mode)

    if mode == "die":
        sys.stderr.write("raw runner dying on purpose\n")
        sys.stderr.flush()
        sys.exit(3)

    endpoint = os.environ.get("LOADS_ZMQ_RECEIVER", "")
    if not endpoint:
        usage("LOADS_ZMQ_RECEIVER is not set")
    users = env_int("LOADS_TOTAL_USERS")
    user = env_int("LOADS_CURRENT_USER")
    duration = None
    if os.environ.get("LOADS_DURATION", ""):
        try:
            duration = float(os.environ["LOADS_DURATION"])
        except ValueError:
            usage("LOADS_DURATION=%r is not a number" % os.environ["LOADS_DURATION"])
        hits = 0
    else:
        hits = env_int("LOADS_TOTAL_HITS")

    envelope = {
        "run_id": os.environ.get("LOADS_RUN_ID", ""),
        "agent_id": os.environ.get("LOADS_AGENT_ID", ""),
        "hostname": socket.gethostname(),
    }

    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(endpoint)

    def send(data_type, **fields):
        msg = {"data_type": data_type}
        msg.update(envelope)
        msg.update(fields)
        push.send(json.dumps(msg).encode("utf-8"))

    if mode == "malformed":
        for bad in MALFORMED:
            push.send(bad)
        other = dict(envelope, run_id="other-run")
        push.send(json.dumps(dict(other, data_type="addSuccess", test=test,
                                  loads_status=[hits, users, 1, user])).encode("utf-8"))

    if mode == "batch":
        send("batch",
             tests={"raw.batched": {"started": 2, "hits": 2, "successes": 2, "failures": 0,
                                    "errors": 0}},
             counters={"batched": 5})
    extra = {"extra": "ignored"} if mode == "batch" else {}

    send("socket_open")
    send("socket_message", size=10)
    send("socket_close")

    # Pause after each hit: RAW_RUNNER_PAUSE seconds, by default none in a hits run and 10 ms in
    # a duration run (about 100 hits per second and process, not a busy loop).
    try:
        pause = float(os.environ.get("RAW_RUNNER_PAUSE") or (0.01 if duration is not None else 0))
    except ValueError:
        usage("RAW_RUNNER_PAUSE=%r is not a number of seconds" % os.environ["RAW_RUNNER_PAUSE"])
    deadline = time.monotonic() + duration if duration is not None else None
    h = 0
    while (h < hits) if deadline is None else (time.monotonic() < deadline):
        h += 1
        status = [hits, users, h, user]
        send("startTest", test=test, loads_status=status)
        now = time.time()
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%03dZ" % (int(now * 1000) % 1000)
        send("add_hit", url="http://127.0.0.1/raw", method="GET", status=200, started=started,
             elapsed=0.001, loads_status=status, **extra)
        send("incr_counter", test=test, name="raw", loads_status=status)
        if h % 3 == 1:
            send("addSuccess", test=test, loads_status=status)
        elif h % 3 == 2:
            send("addFailure", test=test, loads_status=status,
                 exc_info=["raw failure on purpose", "AssertionError", "raw_runner.py"])
        else:
            send("addError", test=test, loads_status=status,
                 exc_info=["raw error on purpose", "RuntimeError", "raw_runner.py"])
        send("stopTest", test=test, loads_status=status)
        if pause:
            time.sleep(pause)

    if mode in ("hang", "hang-hard"):
        if mode == "hang-hard":
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        while True:  # the events leave in the background (ZeroMQ's I/O thread)
            time.sleep(3600)

    push.close(linger=10_000)
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())

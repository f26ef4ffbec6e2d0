#!/usr/bin/env python3
"""An external runner that sends exactly what v1 producers send, for loads' integration tests:
the seed system's Python relay (loads 0.3, `loads/results/zmqrelay.py`: `ZMQTestResult` and
its batching `ZMQSummarizedTestResult`) and loads.js (`loadsjs/index.js` and `runner.js`).
pyzmq and the standard library only.

    python3 tests/external/v1_runner.py TEST MODE

Every process (one per virtual user and cycle step) runs LOADS_TOTAL_HITS hits, h = 1..H.

MODE relay: the relay's messages, one per event, encoded as the relay encodes them (the
  standard library's JSON encoder, `datetime` as `isoformat()`, `timedelta` as seconds):
  envelope {"data_type", "agent_id": null (v1's local runs have no agent id), "run_id":
  LOADS_RUN_ID, "hostname"}; once: socket_open, socket_message (size 10), socket_close; then per
  hit: startTest; add_hit (url http://127.0.0.1/v1, GET, status 200,
  started = datetime.utcnow().isoformat() — no time zone —, elapsed = a 250 ms timedelta);
  v1's counter form (data_type "v1counter", the counter's name, with test and loads_status);
  addSuccess when h % 3 == 1; addFailure when h % 3 == 2 with the relay's exc_info
  [str(type), str(value), traceback] of a real AssertionError("v1 failure on purpose")
  (Python 3 gives "<class 'AssertionError'>"); addError when h % 3 == 0 with the form the relay
  sends on Python 2, ["<type 'exceptions.ValueError'>", "v1 error on purpose", traceback];
  stopTest. loads_status = [H, LOADS_TOTAL_USERS, h, LOADS_CURRENT_USER].
  Expected per process: H hits started and ended; successes (H+2)//3, failures (H+1)//3 (kind
  AssertionError), errors H//3 (kind ValueError); H requests of 250 ms dated now; 1 socket
  opened and closed, 1 message of 10 bytes; H messages ignored (the counter form).

MODE batch: the same events through ZMQSummarizedTestResult: after each hit, one message
  {"data_type": "batch", "agent_id": null, "run_id": ..., "counts": {DATA_TYPE: [fields...]}}
  (the socket events go with the first). Then one batch with no field loads knows
  ({"data_type": "batch", "agent_id": null, "run_id": ...}), hand-made. Expected: the totals of
  relay, plus 1 malformed message per process.

MODE loadsjs: loads.js' messages (its runner.js, mocha-style tests): per hit startTest,
  addSuccess when h is odd, else addFailure with exc_info ["JSError", JSON.stringify(err), ""]
  where err is the string "status 404", then stopTest; envelope {"data_type", "agent_id":
  LOADS_AGENT_ID, "run_id": LOADS_RUN_ID, "loads_status": "H,U,h,u"} (a string: loads.js
  joins the array with commas), compact JSON, no hostname. Expected per process: H hits,
  (H+1)//2 successes, H//2 failures of kind JSError and message "status 404".

MODE foreign: the relay's messages, all with run_id "an-earlier-run". Expected: nothing
  counted, the run fails with a problem saying every message carried another run_id.

MODE hang: a startTest, then sleeps forever (expected: terminated after
  --external-process-timeout, reported as a run error; the startTest counted).
"""

import datetime
import json
import os
import socket
import sys
import time
import traceback
import warnings
from collections import defaultdict

import zmq

# datetime.utcnow() is what the relay calls; newer Pythons warn about it.
warnings.filterwarnings("ignore", category=DeprecationWarning)

MODES = ("relay", "batch", "loadsjs", "foreign", "hang")


class DateTimeJSONEncoder(json.JSONEncoder):
    """The relay's encoder (loads/util.py): dates as isoformat(), timedeltas as seconds."""

    def default(self, obj):
        if isinstance(obj, datetime.datetime):
            return obj.isoformat()
        if isinstance(obj, datetime.timedelta):
            return obj.total_seconds()
        return super().default(obj)


def usage(message):
    sys.stderr.write("v1_runner: %s\n" % message)
    sys.exit(2)


class Relay:
    """ZMQTestResult: one message per call; `batching` makes it ZMQSummarizedTestResult."""

    def __init__(self, push, run_id, batching=False):
        self.push_socket = push
        self.encoder = DateTimeJSONEncoder()
        self.agent_id = None
        self.run_id = run_id
        self.batching = batching
        self.pending = []

    def startTest(self, test, loads_status):
        self.push("startTest", test=str(test), loads_status=loads_status)

    def stopTest(self, test, loads_status):
        self.push("stopTest", test=str(test), loads_status=loads_status)

    def _transform_exc_info(self, exc):
        exc, exc_class, tb = exc
        return str(exc), str(exc_class), "".join(traceback.format_tb(tb)) if tb else ""

    def addFailure(self, test, exc, loads_status):
        self.push("addFailure", test=str(test), exc_info=self._transform_exc_info(exc),
                  loads_status=loads_status)

    def addError(self, test, exc, loads_status):
        self.push("addError", test=str(test), exc_info=self._transform_exc_info(exc),
                  loads_status=loads_status)

    def addSuccess(self, test, loads_status):
        self.push("addSuccess", test=str(test), loads_status=loads_status)

    def add_hit(self, **data):
        self.push("add_hit", **data)

    def socket_open(self):
        self.push("socket_open")

    def socket_close(self):
        self.push("socket_close")

    def socket_message(self, size):
        self.push("socket_message", size=size)

    def incr_counter(self, test, loads_status, name, agent_id=None):
        self.push(name, test=str(test), loads_status=loads_status, agent_id=str(agent_id))

    def push(self, data_type, **data):
        if self.batching:
            self.pending.append((data_type, data))
            return
        data.update({"data_type": data_type, "agent_id": self.agent_id,
                     "hostname": socket.gethostname(), "run_id": self.run_id})
        self.push_socket.send(self.encoder.encode(data).encode("utf-8"))

    def dump(self):
        """ZMQSummarizedTestResult._dump_data: what was pushed since the last batch."""
        if not self.pending:
            return
        data = {"data_type": "batch", "agent_id": self.agent_id, "run_id": self.run_id,
                "counts": defaultdict(list)}
        for data_type, message in self.pending:
            data["counts"][data_type].append(message)
        self.pending = []
        self.push_socket.send(self.encoder.encode(data).encode("utf-8"))


def relay_hits(relay, test, hits, users, user):
    relay.socket_open()
    relay.socket_message(10)
    relay.socket_close()
    for h in range(1, hits + 1):
        status = [hits, users, h, user]
        relay.startTest(test, status)
        relay.add_hit(url="http://127.0.0.1/v1", method="GET", status=200,
                      started=datetime.datetime.utcnow(),
                      elapsed=datetime.timedelta(milliseconds=250), loads_status=status)
        relay.incr_counter(test, status, "v1counter")
        if h % 3 == 1:
            relay.addSuccess(test, status)
        elif h % 3 == 2:
            try:
                assert False, "v1 failure on purpose"
            except AssertionError:
                relay.addFailure(test, sys.exc_info(), status)
        else:
            # What the relay sends from Python 2, where str(ValueError) is this.
            relay.addError(test, ("<type 'exceptions.ValueError'>", "v1 error on purpose", None),
                           status)
        relay.stopTest(test, status)
        relay.dump()


def loadsjs_hits(push, test, hits, users, user):
    def send(data_type, data, h):
        to_send = {"data_type": data_type, "agent_id": os.environ.get("LOADS_AGENT_ID", ""),
                   "run_id": os.environ.get("LOADS_RUN_ID", ""),
                   "loads_status": ",".join(str(n) for n in (hits, users, h, user))}
        to_send.update(data)
        push.send(json.dumps(to_send, separators=(",", ":")).encode("utf-8"))

    for h in range(1, hits + 1):
        send("startTest", {"test": test}, h)
        if h % 2 == 1:
            send("addSuccess", {"test": test}, h)
        else:
            exc_info = ["JSError", json.dumps("status 404", separators=(",", ":")), ""]
            send("addFailure", {"test": test, "exc_info": exc_info}, h)
        send("stopTest", {"test": test}, h)


def main():
    if len(sys.argv) != 3 or sys.argv[2] not in MODES:
        usage("usage: v1_runner.py TEST relay|batch|loadsjs|foreign|hang")
    test, mode = sys.argv[1], sys.argv[2]
    try:
        endpoint = os.environ["LOADS_ZMQ_RECEIVER"]
        users = int(os.environ["LOADS_TOTAL_USERS"])
        user = int(os.environ["LOADS_CURRENT_USER"])
        hits = int(os.environ.get("LOADS_TOTAL_HITS") or 1)
    except (KeyError, ValueError) as e:
        usage("bad environment: %s" % e)
    run_id = os.environ.get("LOADS_RUN_ID", "")

    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.connect(endpoint)

    if mode in ("relay", "batch", "foreign"):
        relay = Relay(push, "an-earlier-run" if mode == "foreign" else run_id,
                      batching=(mode == "batch"))
        relay_hits(relay, test, hits, users, user)
        if mode == "batch":
            push.send(json.dumps({"data_type": "batch", "agent_id": None,
                                  "run_id": run_id}).encode("utf-8"))
    elif mode == "loadsjs":
        loadsjs_hits(push, test, hits, users, user)
    else:
        Relay(push, run_id).startTest(test, [hits, users, 1, user])
        while True:  # the message leaves in the background (ZeroMQ's I/O thread)
            time.sleep(3600)

    push.close(linger=10_000)
    ctx.term()
    return 0


if __name__ == "__main__":
    sys.exit(main())

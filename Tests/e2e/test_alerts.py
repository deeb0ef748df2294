"""Alerts leaving the server: a real Alertmanager (Debian's prometheus-alertmanager, started
here on 127.0.0.1), a real webhook receiver that checks Standard Webhooks signatures, the
outbox across a SIGKILL, the board's `alert` messages and promtool on /metrics."""
import base64
import hashlib
import hmac
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import ROOT, free_port, unique
from live_client import LiveClient

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
SECRET_OLD = "whsec_" + base64.b64encode(b"old-secret-0123456789abcdef").decode()
SECRET_NEW = "whsec_" + base64.b64encode(b"new-secret-0123456789abcdef").decode()


class Alertmanager:
    """A real Alertmanager on 127.0.0.1 (no cluster), its data in a folder of its own."""

    def __init__(self, port=None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = tempfile.mkdtemp(prefix="sightline-am-")
        self.proc = None

    def start(self):
        assert ALERTMANAGER, "prometheus-alertmanager is not installed: run scripts/setup --test"
        config = os.path.join(self.dir, "alertmanager.yml")
        with open(config, "w") as f:
            f.write("route:\n  receiver: blackhole\n  group_wait: 1s\nreceivers:\n  - name: blackhole\n")
        self.log = open(os.path.join(self.dir, "log"), "ab")
        self.proc = subprocess.Popen(
            [ALERTMANAGER, f"--config.file={config}", f"--storage.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address=", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError("Alertmanager did not become ready: " + open(os.path.join(self.dir, "log")).read()[-2000:])

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def alerts(self, **labels):
        """Active alerts whose labels include `labels`."""
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=5) as r:
            alerts = json.loads(r.read())
        return [a for a in alerts if all(a["labels"].get(k) == v for k, v in labels.items())
                and a["status"]["state"] == "active"]

    def wait_for(self, predicate, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = predicate()
            if got:
                return got
            time.sleep(0.1)
        return None


class WebhookReceiver:
    """An HTTP endpoint that refuses (503, Retry-After) until `accept_after` seconds have passed
    since `start`, then verifies each delivery's signature with `secret` and keeps it."""

    def __init__(self, secret, accept_after=0.0, status_when_refusing=503, always=None):
        self.secret, self.accept_after, self.refusing, self.always = secret, accept_after, status_when_refusing, always
        self.accepted, self.refused, self.lock = [], 0, threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status = receiver.answer(self.headers, body)
                self.send_response(status)
                if status == 503:
                    self.send_header("Retry-After", "1")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.started = time.time()
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, headers, body):
        with self.lock:
            if self.always:
                self.refused += 1
                return self.always
            if time.time() - self.started < self.accept_after:
                self.refused += 1
                return self.refusing
            self.accepted.append({"id": headers["webhook-id"], "timestamp": headers["webhook-timestamp"],
                                  "signature": headers["webhook-signature"], "body": body})
            return 204

    def stop(self):
        self.server.shutdown()


def verify(secret, msg_id, timestamp, body, signature_header):
    """The receiver's side of Standard Webhooks: any v1 signature made with `secret` matches."""
    key = base64.b64decode(secret[len("whsec_"):])
    expected = base64.b64encode(hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()).decode()
    return any(hmac.compare_digest(sig.split(",", 1)[1], expected)
               for sig in signature_header.split(" ") if sig.startswith("v1,"))


def write_config(path, receivers, evaluation=1, resend=60, rules=None):
    config = {"evaluationSeconds": evaluation, "resendSeconds": resend, "receivers": receivers,
              # Only the rule under test: the others would add events of their own.
              "defaults": rules or {r: {"enabled": False} for r in
                                    ("held_call", "service_level", "no_agent_ready", "abandon_rate", "stream_stale")}}
    with open(path, "w") as f:
        json.dump(config, f)
    return path


def queued_caller(server, queue):
    iid = server.create()
    server.transition(iid, "queued", queue=queue)
    return iid, time.time()


def answer(server, iid, agent):
    server.transition(iid, "delivery_pending", agent=agent)
    server.transition(iid, "delivered")


@pytest.fixture
def alertmanager():
    managers = []

    def make(port=None, start=True):
        am = Alertmanager(port)
        managers.append(am)
        return am.start() if start else am
    yield make
    for am in managers:
        am.stop()


@pytest.fixture
def config_dir():
    d = tempfile.mkdtemp(prefix="sightline-alerts-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def test_a_breach_made_through_the_ingest_api_is_active_in_alertmanager_within_5s_and_resolved_when_it_ends(
        isolated_server, alertmanager, config_dir):
    am = alertmanager()
    config = write_config(os.path.join(config_dir, "alerts.json"),
                          [{"name": "am", "type": "alertmanager", "url": am.url}], resend=5)
    server = isolated_server("--alerts", config)
    q, agent = unique("q"), unique("ann")
    server.add_queue(q, "Sales", waitAlarmSeconds=1)
    server.add_agent(agent, "Ann", [q])
    board = LiveClient(server.ws_url, queues=[q]).run_in_background()

    iid, queued_at = queued_caller(server, q)
    # The breach starts once the wait passes 1 s; it must be in Alertmanager 5 s after that.
    found = am.wait_for(lambda: am.alerts(alertname="QueueLongestWaitHigh", queue=q), timeout=queued_at + 6 - time.time())
    assert found, f"no active alert in Alertmanager 5 s after the breach; server log: {server.log_tail()}"
    alert = found[0]
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["service"] == "sightline"
    assert "Sales" in alert["annotations"]["summary"] and float(alert["annotations"]["threshold"]) == 1
    assert alert["generatorURL"] == f"{server.base_url}/?queues={q}"
    # endsAt is the lease: 4 x max(evaluation 1 s, resend 5 s) ahead.
    ends = time.mktime(time.strptime(alert["endsAt"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    assert 10 < ends - time.time() <= 21, alert["endsAt"]

    # The dashboard watching the queue got it too, and so does a new snapshot.
    assert board.wait_for(lambda c: "alert" in c.messages, 5), board.messages[-10:]
    snapshot = server.ok("GET", f"/api/board?queues={q}")
    assert [a["rule"] for a in snapshot["alerts"]] == ["longest_wait"] and snapshot["alerts"][0]["queue"] == q
    assert server.ok("GET", f"/api/alerts?queues={q}")["alerts"][0]["state"] == "firing"

    answer(server, iid, agent)
    # Resolved by the server (the lease alone would take 20 s).
    gone = am.wait_for(lambda: not am.alerts(alertname="QueueLongestWaitHigh", queue=q), timeout=6)
    assert gone, "the alert is still active in Alertmanager after the breach ended"
    assert server.ok("GET", f"/api/alerts?queues={q}")["alerts"] == []
    rows = server.db_query("select e.kind, d.status from sightline.alert_events e join sightline.alert_deliveries d "
                           "on d.event_seq = e.seq where e.queue_id = %s order by e.seq", (q,))
    assert rows == [("firing", "delivered"), ("resolved", "delivered")]
    board.close()


def test_a_receiver_that_never_answers_does_not_delay_alertmanager(isolated_server, alertmanager, config_dir):
    """Each receiver is delivered to on a thread of its own: a webhook whose host takes the
    connection and never answers (listed first, 10 s timeout) does not hold back Alertmanager."""
    am = alertmanager()
    stalled = socket.socket()
    stalled.bind(("127.0.0.1", 0))
    stalled.listen(64)   # the kernel takes the connections; nothing ever reads or answers them
    try:
        config = write_config(os.path.join(config_dir, "alerts.json"),
                              [{"name": "stalled", "type": "webhook", "url": f"http://127.0.0.1:{stalled.getsockname()[1]}/hook",
                                "secrets": [SECRET_NEW], "timeoutSeconds": 10},
                               {"name": "am", "type": "alertmanager", "url": am.url}], resend=60)
        server = isolated_server("--alerts", config)
        q, agent = unique("q"), unique("ann")
        server.add_queue(q, "Sales", waitAlarmSeconds=1)
        server.add_agent(agent, "Ann", [q])
        iid, queued_at = queued_caller(server, q)
        found = am.wait_for(lambda: am.alerts(alertname="QueueLongestWaitHigh", queue=q), timeout=queued_at + 6 - time.time())
        assert found, f"no active alert in Alertmanager 5 s after the breach beside a stalled receiver; log: {server.log_tail()}"
        answer(server, iid, agent)
        assert am.wait_for(lambda: not am.alerts(alertname="QueueLongestWaitHigh", queue=q), timeout=6), \
            "the resolution did not reach Alertmanager within 5 s beside a stalled receiver"
        statuses = server.db_query("select d.receiver, d.status from sightline.alert_events e join sightline.alert_deliveries d "
                                   "on d.event_seq = e.seq where e.queue_id = %s order by e.seq, d.receiver", (q,))
        assert ("am", "delivered") in statuses and ("stalled", "pending") in statuses, statuses
        assert ("stalled", "delivered") not in statuses, "the stalled receiver answered nothing: proves nothing"
    finally:
        stalled.close()


def test_alertmanager_resolves_the_alert_of_a_server_killed_with_sigkill_within_the_lease(
        isolated_server, alertmanager, config_dir):
    am = alertmanager()
    # Lease: 4 x max(1 s, 1 s) = 4 s.
    config = write_config(os.path.join(config_dir, "alerts.json"),
                          [{"name": "am", "type": "alertmanager", "url": am.url}], resend=1)
    server = isolated_server("--alerts", config)
    q = unique("q")
    server.add_queue(q, "Support", waitAlarmSeconds=1)
    queued_caller(server, q)
    assert am.wait_for(lambda: am.alerts(alertname="QueueLongestWaitHigh", queue=q), timeout=8), server.log_tail()
    time.sleep(2)  # a few renewals
    assert am.alerts(alertname="QueueLongestWaitHigh", queue=q), "the alert expired while the server renewed it"

    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    killed_at = time.time()
    gone = am.wait_for(lambda: not am.alerts(alertname="QueueLongestWaitHigh", queue=q), timeout=4 + 3)
    assert gone, "Alertmanager still shows the alert of the dead server after its lease"
    assert time.time() - killed_at > 0.5, "resolved at once: it should stay active until its lease ends"


def test_an_alert_decided_while_alertmanager_is_down_is_delivered_from_the_outbox_after_a_sigkill_and_restart(
        isolated_server, alertmanager, config_dir):
    port = free_port()
    am = alertmanager(port, start=False)
    # Re-sends only every 60 s: only the outbox can bring the alert to Alertmanager in time.
    config = write_config(os.path.join(config_dir, "alerts.json"),
                          [{"name": "am", "type": "alertmanager", "url": am.url, "retrySeconds": [1] * 30}], resend=60)
    server = isolated_server("--alerts", config)
    q = unique("q")
    server.add_queue(q, "Billing", waitAlarmSeconds=1)
    queued_caller(server, q)

    def attempted():
        rows = server.db_query("select d.attempts, d.status from sightline.alert_deliveries d join sightline.alert_events e "
                               "on e.seq = d.event_seq where e.queue_id = %s and e.kind = 'firing'", (q,))
        return rows and rows[0][0] >= 1 and rows[0][1] == "pending"
    deadline = time.time() + 10
    while time.time() < deadline and not attempted():
        time.sleep(0.1)
    assert attempted(), f"the decision is not pending in the outbox: {server.log_tail()}"

    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait()
    am.start()
    server.start_server()
    restarted_at = time.time()
    found = am.wait_for(lambda: am.alerts(alertname="QueueLongestWaitHigh", queue=q), timeout=5)
    assert found, f"the pending alert was not delivered after the restart: {server.log_tail()}"
    assert time.time() - restarted_at < 5
    # Still the same alert (restored from the outbox, not decided again).
    events = server.db_query("select kind, alert_id from sightline.alert_events where queue_id = %s", (q,))
    assert len(events) == 1, events
    assert server.ok("GET", f"/api/alerts?queues={q}")["alerts"][0]["id"] == events[0][1]


def test_a_webhook_receiver_that_refuses_for_a_while_gets_every_event_once_in_order_with_valid_signatures(
        isolated_server, config_dir):
    hook = WebhookReceiver(SECRET_NEW, accept_after=4)
    gone = WebhookReceiver(SECRET_OLD, always=410)
    failing = WebhookReceiver(SECRET_OLD, always=500)
    config = write_config(os.path.join(config_dir, "alerts.json"), [
        # Two secrets: a key rotation; the receiver knows only the new one.
        {"name": "hook", "type": "webhook", "url": hook.url, "secrets": [SECRET_OLD, SECRET_NEW],
         "retrySeconds": [0.5, 1, 1, 1, 1, 1, 1, 1, 1, 1]},
        {"name": "gone", "type": "webhook", "url": gone.url, "secrets": [SECRET_OLD], "retrySeconds": [0.2] * 5},
        {"name": "failing", "type": "webhook", "url": failing.url, "secrets": [SECRET_OLD], "retrySeconds": [0.2, 0.2]},
    ])
    try:
        server = isolated_server("--alerts", config)
        q, agent = unique("q"), unique("ann")
        server.add_queue(q, "Sales", waitAlarmSeconds=1)
        server.add_agent(agent, "Ann", [q])
        for _ in range(2):  # fire and resolve twice: four events of one rule
            iid, _ = queued_caller(server, q)
            deadline = time.time() + 8
            while time.time() < deadline and not server.ok("GET", f"/api/alerts?queues={q}")["alerts"]:
                time.sleep(0.1)
            answer(server, iid, agent)
            deadline = time.time() + 8
            while time.time() < deadline and server.ok("GET", f"/api/alerts?queues={q}")["alerts"]:
                time.sleep(0.1)
        deadline = time.time() + 20
        while time.time() < deadline and len(hook.accepted) < 4:
            time.sleep(0.1)

        assert hook.refused >= 1, "the receiver never refused: the test proves nothing"
        ids = [d["id"] for d in hook.accepted]
        assert len(ids) == 4 and len(set(ids)) == 4, f"accepted {ids}"
        bodies = [json.loads(d["body"]) for d in hook.accepted]
        assert [b["type"] for b in bodies] == ["alert.firing", "alert.resolved", "alert.firing", "alert.resolved"]
        assert all(b["data"]["queue"] == q and b["data"]["rule"] == "longest_wait" for b in bodies)
        assert bodies[0]["data"]["id"] == bodies[1]["data"]["id"] != bodies[2]["data"]["id"]
        for d in hook.accepted:
            assert d["signature"].count("v1,") == 2
            assert verify(SECRET_NEW, d["id"], d["timestamp"], d["body"], d["signature"])
            assert not verify(SECRET_NEW, d["id"], d["timestamp"], d["body"].replace(b"Sales", b"Sale$"), d["signature"])
            assert not verify(SECRET_NEW, d["id"], str(int(d["timestamp"]) + 1), d["body"], d["signature"])

        # 410 stops at once; the failing receiver is dead-lettered after its last retry.
        deadline = time.time() + 10
        letters = []
        while time.time() < deadline:
            letters = server.ok("GET", "/api/alerts/dead-letters")["deadLetters"]
            if any(l["receiver"] == "failing" for l in letters) and any(l["receiver"] == "gone" for l in letters):
                break
            time.sleep(0.2)
        by_receiver = {}
        for l in letters:
            by_receiver.setdefault(l["receiver"], []).append(l)
        assert gone.refused == 1 and by_receiver["gone"][0]["attempts"] == 1 and "410" in by_receiver["gone"][0]["lastError"]
        assert by_receiver["failing"][0]["attempts"] == 3 and "HTTP 500" in by_receiver["failing"][0]["lastError"]
        assert by_receiver["failing"][0]["alert"]["queue"] == q
    finally:
        for r in (hook, gone, failing):
            r.stop()


def test_promtool_check_metrics_passes_on_metrics(isolated_server, config_dir):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed (Debian's prometheus): run scripts/setup --test"
    hook = WebhookReceiver(SECRET_NEW)
    config = write_config(os.path.join(config_dir, "alerts.json"),
                          [{"name": "hook", "type": "webhook", "url": hook.url, "secrets": [SECRET_NEW]}])
    try:
        server = isolated_server("--alerts", config)
        q, agent = unique("q"), unique("ann")
        server.add_queue(q, "Sales", waitAlarmSeconds=1)
        server.add_agent(agent, "Ann", [q])
        iid, _ = queued_caller(server, q)
        deadline = time.time() + 10
        while time.time() < deadline and not hook.accepted:
            time.sleep(0.1)
        answer(server, iid, agent)
        status, text = server.api("GET", "/metrics")
        assert status == 200
        check = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
        lines = text.splitlines()
        assert any(l.startswith(f'sightline_queue_waiting{{queue="{q}"}}') for l in lines)
        assert any(l.startswith("sightline_commit_to_board_seconds_bucket") for l in lines)
        assert any(l.startswith('sightline_alert_deliveries_total{receiver="hook"} ') and not l.endswith(" 0") for l in lines)
        assert any(l.startswith('sightline_alert_outbox_depth{receiver="hook"}') for l in lines)
        assert any(l.startswith("sightline_alert_evaluations_total ") and not l.endswith(" 0") for l in lines)
    finally:
        hook.stop()


def test_the_stale_stream_alert_reaches_a_webhook_while_postgresql_is_down_and_is_recorded_once_it_is_back(
        isolated_server, config_dir):
    pgdir = os.environ.get("SIGHTLINE_TEST_PG_DIR")
    if not pgdir:
        pytest.fail("SIGHTLINE_TEST_PG_DIR is not set: run scripts/test")
    hook = WebhookReceiver(SECRET_NEW)
    rules = {r: {"enabled": False} for r in ("longest_wait", "held_call", "service_level", "no_agent_ready", "abandon_rate")}
    config = write_config(os.path.join(config_dir, "alerts.json"),
                          [{"name": "hook", "type": "webhook", "url": hook.url, "secrets": [SECRET_NEW],
                            "retrySeconds": [0.5] * 10}], rules=rules)
    pg = str(ROOT / "scripts/pg")
    try:
        server = isolated_server("--alerts", config)
        subprocess.run([pg, "stop", pgdir], check=True, capture_output=True)
        try:
            deadline = time.time() + 15
            while time.time() < deadline and not hook.accepted:
                time.sleep(0.1)
            assert hook.accepted, f"no stale-stream alert while the database is down: {server.log_tail()}"
            body = json.loads(hook.accepted[0]["body"])
            assert body["type"] == "alert.firing" and body["data"]["rule"] == "stream_stale" and body["data"]["queue"] is None
        finally:
            started = subprocess.run([pg, "start", pgdir], capture_output=True, text=True)
            assert started.returncode == 0, started.stderr
        deadline = time.time() + 20
        while time.time() < deadline and len(hook.accepted) < 2:
            time.sleep(0.1)
        assert [json.loads(d["body"])["type"] for d in hook.accepted] == ["alert.firing", "alert.resolved"]
        # Both written to the outbox once the database was back; the one sent directly is not sent again.
        deadline = time.time() + 10
        rows = []
        while time.time() < deadline:
            rows = server.db_query("select e.kind, d.status from sightline.alert_events e join sightline.alert_deliveries d "
                                   "on d.event_seq = e.seq where e.rule = 'stream_stale' order by e.seq")
            if len(rows) == 2 and all(status == "delivered" for _, status in rows):
                break
            time.sleep(0.2)
        assert rows == [("firing", "delivered"), ("resolved", "delivered")], rows
        assert len(hook.accepted) == 2
    finally:
        hook.stop()


def test_a_service_level_breach_fires_from_the_figures_postgresql_computes(isolated_server, config_dir):
    rules = {r: {"enabled": False} for r in ("longest_wait", "held_call", "no_agent_ready", "abandon_rate", "stream_stale")}
    rules["service_level"] = {"for": 0, "minOffered": 2, "window": 900}
    server = isolated_server("--alerts", write_config(os.path.join(config_dir, "alerts.json"), [], rules=rules))
    q = unique("q")
    server.add_queue(q, "Sales", service_level_seconds=20)
    now = time.time()

    def ago(seconds):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now - seconds)) + "Z"
    # Two calls answered after 100 s of waiting (the threshold is 20 s): a service level of 0 %.
    for n in range(2):
        agent = unique(f"agent{n}")
        server.add_agent(agent, agent, [q])
        iid = server.create(at=ago(200))
        server.transition(iid, "queued", queue=q, at=ago(200))
        server.transition(iid, "delivery_pending", agent=agent, at=ago(100))
        server.transition(iid, "delivered", at=ago(100))
        server.transition(iid, "after_call_work", at=ago(50))
        server.transition(iid, "completed", at=ago(40))
    deadline = time.time() + 35  # the figures are read every 15 s
    alerts = []
    while time.time() < deadline and not alerts:
        alerts = server.ok("GET", f"/api/alerts?queues={q}")["alerts"]
        time.sleep(0.2)
    assert [a["rule"] for a in alerts] == ["service_level"], server.log_tail()
    sql = server.db_query("select offered, service_level_percent from sightline.alert_window_figures(900) where queue_id = %s", (q,))
    assert sql == [(2, 0.0)]
    assert alerts[0]["figures"]["serviceLevelPercent"] == 0 and alerts[0]["figures"]["offered"] == 2
    assert alerts[0]["figures"]["threshold"] == 80

"""End-to-end fixtures: the real `sightline serve` on 127.0.0.1 against the throwaway
PostgreSQL that scripts/test started (SIGHTLINE_TEST_DATABASE_URL), real WebSocket clients
and real HTTP."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


class Sightline:
    """A running server plus helpers to drive it through its HTTP API."""

    def __init__(self, database, binary, extra_args=()):
        self.database = database
        self.binary = binary
        self.extra_args = list(extra_args)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}/live"
        self.output_dir = OUTPUT
        OUTPUT.mkdir(exist_ok=True)
        self.proc = None
        self.log_path = OUTPUT / f"server-{self.port}.log"

    # -- process ---------------------------------------------------------------------------
    def start_server(self, timeout=30):
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [self.binary, "serve", "--database", self.database, "--listen", f"127.0.0.1:{self.port}",
             "--log-level", "info", *self.extra_args],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log_path.read_text()[-3000:]}")
            try:
                status, _ = self.api("GET", "/healthz")
                if status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become healthy: {self.log_path.read_text()[-3000:]}")

    def stop_server(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart_server(self):
        self.stop_server()
        self.start_server()

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    # -- HTTP ------------------------------------------------------------------------------
    def api(self, method, path, body=None, raw=None, headers=None, timeout=10):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, _decode(resp.read(), resp.headers.get("Content-Type", ""))
        except urllib.error.HTTPError as e:
            return e.code, _decode(e.read(), e.headers.get("Content-Type", ""))

    def ok(self, method, path, body=None, expect=(200, 201)):
        status, data = self.api(method, path, body)
        assert status in expect, f"{method} {path} -> {status} {data}"
        return data

    def add_queue(self, qid, name=None, service_level_seconds=20, **thresholds):
        body = {"id": qid, "name": name or qid, "serviceLevelSeconds": service_level_seconds, **thresholds}
        self.ok("POST", "/api/queues", body)

    def add_agent(self, aid, name=None, queues=(), voice_application=False):
        self.ok("POST", "/api/agents", {"id": aid, "name": name or aid, "queues": list(queues),
                                        "voiceApplication": voice_application})

    def create(self, call_id=None, at=None):
        body = {"callId": call_id or unique("call")}
        if at:
            body["at"] = at
        return self.ok("POST", "/api/interactions", body)["id"]

    def transition(self, iid, to, agent=None, queue=None, at=None):
        body = {"to": to}
        for k, v in (("agent", agent), ("queue", queue), ("at", at)):
            if v is not None:
                body[k] = v
        return self.ok("POST", f"/api/interactions/{iid}/transitions", body)

    def transfer(self, iid, kind, target, agent=None):
        body = {"kind": kind, "target": target}
        if agent:
            body["agent"] = agent
        return self.ok("POST", f"/api/interactions/{iid}/transfers", body)["id"]

    def board(self):
        return self.ok("GET", "/api/board")

    # -- database --------------------------------------------------------------------------
    def db_query(self, sql, params=None):
        import psycopg
        with psycopg.connect(_psycopg_dsn(self.database), autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()


def _decode(body, content_type):
    if "json" in content_type:
        try:
            return json.loads(body)
        except ValueError:
            pass
    return body.decode(errors="replace")


def _psycopg_dsn(url):
    return url


@pytest.fixture(scope="session")
def database():
    url = os.environ.get("SIGHTLINE_TEST_DATABASE_URL")
    if not url:
        pytest.fail("SIGHTLINE_TEST_DATABASE_URL is not set: run scripts/test")
    return url


@pytest.fixture(scope="session")
def binary():
    path = os.environ.get("SIGHTLINE_BINARY", str(ROOT / ".build/debug/sightline"))
    if not os.path.exists(path):
        pytest.fail(f"{path} not built: run scripts/test")
    return path


@pytest.fixture(scope="session")
def sightline(database, binary):
    s = Sightline(database, binary)
    s.start_server()
    yield s
    s.stop_server()


@pytest.fixture
def fresh_server(database, binary):
    """A server of its own, for tests that stop, restart or overload it."""
    servers = []

    def make(*extra_args):
        s = Sightline(database, binary, extra_args)
        s.start_server()
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop_server()


@pytest.fixture
def scenario(sightline):
    """A queue and two agents of this test's own."""
    tag = uuid.uuid4().hex[:8]
    q, ann, bob = f"q-{tag}", f"ann-{tag}", f"bob-{tag}"
    sightline.add_queue(q, f"Queue {tag}")
    sightline.add_agent(ann, "Ann " + tag, [q])
    sightline.add_agent(bob, "Bob " + tag, [q])
    return type("Scenario", (), {"queue": q, "ann": ann, "bob": bob, "tag": tag})

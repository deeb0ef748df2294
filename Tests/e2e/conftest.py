"""End-to-end fixtures: the real `sightline serve` on 127.0.0.1 against the throwaway
PostgreSQL that scripts/test started (SIGHTLINE_TEST_DATABASE_URL), real WebSocket clients
and real HTTP."""
import json
import os
import pathlib
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
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

    def __init__(self, database, binary, extra_args=(), preexec_fn=None, env=None, token=None):
        self.database = database
        self.binary = binary
        self.extra_args = list(extra_args)
        self.preexec_fn = preexec_fn
        self.env = dict(env or {})
        # Sent as Authorization: Bearer by api() unless a request names its own.
        self.token = token
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
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, preexec_fn=self.preexec_fn, env={**os.environ, **self.env})
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

    def cpu_seconds(self):
        """User plus system CPU time the server has used so far."""
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars=3000):
        return self.log_path.read_text(errors="replace")[-chars:]

    def exited(self, within=3.0):
        """True when the server exits within `within` seconds (a crash takes a moment to
        print its backtrace)."""
        try:
            self.proc.wait(timeout=within)
            return True
        except subprocess.TimeoutExpired:
            return False

    def crash_summary(self):
        """The exit status, the fatal error and the first frame in Sources/ from the log."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        fatal = [n for n, l in enumerate(lines) if "Fatal error" in l or "Program crashed" in l][-2:]
        crashed = [n for n, l in enumerate(lines) if l.startswith("Thread ") and l.rstrip().endswith("crashed:")]
        after = crashed[-1] if crashed else len(lines)
        frames = ["Sources/" + l.split("/Sources/", 1)[1] for l in lines[after:] if " at " in l and "/Sources/" in l]
        return f"exit {self.proc.returncode}; {' | '.join(lines[n].strip() for n in fatal)}; at {frames[:3]}"

    def timed_health(self, timeout=5):
        """(status or None, seconds) of one GET /healthz."""
        t0 = time.monotonic()
        try:
            status, _ = self.api("GET", "/healthz", timeout=timeout)
        except OSError:
            status = None
        return status, time.monotonic() - t0

    # -- HTTP ------------------------------------------------------------------------------
    def api(self, method, path, body=None, raw=None, headers=None, timeout=10):
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if self.token and not any(k.lower() == "authorization" for k in (headers or {})):
            req.add_header("Authorization", f"Bearer {self.token}")
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

    # -- tokens ----------------------------------------------------------------------------
    def mint_token(self, role, queues=(), expires_in=None, name=None):
        """A new token of `role` (limited to `queues`), made with `sightline token create`."""
        args = [self.binary, "token", "create", "--database", self.database, "--name", name or unique(role),
                "--role", role]
        for q in queues:
            args += ["--queue", q]
        if expires_in:
            args += ["--expires-in", expires_in]
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def revoke_token(self, name):
        done = subprocess.run([self.binary, "token", "revoke", "--database", self.database, "--name", name],
                              cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    # -- database --------------------------------------------------------------------------
    def db_query(self, sql, params=None):
        import psycopg
        with psycopg.connect(_psycopg_dsn(self.database), autocommit=True) as conn:
            return conn.execute(sql, params).fetchall()


class HealthWatch:
    """Polls /healthz in the background and records every answer time (None: no answer)."""

    def __init__(self, server, every=0.1, timeout=5):
        self.server, self.every, self.timeout = server, every, timeout
        self.samples = []            # (status, seconds)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.samples.append(self.server.timed_health(self.timeout))
            self._stop.wait(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=self.timeout + 1)

    def slowest(self):
        return max((s for _, s in self.samples), default=0.0)

    def check(self, bound=1.0):
        failed = [(st, round(s, 3)) for st, s in self.samples if st != 200 or s >= bound]
        assert self.samples and not failed, \
            f"/healthz: {len(failed)} of {len(self.samples)} answers not 200 within {bound}s: {failed[:10]}"


# -- raw HTTP and WebSocket, for clients that misbehave on purpose --------------------------

class RawResponse:
    def __init__(self, status, headers, body):
        self.status, self.headers, self.body = status, headers, body

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return f"<{self.status} {self.headers.get('content-type')} {self.body[:200]!r}>"


def read_http_response(sock, deadline, head_only=False):
    """One HTTP response from sock (Content-Length, chunked or until close; only the head when
    head_only, e.g. for HEAD); None when the connection closed or the deadline passed before a
    status line."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = _recv_until(sock, deadline)
        if not chunk:
            return None
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise AssertionError(f"not an HTTP status line: {lines[0]!r}")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    if head_only or int(parts[1]) in (204, 304) or int(parts[1]) < 200:
        body = b""
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            while b"\r\n" not in rest:
                chunk = _recv_until(sock, deadline)
                if not chunk:
                    raise AssertionError("chunked body cut short")
                rest += chunk
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                chunk = _recv_until(sock, deadline)
                if not chunk:
                    raise AssertionError("chunked body cut short")
                rest += chunk
            if size == 0:
                break
            body, rest = body + rest[:size], rest[size + 2:]
    elif "content-length" in headers:
        length = int(headers["content-length"])
        while len(rest) < length:
            chunk = _recv_until(sock, deadline)
            if not chunk:
                raise AssertionError(f"body cut short: {len(rest)} of {length} bytes")
            rest += chunk
        body = rest[:length]
    else:
        body = rest
        while True:
            chunk = _recv_until(sock, deadline)
            if not chunk:
                break
            body += chunk
    return RawResponse(int(parts[1]), headers, body)


def _recv_until(sock, deadline):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return b""
    sock.settimeout(remaining)
    try:
        return sock.recv(65536)
    except (TimeoutError, socket.timeout, ConnectionResetError):
        return b""


def raw_http(port, data, timeout=5, head_only=False):
    """Sends bytes as they are, returns the first RawResponse or None (closed or no answer)."""
    deadline = time.monotonic() + timeout
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        return read_http_response(s, deadline, head_only)


def http_request(method, target, body=None, headers=None, host="127.0.0.1"):
    """The bytes of one HTTP/1.1 request, with whatever method and target it is given."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Connection: close"]
    for k, v in (headers or {}).items():
        lines.append(f"{k}: {v}")
    if body is not None and not any(k.lower() == "content-length" for k in (headers or {})):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + (body or b"")


def ws_frame(payload, opcode=0x1, fin=True, mask=b"\x01\x02\x03\x04", rsv=0):
    """One WebSocket frame as a client sends it (masked unless mask is None)."""
    if isinstance(payload, str):
        payload = payload.encode()
    header = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    bit = 0x80 if mask is not None else 0
    n = len(payload)
    if n < 126:
        header.append(bit | n)
    elif n < 65536:
        header += bytes([bit | 126]) + n.to_bytes(2, "big")
    else:
        header += bytes([bit | 127]) + n.to_bytes(8, "big")
    if mask is None:
        return bytes(header) + payload
    return bytes(header) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class RawSocket(socket.socket):
    """A client socket that keeps the bytes read past the last frame in .pending."""
    pending = b""


def raw_connect(port, timeout=5):
    s = RawSocket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        s.close()
        raise
    return s


def ws_upgrade(port, target="/live", extra_headers=None, timeout=5):
    """A WebSocket handshake by hand: (socket, RawResponse or None). A 101 leaves the socket
    open for frames; anything else is an HTTP answer."""
    headers = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
               "Sec-WebSocket-Version": "13", **(extra_headers or {})}
    lines = [f"GET {target} HTTP/1.1", f"Host: 127.0.0.1:{port}"] + [f"{k}: {v}" for k, v in headers.items()]
    s = raw_connect(port, timeout)
    s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = _recv_until(s, deadline)
        if not chunk:
            return s, None
        buf += chunk
    head, rest = buf.split(b"\r\n\r\n", 1)
    status = int(head.split(b" ", 2)[1])
    s.pending = rest          # frames that came with the 101
    return s, RawResponse(status, {}, rest)


def read_ws_frame(sock, deadline):
    """(opcode, payload) of the next server frame (continuations joined); None at close or deadline."""
    def need(n):
        while len(sock.pending) < n:
            chunk = _recv_until(sock, deadline)
            if not chunk:
                return False
            sock.pending += chunk
        return True

    message, first_opcode = b"", None
    while True:
        if not need(2):
            return None
        b0, b1 = sock.pending[0], sock.pending[1]
        n, offset = b1 & 0x7F, 2
        if n == 126:
            if not need(4):
                return None
            n, offset = int.from_bytes(sock.pending[2:4], "big"), 4
        elif n == 127:
            if not need(10):
                return None
            n, offset = int.from_bytes(sock.pending[2:10], "big"), 10
        if not need(offset + n):
            return None
        payload = sock.pending[offset:offset + n]
        sock.pending = sock.pending[offset + n:]
        opcode = b0 & 0x0F
        if opcode >= 0x8:
            return opcode, payload
        first_opcode = first_opcode if opcode == 0 else opcode
        message += payload
        if b0 & 0x80:
            return first_opcode, message


def close_code(payload):
    return int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None


# -- the database ---------------------------------------------------------------------------

DIGEST_SQL = """select md5(concat_ws('|',
    (select string_agg(t::text, ',' order by t.id) from sightline.interactions t),
    (select string_agg(t::text, ',' order by t.id) from sightline.transitions t),
    (select string_agg(t::text, ',' order by t.id) from sightline.queues t),
    (select string_agg(t::text, ',' order by t.id) from sightline.agents t),
    (select string_agg(t::text, ',' order by t.id) from sightline.transfers t),
    (select string_agg(t::text, ',' order by t.interaction_id) from sightline.interaction_history t)))"""


def db_digest(database):
    """One md5 over every row of the sightline tables: equal digests, nothing changed."""
    import psycopg
    with psycopg.connect(database, autocommit=True) as conn:
        return conn.execute(DIGEST_SQL).fetchone()[0]


def _with_database_name(url, name):
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def _decode(body, content_type):
    if "json" in content_type:
        try:
            return json.loads(body)
        except ValueError:
            pass
    return body.decode(errors="replace")


def _psycopg_dsn(url):
    return url


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than a few seconds (load, timeouts, fuzzing)")


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


BOOTSTRAP_TOKEN = "bootstrap-" + uuid.uuid4().hex


def _server_maker(database, binary):
    """make(*extra_args, preexec_fn=None, env=None, token=None) starts one more server on
    database; make.servers. With bootstrap=True it gets BOOTSTRAP_TOKEN (an admin token given
    through $SIGHTLINE_BOOTSTRAP_TOKEN) and sends it on every api() call."""
    def make(*extra_args, preexec_fn=None, env=None, token=None, bootstrap=False):
        if bootstrap:
            env = {**(env or {}), "SIGHTLINE_BOOTSTRAP_TOKEN": BOOTSTRAP_TOKEN}
            token = token or BOOTSTRAP_TOKEN
        s = Sightline(database, binary, extra_args, preexec_fn, env, token)
        make.servers.append(s)
        s.start_server()
        return s

    make.servers = []
    make.database = database
    return make


@pytest.fixture
def fresh_server(database, binary):
    """A server of its own, for tests that stop, restart or overload it."""
    make = _server_maker(database, binary)
    yield make
    for s in make.servers:
        s.stop_server()


@pytest.fixture
def isolated_server(database, binary):
    """Like fresh_server, on a database of this test's own (created and migrated here, dropped
    afterwards): for tests that fill the board, write rows a reader must survive, or must see
    exactly their own rows. make.database is its URL."""
    import psycopg
    name = "e2e_" + uuid.uuid4().hex[:12]
    with psycopg.connect(database, autocommit=True) as conn:
        conn.execute(f"create database {name}")
    make = _server_maker(_with_database_name(database, name), binary)
    try:
        subprocess.run([binary, "migrate", "--database", make.database], cwd=ROOT, check=True,
                       capture_output=True, timeout=60)
        yield make
    finally:
        for s in make.servers:
            s.stop_server()
        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(f"drop database if exists {name} with (force)")


@pytest.fixture
def scenario(sightline):
    """A queue and two agents of this test's own."""
    tag = uuid.uuid4().hex[:8]
    q, ann, bob = f"q-{tag}", f"ann-{tag}", f"bob-{tag}"
    sightline.add_queue(q, f"Queue {tag}")
    sightline.add_agent(ann, "Ann " + tag, [q])
    sightline.add_agent(bob, "Bob " + tag, [q])
    # The server reloads its configuration on NOTIFY and then resynchronises every client: wait
    # for it, so that a client the test opens gets one snapshot, with the new queue and agents.
    deadline = time.time() + 10
    while time.time() < deadline:
        board = sightline.board()["board"]
        if q in {x["id"] for x in board["queues"]} and {ann, bob} <= {a["id"] for a in board["agents"]}:
            break
        time.sleep(0.05)
    return type("Scenario", (), {"queue": q, "ann": ann, "bob": bob, "tag": tag})

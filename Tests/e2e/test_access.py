"""Who may see and write what: tokens with roles and queue scopes, refused credentials on every
endpoint and the stream, revocation and expiry closing streams, DNS rebinding, and pages of
other sites that try to write. Real server, real PostgreSQL, real WebSocket clients."""
import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from conftest import (BOOTSTRAP_TOKEN, ROOT, Sightline, db_digest, free_port, http_request, raw_http,
                      read_http_response, unique, ws_upgrade)


def wait_for(predicate, timeout=10.0, step=0.1):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(step)
    raise AssertionError(f"not within {timeout}s (last: {last!r})")


def status_with(server, token, method="GET", path="/api/nothing", body=None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {"Authorization": ""}
    return server.api(method, path, body=body, headers=headers)[0]


def accepted(server, token):
    """Waits until the server took a new token (NOTIFY brings it within moments)."""
    wait_for(lambda: status_with(server, token) == 404)
    return token


def hello_outcome(server, token, queues=None, **kw):
    """('message', first message) or ('close', code, reason) of a hello with `token`."""
    msg = {"type": "hello", "queues": queues}
    if token is not ...:
        msg["token"] = token
    with connect(server.ws_url, open_timeout=10) as ws:
        ws.send(json.dumps(msg))
        try:
            return ("message", json.loads(ws.recv(timeout=10)))
        except ConnectionClosed as e:
            return ("close", e.rcvd and e.rcvd.code, e.rcvd and e.rcvd.reason)


class Site:
    """A secured server (tokens configured) with two queues of its own and a token of each kind."""

    def __init__(self, server):
        self.server = server
        tag = unique("s")
        self.sales, self.support = f"sales-{tag}", f"support-{tag}"
        self.ann, self.sue, self.both = f"ann-{tag}", f"sue-{tag}", f"both-{tag}"
        server.add_queue(self.sales, "Sales " + tag)
        server.add_queue(self.support, "Support " + tag)
        server.add_agent(self.ann, "Ann Sales", [self.sales])
        server.add_agent(self.sue, "Sue Support", [self.support])
        server.add_agent(self.both, "Bo Both", [self.sales, self.support])
        self.tokens = {
            "ingest": server.mint_token("ingest"),
            "supervisor": server.mint_token("supervisor"),
            "scoped": server.mint_token("supervisor", queues=[self.sales]),
            "wallboard": server.mint_token("wallboard", queues=[self.sales]),
            "admin": server.mint_token("admin"),
        }
        self.revoked_name = unique("revoked")
        self.tokens["revoked"] = server.mint_token("admin", name=self.revoked_name)
        server.revoke_token(self.revoked_name)
        self.tokens["expired"] = server.mint_token("admin", expires_in="1s")
        for role in ("ingest", "supervisor", "scoped", "wallboard", "admin"):
            accepted(server, self.tokens[role])
        expired = {"Authorization": f"Bearer {self.tokens['expired']}"}
        wait_for(lambda: server.api("GET", "/api/nothing", headers=expired)[1]["error"]["message"] == "token expired")


@pytest.fixture
def site(isolated_server):
    return Site(isolated_server(bootstrap=True))


def call(server, queue, agent=None, talk=True):
    """A call queued in `queue` (answered by `agent` when given); its id and call id."""
    call_id = unique("call")
    iid = server.create(call_id)
    server.transition(iid, "queued", queue=queue)
    if agent:
        server.transition(iid, "delivery_pending", agent=agent)
        if talk:
            server.transition(iid, "delivered")
    return iid, call_id


# -- every endpoint refuses bad credentials and wrong roles ---------------------------------

ROLES = ("ingest", "supervisor", "scoped", "wallboard", "admin")


def endpoints(site, iid):
    """(method, path, body, roles that may) of every endpoint that needs a token."""
    return [
        ("GET", "/api/board", None, {"supervisor", "scoped", "admin"}),
        ("GET", "/api/history", None, {"supervisor", "scoped", "admin"}),
        ("GET", f"/api/interactions/{iid}", None, {"supervisor", "scoped", "admin"}),
        ("GET", f"/api/interactions/{iid}/path", None, {"supervisor", "scoped", "admin"}),
        ("POST", "/api/interactions", {"callId": unique("c")}, {"ingest", "admin"}),
        ("POST", f"/api/interactions/{iid}/transitions", {"to": "held"}, {"ingest", "admin"}),
        ("POST", f"/api/interactions/{iid}/transfers", {"kind": "queue", "target": site.sales}, {"ingest", "admin"}),
        ("POST", "/api/batch", {"operations": [{"op": "create", "callId": unique("c")}]}, {"ingest", "admin"}),
        ("POST", "/api/queues", {"id": site.sales, "name": "Sales again"}, {"admin"}),
        ("POST", "/api/agents", {"id": site.ann, "name": "Ann Sales", "queues": [site.sales]}, {"admin"}),
        ("GET", "/metrics", None, {"supervisor", "admin"}),
        ("GET", "/api/queues", None, {"supervisor", "scoped", "admin"}),
        ("GET", "/api/agents", None, {"supervisor", "scoped", "admin"}),
        ("POST", f"/api/agents/{site.ann}/presence", {"state": "ready"}, {"ingest", "admin"}),
        ("GET", "/api/presence-reasons", None, {"supervisor", "scoped", "admin"}),
        ("POST", "/api/presence-reasons", {"code": "break", "name": "Break"}, {"admin"}),
        ("GET", "/api/figures", None, {"supervisor", "scoped", "admin"}),
        ("GET", "/api/alerts", None, {"supervisor", "scoped", "admin"}),
        ("GET", "/api/alerts/dead-letters", None, {"admin"}),
    ]


def test_every_endpoint_refuses_missing_empty_wrong_expired_revoked_tokens_and_wrong_roles(site):
    server = site.server
    iid, _ = call(server, site.sales, site.ann)
    bad = {"missing": None, "empty": "", "wrong": "sl_" + "x" * 43, "expired": site.tokens["expired"],
           "revoked": site.tokens["revoked"]}
    problems = []
    for method, path, body, roles in endpoints(site, iid):
        before = db_digest(server.database)
        for what, token in bad.items():
            status, data = server.api(method, path, body=body,
                                      headers={"Authorization": "" if token is None else f"Bearer {token}"})
            if status != 401 or data["error"]["code"] != "unauthorized":
                problems.append(f"{method} {path} with a {what} token: {status} {data}")
        for role in ROLES:
            if role in roles:
                continue
            status, data = server.api(method, path, body=body, headers={"Authorization": f"Bearer {site.tokens[role]}"})
            if status != 403 or data["error"]["code"] != "forbidden":
                problems.append(f"{method} {path} with a {role} token: {status} {data}")
        if db_digest(server.database) != before:
            problems.append(f"{method} {path}: a refused request changed the database")
        for role in roles:
            status, data = server.api(method, path, body=body, headers={"Authorization": f"Bearer {site.tokens[role]}"})
            if status in (401, 403):
                problems.append(f"{method} {path} with a {role} token (allowed): {status} {data}")
    assert not problems, "\n".join(problems)


def test_the_stream_refuses_missing_empty_wrong_expired_revoked_tokens_and_wrong_roles(site):
    server = site.server
    cases = {"missing": ..., "null": None, "empty": "", "wrong": "sl_" + "y" * 43,
             "expired": site.tokens["expired"], "revoked": site.tokens["revoked"]}
    got = {what: hello_outcome(server, token) for what, token in cases.items()}
    for what, outcome in got.items():
        assert outcome[:2] == ("close", 4401) and outcome[2], f"{what}: {outcome}"
    assert got["expired"][2] == "token expired" and got["revoked"][2] == "token revoked", got
    assert hello_outcome(server, site.tokens["ingest"])[:2] == ("close", 4403)
    for role in ("supervisor", "scoped", "wallboard", "admin"):
        outcome = hello_outcome(server, site.tokens[role])
        assert outcome[0] == "message" and outcome[1]["type"] == "snapshot", (role, outcome)
    # The bootstrap token is an admin token.
    assert hello_outcome(server, BOOTSTRAP_TOKEN)[1]["type"] == "snapshot"


def test_revoking_or_expiring_a_token_closes_its_streams_within_5_s(site):
    server = site.server
    name = unique("tv")
    token = accepted(server, server.mint_token("wallboard", name=name))
    short = accepted(server, server.mint_token("supervisor", expires_in="3s"))
    other = site.tokens["supervisor"]
    streams = {}
    for label, t in (("revoked", token), ("expiring", short), ("other", other)):
        ws = connect(server.ws_url, open_timeout=10)
        ws.send(json.dumps({"type": "hello", "token": t}))
        assert json.loads(ws.recv(timeout=10))["type"] == "snapshot"
        streams[label] = ws
    revoked_at = time.monotonic()
    server.revoke_token(name)
    closed = {}
    for label in ("revoked", "expiring"):
        with pytest.raises(ConnectionClosed) as e:
            while True:
                streams[label].recv(timeout=8)
        closed[label] = (e.value.rcvd.code, e.value.rcvd.reason, time.monotonic() - revoked_at)
    assert closed["revoked"][:2] == (4401, "token revoked") and closed["revoked"][2] < 5, closed
    # Minted at least 3 s before it expires; closed at most 5 s after.
    assert closed["expiring"][:2] == (4401, "token expired") and closed["expiring"][2] < 3 + 5, closed
    streams["other"].send(json.dumps({"type": "ping"}))
    assert any(json.loads(streams["other"].recv(timeout=5))["type"] == "pong" for _ in range(5)), "others stay"
    for ws in streams.values():
        ws.close()
    assert status_with(server, token) == 401


# -- scopes: a queue-scoped supervisor and a wallboard see nothing beyond them --------------

def forbidden_words(site, support_calls):
    return [site.support, site.sue, "Sue Support", "Support "] + [c for _, c in support_calls]


def traffic(site):
    """Calls in both queues, answered, held, completed: every kind of delta."""
    server = site.server
    sales, support = [], []
    for n in range(3):
        sales.append(call(server, site.sales, [site.ann, site.both, None][n]))
        support.append(call(server, site.support, [site.sue, None, site.both][n]))
    for (iid, _), agent in ((sales[0], site.ann), (support[0], site.sue)):
        server.transition(iid, "held", agent=agent)
        server.transition(iid, "delivered", agent=agent)
        server.transition(iid, "after_call_work")
        server.transition(iid, "completed")
    # Sales calls being transferred to the other queue and to an agent of it only: a reader of
    # sales sees that they are being transferred, not where to.
    for kind, target in (("queue", site.support), ("agent", site.sue)):
        sales.append(call(server, site.sales, site.both))
        server.transfer(sales[-1][0], kind, target)
    return sales, support


def collect(ws, seconds):
    """Every message within `seconds`."""
    out = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            out.append(ws.recv(timeout=max(0.05, deadline - time.monotonic())))
        except TimeoutError:
            break
    return out


def test_a_queue_scoped_supervisor_sees_only_its_queues_on_every_channel(site):
    server = site.server
    token = site.tokens["scoped"]
    ws = connect(server.ws_url, open_timeout=10)
    # Asks for every queue, then (second hello) for the other queue: neither widens the scope.
    ws.send(json.dumps({"type": "hello", "token": token, "queues": None}))
    messages = collect(ws, 1)
    sales, support = traffic(site)
    messages += collect(ws, 2)
    ws.send(json.dumps({"type": "hello", "token": token, "queues": [site.support, site.sales]}))
    messages += collect(ws, 2)
    third = call(server, site.support, site.sue)
    sales.append(call(server, site.sales, site.ann))
    messages += collect(ws, 2)
    ws.close()
    auth = {"Authorization": f"Bearer {token}"}
    http = {}
    for path in ("/api/board", f"/api/board?queues={site.support}", "/api/history", "/api/history?limit=1000",
                 f"/api/interactions/{sales[1][0]}", f"/api/interactions/{sales[1][0]}/path", "/api/queues", "/api/agents",
                 "/api/figures", f"/api/figures?queues={site.support}&agents={site.sue}", "/api/alerts",
                 f"/api/alerts?queues={site.support}"):
        status, data = server.api("GET", path, headers=auth)
        assert status == 200, (path, status, data)
        http[path] = json.dumps(data)
    for path, wanted in ((f"/api/history?queue={site.support}", 403), (f"/api/interactions/{support[1][0]}", 404),
                         (f"/api/interactions/{support[1][0]}/path", 404), (f"/api/interactions/{third[0]}", 404),
                         ("/metrics", 403)):
        status, data = server.api("GET", path, headers=auth)
        assert status == wanted, (path, status, data)
        http[path] = json.dumps(data)
    leaks = [(where, word) for where, text in [*(("ws", m) for m in messages), *http.items()]
             for word in forbidden_words(site, support + [third]) if word in text]
    assert not leaks, leaks[:10]
    # ...and it did see its own queue, on the stream and over HTTP.
    stream = "".join(messages)
    assert all(c in stream for _, c in sales), "every sales call reached the scoped stream"
    assert sales[1][1] in http["/api/board"] and site.sales in http["/api/history"]
    types = {json.loads(m)["type"] for m in messages}
    assert {"snapshot", "deltas"} <= types, types


def test_a_wallboard_token_gets_aggregate_queue_figures_only(site):
    server = site.server
    token = site.tokens["wallboard"]
    ws = connect(server.ws_url, open_timeout=10)
    ws.send(json.dumps({"type": "hello", "token": token, "queues": [site.sales, site.support]}))
    messages = collect(ws, 1)
    sales, support = traffic(site)
    messages += collect(ws, 3)

    def figures_seen(parsed):
        """The FIGURES objects received: the snapshot's, then every `figures` message's."""
        return [f for f in [*(m["board"]["figures"] for m in parsed if m["type"] == "snapshot"),
                            *(m["figures"] for m in parsed if m["type"] == "figures")] if f]

    def sales_offered_today(parsed):
        return max((f["queues"][site.sales]["today"]["offered"] for f in figures_seen(parsed) if site.sales in f["queues"]),
                   default=0)

    # The counted figures come from SQL in `figures` messages (read at most once a second).
    deadline = time.monotonic() + 20
    while sales_offered_today([json.loads(m) for m in messages]) < 1 and time.monotonic() < deadline:
        messages += collect(ws, 1)
    ws.close()
    parsed = [json.loads(m) for m in messages]
    assert parsed[0]["type"] == "snapshot" and parsed[0]["view"] == "wallboard"
    assert parsed[0]["board"]["interactions"] == [] and parsed[0]["board"]["agents"] == []
    assert [q["id"] for q in parsed[0]["board"]["queues"]] == [site.sales]
    assert {m["type"] for m in parsed} <= {"snapshot", "wallboard", "figures", "heartbeat", "status", "alert"}, {m["type"] for m in parsed}
    last = [m for m in parsed if m["type"] == "wallboard"][-1]["queues"]
    assert list(last) == [site.sales]
    # Three sales calls: one completed, two live (one talking with Bo, one waiting).
    assert last[site.sales]["waiting"] == 1 and last[site.sales]["talking"] == 1, last
    assert "today" not in last[site.sales], "counted figures come from SQL, in `figures`, not from the server"
    assert sales_offered_today(parsed) >= 1, figures_seen(parsed)
    assert all(set(f["queues"]) <= {site.sales} and f["agents"] == {} for f in figures_seen(parsed)), figures_seen(parsed)
    words = forbidden_words(site, support) + [c for _, c in sales] + [site.ann, site.both, "Ann Sales", "Bo Both",
                                                                        "callId", "\"agent\"", "\"interaction\""]
    leaks = [(m[:120], w) for m in messages for w in words if w in m]
    assert not leaks, leaks[:10]
    auth = {"Authorization": f"Bearer {token}"}
    for path in ("/api/board", "/api/history", f"/api/interactions/{sales[1][0]}", f"/api/interactions/{sales[1][0]}/path",
                 "/metrics", "/api/agents", "/api/figures", "/api/alerts"):
        assert server.api("GET", path, headers=auth)[0] == 403, path


# -- tokens through the CLI -----------------------------------------------------------------

def test_token_cli_lists_and_refuses_clearly(site):
    server = site.server

    def cli(*args):
        return subprocess.run([server.binary, "token", *args, "--database", server.database], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    listed = cli("list", "--all")
    assert listed.returncode == 0 and site.revoked_name in listed.stdout and "revoked" in listed.stdout
    assert "expired" in listed.stdout
    for secret in site.tokens.values():
        assert secret not in listed.stdout, "a secret is never shown again"
    stored = server.db_query("select encode(hash, 'hex') from sightline.tokens")
    assert all(len(h) == 64 for (h,) in stored)
    assert not any(secret in str(stored) for secret in site.tokens.values())
    for args, words in ((("create", "--name", "x", "--role", "janitor"), "unknown role"),
                        (("create", "--name", "x", "--role", "supervisor", "--queue", "no-such-queue"), "unknown queue"),
                        (("create", "--name", "x", "--role", "ingest", "--queue", site.sales), "no queue scope"),
                        (("revoke", "--name", "nobody"), "no active token"),
                        (("create", "--name", "bad\u0001name", "--role", "admin"), "control characters")):
        done = cli(*args)
        assert done.returncode != 0 and words in done.stderr, (args, done.stderr)


# -- no tokens configured: loopback only, and no rebinding ---------------------------------

def test_a_dns_rebinding_request_changes_nothing(sightline):
    """The session server has no token (like scripts/run): a page whose host name points at
    127.0.0.1 must still get nowhere."""
    before = db_digest(sightline.database)
    evil = f"rebind.example:{sightline.port}"
    body = json.dumps({"callId": unique("rebound")}).encode()
    post = raw_http(sightline.port, http_request("POST", "/api/interactions", body,
                                                 {"Content-Type": "application/json"}, host=evil))
    board = raw_http(sightline.port, http_request("GET", "/api/board", host=evil))
    _, upgrade = ws_upgrade(sightline.port, "/live", {"Host": evil})
    assert post.status == 403 and post.json()["error"]["code"] == "host_not_allowed", post
    assert board.status == 403, board
    assert upgrade is not None and upgrade.status == 403, upgrade
    assert db_digest(sightline.database) == before
    # The same requests with this machine's name work.
    ok = raw_http(sightline.port, http_request("GET", "/api/board", host=f"localhost:{sightline.port}"))
    assert ok.status == 200


def test_writes_take_json_only_and_a_foreign_origin_is_refused(sightline):
    before = db_digest(sightline.database)
    body = json.dumps({"callId": unique("form")}).encode()
    for headers, status, code in (({"Content-Type": "text/plain"}, 415, "unsupported_media_type"),
                                  ({"Content-Type": "application/x-www-form-urlencoded"}, 415, "unsupported_media_type"),
                                  ({}, 415, "unsupported_media_type"),
                                  ({"Content-Type": "application/json", "Origin": "http://evil.example"}, 403,
                                   "origin_not_allowed")):
        r = raw_http(sightline.port, http_request("POST", "/api/interactions", body, headers))
        assert r.status == status and r.json()["error"]["code"] == code, (headers, r)
    assert db_digest(sightline.database) == before


def other_address():
    """An address of this machine that is not loopback (the test skips without one)."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.connect(("10.255.255.255", 1))
        address = probe.getsockname()[0]
    except OSError:
        address = None
    finally:
        probe.close()
    if not address or address.startswith("127."):
        pytest.skip("this machine has no address other than loopback")
    return address


def serve_on_every_address(isolated_server, binary, *args, env=None):
    """A server listening on 0.0.0.0 (the later --listen wins over the fixture's)."""
    port = free_port()
    server = Sightline(isolated_server.database, binary, ["--listen", f"0.0.0.0:{port}", *args], env=env)
    server.port, server.base_url = port, f"http://127.0.0.1:{port}"
    isolated_server.servers.append(server)
    server.start_server()
    return server


def test_without_tokens_only_loopback_clients_are_served(isolated_server, binary):
    """Another address of this machine is not loopback: a server listening on every address
    refuses it while no token exists, and says so at start-up."""
    address = other_address()
    server = serve_on_every_address(isolated_server, binary, "--allowed-host", address)
    port = server.port
    assert "serving only clients on this machine" in server.log_tail(20000)
    with socket.create_connection((address, port), timeout=5) as s:
        s.sendall(http_request("GET", "/api/board", host=f"{address}:{port}"))
        r = read_http_response(s, time.monotonic() + 5)
    assert r is not None and r.status == 403 and "only clients on this machine" in r.json()["error"]["message"], r
    assert server.api("GET", "/api/board")[0] == 200, "loopback is served"


# -- limits ---------------------------------------------------------------------------------

def test_writes_beyond_a_tokens_rate_get_429_with_retry_after_and_change_nothing(isolated_server):
    server = isolated_server("--ingest-rate", "2", "--ingest-burst", "4", bootstrap=True)
    token = accepted(server, server.mint_token("ingest"))
    other = accepted(server, server.mint_token("ingest"))
    prefix = unique("rate")
    answers = []
    for n in range(8):
        req = urllib.request.Request(f"{server.base_url}/api/interactions", method="POST",
                                     data=json.dumps({"callId": f"{prefix}-{n}"}).encode(),
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                answers.append((r.status, None))
        except urllib.error.HTTPError as e:
            answers.append((e.code, e.headers.get("Retry-After")))
    created = server.db_query("select count(*) from sightline.interactions where call_id like %s", (prefix + "-%",))[0][0]
    refused = [a for a in answers if a[0] == 429]
    assert refused and all(int(after) >= 1 for _, after in refused), answers
    assert created == sum(1 for s, _ in answers if s == 201), (answers, created)
    # Another token has its own allowance; the first one writes again after waiting.
    assert status_with(server, other, "POST", "/api/interactions", {"callId": unique("other")}) == 201
    time.sleep(int(refused[-1][1]))
    assert status_with(server, token, "POST", "/api/interactions", {"callId": unique("later")}) == 201


def test_connections_per_client_address_are_limited(isolated_server, binary):
    address = other_address()
    server = serve_on_every_address(isolated_server, binary, "--allowed-host", address, "--max-connections-per-address", "3",
                                    env={"SIGHTLINE_BOOTSTRAP_TOKEN": BOOTSTRAP_TOKEN})

    def upgrade():
        s = socket.create_connection((address, server.port), timeout=5)
        s.sendall((f"GET /live HTTP/1.1\r\nHost: {address}:{server.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = s.recv(4096)
            if not chunk:
                break
            head += chunk
        return s, int(head.split(b" ", 2)[1]) if head else None

    opened = [upgrade() for _ in range(3)]
    assert [status for _, status in opened] == [101, 101, 101]
    extra, status = upgrade()
    extra.close()
    assert status == 429
    opened[0][0].close()
    assert wait_for(lambda: (lambda r: (r[0].close(), r[1])[1])(upgrade()) == 101), "a closed connection frees its place"
    for s, _ in opened[1:]:
        s.close()
    # Loopback clients are not limited (load tests, a proxy on this machine).
    local = [ws_upgrade(server.port, "/live") for _ in range(5)]
    assert all(r is not None and r.status == 101 for _, r in local)
    for s, _ in local:
        s.close()


def test_a_symlink_out_of_the_web_folder_is_not_served(fresh_server, tmp_path):
    web = tmp_path / "web"
    shutil.copytree(ROOT / "web", web)
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the web " + unique("s"))
    (web / "leak.txt").symlink_to(secret)
    (web / "inside.css").symlink_to(web / "style.css")
    server = fresh_server("--web", str(web))
    status, body = server.api("GET", "/leak.txt")
    assert status == 403 and "not for the web" not in str(body), (status, body)
    assert server.api("GET", "/inside.css")[0] == 200, "a link that stays inside is served"
    assert server.api("GET", "/")[0] == 200

"""Fuzzing the HTTP API (from docs/openapi.json) and the dashboard protocol (from
docs/protocol.md) with a fixed seed: valid, mutated and garbage input, malformed query strings,
paths, methods, headers and frames. The server must never exit, never answer 5xx (except 503
with a JSON error), answer every error under /api, /healthz and /metrics with a JSON error code,
keep /healthz fast, and change nothing in the database for input designed to be refused. A
well-formed request with a head under 4 KiB is answered (not dropped, not left hanging), and
WebSocket input gets what docs/protocol.md says: a snapshot for a hello, a pong for a ping,
4400 for a bad message, 1009 for a frame over 64 KiB, 1008 (or an HTTP refusal) for a foreign
Origin. Cases run 8 at a time; after an exit the cases that lost their connection are replayed
one by one to name the one that kills the server.

SIGHTLINE_FUZZ_SEED, SIGHTLINE_FUZZ_HTTP_CASES and SIGHTLINE_FUZZ_WS_CASES change the seed and
the counts; a failure names the seed and the case number that reproduce it."""
import collections
import concurrent.futures
import copy
import json
import os
import random
import re
import time
from dataclasses import dataclass, field

import psycopg
import pytest

from conftest import ROOT, close_code, db_digest, raw_http, read_ws_frame, ws_frame, ws_upgrade

SEED = int(os.environ.get("SIGHTLINE_FUZZ_SEED", "20261124"))
HTTP_CASES = int(os.environ.get("SIGHTLINE_FUZZ_HTTP_CASES", "3000"))
WS_CASES = int(os.environ.get("SIGHTLINE_FUZZ_WS_CASES", "1000"))
SPEC = json.loads((ROOT / "docs/openapi.json").read_text())
TIMEOUT = 3                                # per case: an answer is due well within it
HEALTH_BOUND = 1.0                         # /healthz after every batch (the bench measures 100 ms)
NONEXISTENT = 9_000_000_000_000

JUNK_QUERIES = ["?", "?=", "?a=1&=", "?&&", "?%", "?%zz", "?==", "?=&=&=", "?&=&", "?a", "?a=", "?=a", "?%=%",
                "?%%", "?%2", "?%00", "?a=%00", "?%00=1", "?a=1&a=2", "?+=+", "?a=%ff%fe", "?a=%C3%A9",
                "?a=é", "?;", "?a=1;b=2", "?#", "?queues=", "?queues=,,,", "?queues=%2C", "?limit=-1",
                "?limit=0", "?limit=1e9", "?limit=99999999999999999999", "?limit=abc", "?limit=%00",
                "?limit=1&limit=2", "?queue=", "?queue=%00", "?token=", "?token=%", "?token=&token=",
                "?subscribe=1&=", "?" + "a=1&" * 2000, "?" + "=" * 4000, "?" + "&" * 4000,
                "?q=" + "x" * 20000, "?" + "%" * 3000, "?" + "%zz" * 1000]
ODD_PATHS = ["//api/board", "/api//board", "/api/board/", "/api/../etc/passwd", "/api/%2e%2e/healthz",
             "/%61pi/board", "/api/%62oard", "/api/board%00", "/api/board%2f", "/api/interactions/%00/path",
             "/api/interactions/1%2Fpath", "/API/BOARD", "/api/./board", "/api/board/..", "/./healthz",
             "/healthz/", "/healthz/x", "/metrics/", "/api", "/api/", "/" + "a" * 5000, "/api/" + "b" * 5000,
             "/%", "/%zz", "/..", "/../../../../etc/passwd", "/web/../sql/001_schema.sql", "/api/openapi.json/..",
             "/é", "/%C3%A9", "/api/interactions/%F0%9F%99%82"]
BAD_IDS = ["abc", "-1", "0", "99999999999999999999999", "%00", "%2e%2e", "1;drop", "9223372036854775808",
           "-9223372036854775809", "", "%20", "%"]
NEAR_IDS = ["1.5", "1e3", "0x10", "%201", "%EF%BC%91", "+1", "01", "%31", "1%00"]   # may name a real one
KNOWN_METHODS = ["PUT", "PATCH", "DELETE", "OPTIONS", "HEAD"]
UNKNOWN_METHODS = ["FOO", "get", "G ET", "TRACE", "CONNECT", "PROPFIND", "GET\x00", "X" * 100]
CONTENT_TYPES = [None, "text/plain", "application/json; charset=utf-8", "application/x-www-form-urlencoded",
                 "multipart/form-data; boundary=x", "APPLICATION/JSON", "application/json; charset=utf-16",
                 "application/xml", "*/*", "application/json, text/plain", ""]
TEXTS = ["", " ", "é", "漢字", "🙂" * 10, "\u202eevil", "a\u0000b", "\u0000", "\ufeff", "\\", '"', "%00",
         "x" * 129, "x" * 10000, "null", "' or 1=1 --", "\r\n", "<script>", "a\u0301", "\U0010ffff"]
WRONG = {"string": [0, -1, 1.5, 10 ** 30, True, False, [], {}, ["x"], {"a": "b"}],
         "integer": ["20", "", 1.5, -1, 0, 2 ** 31, -(2 ** 31) - 1, 10 ** 30, -(10 ** 30), 1e308, True, [], {}],
         "boolean": [0, 1, "true", "", [], {}],
         "array": ["sales", 1, True, {}, [1], [[]], [{}], [True]],
         "object": ["x", 1, [], True]}
BAD_DATES = ["yesterday", "2026-02-30T25:61:00Z", "", "12:00", "tomorrow at noon", "2026-13-45T99:99:99Z",
             "T", "Z", "0000-00-00T00:00:00Z", "+" * 30]
NOISE = ["{", "}", "[", "{\"", "{}}", "[1,", "nul", "tru", "\"", "'callId': 'x'", "callId=x", "\x00", "\xff\xfe",
         "{\"callId\" \"x\"}", "{callId: \"x\"}", "{\"callId\": \"x\",}", "[]]", "{\"a\":}", "--", "/*", "1 2"]


@dataclass
class HttpCase:
    n: int
    label: str
    data: bytes
    method: str = "GET"
    refused: bool = False          # designed to be refused: no 2xx/3xx for a write
    must_answer: bool = True       # well-formed HTTP: an answer is due
    json_errors: bool = True       # under /api, /healthz, /metrics: errors are JSON


@dataclass
class WsCase:
    n: int
    label: str
    target: str = "/live"
    headers: dict = field(default_factory=dict)
    frames: list = field(default_factory=list)
    expect: str = "answer"         # snapshot | pong | close | answer | http | none
    codes: tuple = ()              # accepted close codes when expect == "close"
    drop_ok: bool = False          # a dropped connection counts as a close (protocol violations)


def resolve(schema):
    while "$ref" in schema:
        node = SPEC
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def endpoints():
    out = []
    for path, item in SPEC["paths"].items():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
                out.append((method.upper(), path, resolve(body) if body else None))
    return out


class Generator:
    """Cases from docs/openapi.json: ctx holds the queues, agents and interactions that exist."""

    def __init__(self, rng, ctx):
        self.rng, self.ctx = rng, ctx
        self.endpoints = endpoints()
        self.calls = 0

    # -- values -----------------------------------------------------------------------------
    def text(self):
        r = self.rng
        return r.choice(TEXTS) if r.random() < 0.3 else "".join(
            r.choice("abcXYZ019-_.:é漢🙂 ") for _ in range(r.randint(1, 20)))

    def semantic(self, name):
        r, ctx = self.rng, self.ctx
        self.calls += 1
        return {"queue": lambda: r.choice(ctx["queues"]),
                "queues": lambda: r.sample(ctx["queues"], r.randint(0, len(ctx["queues"]))),
                "agent": lambda: r.choice(ctx["agents"]),
                "target": lambda: r.choice(ctx["agents"] + ctx["queues"]),
                "interaction": lambda: r.choice(ctx["interactions"] + ["$0"]),
                "callId": lambda: f"fz-{ctx['tag']}-{self.calls}" + (self.text() if r.random() < 0.3 else ""),
                "id": lambda: f"fz{ctx['tag']}{r.randint(0, 3)}",
                "name": lambda: self.text() or "n",
                "at": lambda: None}.get(name, lambda: None)()

    def example(self, schema, name=None):
        schema = resolve(schema)
        value = self.semantic(name)
        if value is not None:
            return value
        if "enum" in schema:
            return self.rng.choice(schema["enum"])
        if "oneOf" in schema:
            return self.example(self.rng.choice(schema["oneOf"]), name)
        t = schema.get("type")
        if t == "object":
            out = {}
            for key, sub in schema.get("properties", {}).items():
                if key in schema.get("required", []) or (key != "at" and self.rng.random() < 0.5):
                    out[key] = self.example(sub, key)
            return out
        if t == "array":
            return [self.example(schema["items"]) for _ in range(self.rng.randint(schema.get("minItems", 0), 3))]
        if t == "integer":
            return self.rng.randint(1, 100)
        if t == "boolean":
            return self.rng.random() < 0.5
        return self.text() or "x"

    def valid_body(self, path, schema):
        if path == "/api/batch":
            q = self.rng.choice(self.ctx["queues"])
            return {"operations": [{"op": "create", "callId": self.semantic("callId")},
                                   {"op": "transition", "interaction": "$0", "to": "queued", "queue": q}]}
        return self.example(schema)

    # -- mutations ----------------------------------------------------------------------------
    def refusing_mutation(self, body, schema, path):
        """A change that the spec refuses for sure: (label, new body)."""
        r = self.rng
        props, required = schema.get("properties", {}), schema.get("required", [])
        choices = ["not an object", "wrong type"]
        if required:
            choices.append("missing required")
        if schema.get("additionalProperties") is False:
            choices.append("unknown field")
        if any("enum" in resolve(p) or resolve(p).get("pattern") or resolve(p).get("format") == "date-time"
               or resolve(p).get("maxLength") for p in props.values()):
            choices.append("outside the value space")
        if path == "/api/batch":
            choices += ["batch"] * 3
        kind = r.choice(choices)
        body = copy.deepcopy(body)
        if kind == "not an object":
            return kind, r.choice([[], [body], "x", 1, None, True, 1.5, [None]])
        if kind == "missing required":
            key = r.choice(required)
            body.pop(key, None)
            return f"{kind} {key}", body
        if kind == "unknown field":
            body[r.choice(["extra", "", "callid", "ID", "é", "__proto__", "to " ])] = r.choice([1, "x", None, {}])
            return kind, body
        if kind == "wrong type":
            key = r.choice(list(props))
            t = resolve(props[key]).get("type") or ("integer" if key == "interaction" else "string")
            if "oneOf" in resolve(props[key]):
                body[key] = r.choice([True, 1.5, [], {}, "1", "$", "$x", "$-1"])
            else:
                body[key] = r.choice(WRONG[t] + ([None] if key in required else []))
            return f"{kind} {key}={str(body[key])[:40]}", body
        if kind == "outside the value space":
            keys = [k for k, p in props.items() if "enum" in resolve(p) or resolve(p).get("pattern")
                    or resolve(p).get("format") == "date-time" or resolve(p).get("maxLength")]
            key = r.choice(keys)
            p = resolve(props[key])
            if "enum" in p:
                body[key] = r.choice(["on_break", "", "QUEUED", "queued ", "completed\u0000", "idle;", "é"])
            elif p.get("pattern"):
                body[key] = r.choice(["", "bad id", "x" * 65, "é", "a/b", "a\u0000", "<b>"])
            elif p.get("format") == "date-time":
                body[key] = r.choice(BAD_DATES)
            else:
                body[key] = r.choice(["", "x" * (p["maxLength"] + 1), "🙂" * (p["maxLength"] + 1)])
            return f"{kind} {key}={str(body[key])[:40]}", body
        # batch: empty, too many, or a broken operation after good ones (all or nothing)
        sub = r.randint(0, 2)
        if sub == 0:
            return "batch without operations", {"operations": []}
        if sub == 1:
            return "batch of 1001", {"operations": [{"op": "create", "callId": f"fz-big-{i}"} for i in range(1001)]}
        ops = body["operations"] + [r.choice([{"op": "explode"}, {"op": "transition", "interaction": "$0", "to": "held"},
                                              {"op": "transition", "interaction": "$7", "to": "queued"},
                                              {"op": "transition", "interaction": NONEXISTENT, "to": "queued"},
                                              {"op": "create"}, {"op": "create", "callId": 5}, {}, [], "create"])]
        return "batch with a broken last operation", {"operations": ops}

    def any_mutation(self, body, schema, path):
        """Anything: refused or maybe accepted."""
        r = self.rng
        body = copy.deepcopy(body)
        if isinstance(body, dict) and body and r.random() < 0.6:
            key = r.choice(list(body))
            body[key] = r.choice([None, r.choice(TEXTS), 20.0, "infinity", "9999-12-31T23:59:59Z",
                                  "0001-01-01T00:00:00Z", "2026-11-24T10:15:02.120+14:00", 2 ** 53, -0.0])
            return f"{key}={str(body[key])[:40]}", body
        return self.refusing_mutation(body, schema, path)

    def encode(self, body, refused):
        """(label, bytes) of a JSON body, sometimes malformed."""
        r = self.rng
        roll = r.random()
        text = json.dumps(body)
        if roll < 0.55:
            return "", text.encode()
        if roll < 0.65:
            return "utf-8", json.dumps(body, ensure_ascii=False, indent=r.choice([None, 1])).encode()
        if roll < 0.72:
            return "truncated", text.encode()[: r.randint(0, max(0, len(text) - 1))]
        if roll < 0.78:
            return "trailing garbage", (text + r.choice(NOISE + ["x", "{}", "]"])).encode()
        if roll < 0.83:
            depth = r.choice([100, 1000, 100000])
            return f"nested {depth}", r.choice(["[" * depth, "[" * depth + "]" * depth,
                                                 '{"a":' * depth + "1" + "}" * depth]).encode()
        if roll < 0.88:
            return "noise", "".join(r.choice(NOISE) for _ in range(r.randint(1, 8))).encode("utf-8", "surrogatepass")
        if roll < 0.91:
            return "random bytes", bytes(r.getrandbits(8) for _ in range(r.randint(1, 300)))
        if roll < 0.93:
            return "huge number", ('{"callId": 1' + "0" * r.choice([400, 5000]) + "}").encode()
        if roll < 0.95:
            return "empty", b""
        if roll < 0.96:
            return "1.1 MiB", b'{"callId": "' + b"x" * (1100 << 10) + b'"}'
        if refused:
            return "nested", ("[" * 50 + "]" * 50).encode()
        # maybe accepted by a lenient parser
        return r.choice([("bom", b"\xef\xbb\xbf" + text.encode()),
                         ("lone surrogate", text.replace('"}', '\\ud800"}', 1).encode()),
                         ("duplicate keys", text.replace("{", '{"callId": "dup", ', 1).encode()),
                         ("NaN", text.replace("}", ', "x": NaN}', 1).encode()),
                         ("nul", text.replace('"}', '\\u0000"}', 1).encode())])

    # -- requests -----------------------------------------------------------------------------
    def query(self):
        r = self.rng
        if r.random() < 0.6:
            return r.choice(JUNK_QUERIES)
        pairs = []
        for _ in range(r.randint(1, 6)):
            k = r.choice(["", "a", "queues", "limit", "queue", "token", "subscribe", "%", "%zz", "é", "+"])
            v = r.choice(["", "1", "%", "%zz", "%00", "=", "==", "é", "%C3", "x" * r.choice([1, 300]), "+",
                          ",", "sales,support", "-5"])
            pairs.append(r.choice([f"{k}={v}", k, f"={v}", f"{k}=", ""]))
        return "?" + "&".join(pairs)

    def path_for(self, template, refused):
        """(path, True when the id alone makes a write refused)."""
        r = self.rng
        if "{id}" not in template:
            return template, False
        roll = r.random()
        if roll < (0.1 if refused else 0.7):
            iid, refuses = str(r.choice(self.ctx["interactions"])), False
        elif roll < 0.75:
            iid, refuses = str(NONEXISTENT), True
        elif roll < 0.9:
            iid, refuses = r.choice(BAD_IDS), True
        else:
            iid, refuses = r.choice(NEAR_IDS), False
        return template.replace("{id}", iid), refuses

    def request(self, n, method, target, body=None, content_type="application/json", headers=None, **flags):
        h = {}
        if body is not None and content_type is not None:
            h["Content-Type"] = content_type
        h.update(headers or {})
        lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        lines += [f"{k}: {v}" for k, v in h.items()]
        if body is not None:
            lines.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + (body or b"")
        label = f"{method} {target[:80]}{'…' if len(target) > 80 else ''}"
        return HttpCase(n, label, data, method, **flags)

    def http_case(self, n, refused):
        r = self.rng
        roll = r.random()
        if roll < 0.05:
            return self.protocol_junk(n, refused)
        if roll < 0.12:
            path = r.choice(ODD_PATHS) + (self.query() if r.random() < 0.3 else "")
            method = r.choice(["GET", "GET", "POST", "HEAD"] + KNOWN_METHODS)
            body = b"{}" if method == "POST" else None
            return self.request(n, method, path, body, refused=refused, json_errors=False,
                                must_answer=method in ("GET", "POST", "HEAD"))
        method, template, schema = r.choice(self.endpoints)
        path, id_refuses = self.path_for(template, refused)
        target = path + (self.query() if r.random() < 0.35 else "")
        if roll < 0.2:
            bad = r.choice(KNOWN_METHODS + UNKNOWN_METHODS)
            body = b'{"callId": "x"}' if bad in ("PUT", "PATCH") else None
            known = bad in KNOWN_METHODS
            case = self.request(n, bad, target, body, refused=refused, must_answer=known,
                                json_errors=known and bad != "HEAD")
            case.label += " (method)"
            return case
        headers = {}
        if r.random() < 0.05:
            headers["Authorization"] = r.choice(["Bearer", "Bearer ", "Basic Zm9vOmJhcg==", "Bearer " + "x" * 3000,
                                                 "Bearer \u00e9", "bearer t"])
        if method == "GET":
            body = None if r.random() < 0.9 else b'{"ignored": true}'
            return self.request(n, method, target, body, refused=refused, headers=headers)
        ctype = "application/json" if r.random() < 0.7 else r.choice(CONTENT_TYPES)
        valid = self.valid_body(template, schema)
        if refused:
            what, body = ("", valid) if id_refuses and r.random() < 0.3 else self.refusing_mutation(valid, schema, template)
            how, data = self.encode(body, refused=True)
        else:
            roll = r.random()
            what, body = ("", valid) if roll < 0.45 else self.any_mutation(valid, schema, template)
            how, data = self.encode(body, refused=False)
        case = self.request(n, method, target, data, content_type=ctype, headers=headers, refused=refused)
        case.label += f" [{', '.join(x for x in (what, how, f'type {ctype}' if ctype != 'application/json' else '') if x)}]"
        return case

    def protocol_junk(self, n, refused):
        """Malformed HTTP: an answer (no 5xx) or a closed connection."""
        r = self.rng
        post = b"POST /api/interactions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        junk = [("garbage line", b"GARBAGE\r\n\r\n"),
                ("binary", bytes(r.getrandbits(8) for _ in range(64))),
                ("bare GET", b"GET\r\n\r\n"),
                ("no version", b"GET /healthz\r\n\r\n"),
                ("HTTP/1.0", b"GET /api/board HTTP/1.0\r\n\r\n"),
                ("no Host", b"GET /api/board HTTP/1.1\r\nConnection: close\r\n\r\n"),
                ("header 20 KB", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 20000 + b"\r\n\r\n"),
                ("300 headers", b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(300)) + b"\r\n"),
                ("header without colon", b"GET /healthz HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n"),
                ("NUL in header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n"),
                ("leading blank lines", b"\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                ("bare LF", b"GET /healthz HTTP/1.1\nHost: x\nConnection: close\n\n"),
                ("Content-Length -1", post + b"Content-Length: -1\r\n\r\n{}"),
                ("Content-Length abc", post + b"Content-Length: abc\r\n\r\n{}"),
                ("Content-Length huge", post + b"Content-Length: 99999999999999999999999\r\n\r\n{}"),
                ("two Content-Lengths", post + b"Content-Length: 2\r\nContent-Length: 5\r\n\r\n{}"),
                ("Content-Length short", post + b"Content-Length: 3\r\n\r\n{\"callId\": \"x\"}"),
                ("chunked, broken", post + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"),
                ("chunked, refused body", post + b"Transfer-Encoding: chunked\r\n\r\n2\r\n[]\r\n0\r\n\r\n"),
                ("absolute form", b"GET http://127.0.0.1/api/board HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                ("asterisk", b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                ("space in path", b"GET /api/bo ard HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                ("tab in path", b"GET /api/\tboard HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
                ("utf-8 path", "GET /api/boärd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()),
                ("pipelined", b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /api/board?= HTTP/1.1\r\nHost: x\r\n\r\n"
                              b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")]
        if not refused:
            junk.append(("chunked, valid body", post + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                         + b'%x\r\n{"callId": "fz-chunked"}\r\n0\r\n\r\n' % len(b'{"callId": "fz-chunked"}')))
        label, data = r.choice(junk)
        method = data.split(b" ", 1)[0].decode("latin-1") if data[:4] in (b"GET ", b"POST", b"OPTI") else "?"
        return HttpCase(n, f"protocol: {label}", data, method, refused, must_answer=False, json_errors=False)


def is_json_error(resp):
    try:
        error = resp.json()["error"]
        return isinstance(error["code"], str) and bool(error["code"]) and isinstance(error["message"], str)
    except (ValueError, KeyError, TypeError):
        return False


# What libwebsockets' own request parser does before the server sees a request (it cannot be
# changed from the server): a malformed percent-escape in the target is answered with lws's
# HTML 403, and a %00 in the target closes the connection without an answer. Both refuse the
# request and change nothing; the test counts them apart instead of calling them problems.
LWS_PARSER = collections.Counter()


def request_target(data):
    line = data.split(b"\r\n", 1)[0]
    parts = line.split(b" ")
    return parts[1] if len(parts) > 1 else b""


def bad_escape(target):
    return re.search(rb"%(?![0-9A-Fa-f]{2})", target) is not None or b"%00" in target


def check_http(case, resp):
    """Problems with one answer (empty: fine)."""
    if resp is None:
        return []
    problems = []
    if resp.status == 403 and bad_escape(request_target(case.data)) and b"<html>" in resp.body[:20]:
        LWS_PARSER["lws 403 for a malformed escape"] += 1
        return []
    if resp.status >= 500 and not (resp.status == 503 and is_json_error(resp)):
        problems.append(f"{resp.status}: {resp.body[:200]!r}")
    if resp.status >= 400 and case.json_errors and case.method != "HEAD" and not is_json_error(resp):
        problems.append(f"{resp.status} without a JSON error code: {resp.headers.get('content-type')} {resp.body[:200]!r}")
    if case.refused and resp.status < 400 and case.method in ("POST", "PUT", "PATCH", "DELETE"):
        problems.append(f"{resp.status}: accepted input designed to be refused: {resp.body[:200]!r}")
    return problems


def run_http(case, port):
    t0 = time.monotonic()
    try:
        resp = raw_http(port, case.data, timeout=TIMEOUT if case.must_answer else 1, head_only=case.method == "HEAD")
    except (OSError, AssertionError) as e:
        return case, None, [f"{type(e).__name__}: {e}"] if case.must_answer else []
    if resp is None and case.must_answer:
        if time.monotonic() - t0 >= TIMEOUT - 0.1:
            return case, None, [f"no answer within {TIMEOUT}s"]
        if b"%00" in request_target(case.data):
            LWS_PARSER["lws closed on %00 in the target"] += 1
            return case, None, []
        if request_target(case.data).count(b"&") > 100:
            # lws keeps a bounded table of query fragments and drops a request with more.
            LWS_PARSER["lws closed on over 100 query fragments"] += 1
            return case, None, []
        if len(case.data.split(b"\r\n\r\n", 1)[0]) < 4096:      # a longer head may be dropped
            return case, None, ["closed without an answer"]
    return case, resp, check_http(case, resp)


# -- WebSocket ------------------------------------------------------------------------------

KNOWN_TYPES = {"snapshot", "deltas", "resumed", "heartbeat", "status", "alert", "figures", "pong"}
CLOSE_CODES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 4400, 4401, 4408, 4429}


def hello(**fields):
    return json.dumps({"type": "hello", **fields})


class WsGenerator:
    def __init__(self, rng, ctx):
        self.rng, self.ctx = rng, ctx

    def case(self, n):
        r = self.rng
        kinds = [self.valid_hello, self.mutated_hello, self.mutated_hello, self.ping, self.unknown_type,
                 self.not_json, self.binary, self.huge, self.fragmented, self.bad_utf8, self.bad_frame,
                 self.control, self.junk_query, self.bad_handshake]
        return r.choice(kinds)(n)

    def text(self, s):
        return ws_frame(s)

    def valid_hello(self, n):
        r, q = self.rng, self.ctx["queues"]
        fields = {}
        for key, values in (("token", ["t", "", None, "é🙂", "a&b=c"]),
                            ("queues", [None, [], q[:1], q, ["no-such-queue"], ["é"]]),
                            ("resume", ["1.1", "0.0", "123.456", None, self.ctx["position"]])):
            if r.random() < 0.6:
                fields[key] = r.choice(values)
        return WsCase(n, f"hello {fields}", frames=[self.text(hello(**fields))], expect="snapshot")

    def mutated_hello(self, n):
        r = self.rng
        key, value = r.choice([("token", v) for v in (1, [], {}, True, 1.5)] +
                              [("queues", v) for v in ("sales", 1, [1], [[]], {"a": 1}, [None], True)] +
                              [("resume", v) for v in (12, [], {}, True, 1.5)] +
                              [("type", v) for v in ("HELLO", "hello ", "", None, 1, [], "hel\u0000lo")])
        if r.random() < 0.8:
            return WsCase(n, f"hello {key}={value!r}", frames=[self.text(hello(**{key: value}))],
                          expect="close", codes=(4400,))
        # maybe accepted: odd but well-typed values, extra fields, big but under 64 KiB
        odd = r.choice([{"token": "\u0000"}, {"token": "x" * 60000}, {"queues": [f"q{i}" for i in range(5000)]},
                        {"resume": ""}, {"resume": "x" * 1000}, {"extra": 1}, {"queues": ["a"] * 3000},
                        {"token": "t", "token2": None}, {"resume": "1.99999999999999999999999999"},
                        {"resume": "-1.-1"}, {"resume": "%00"}])
        return WsCase(n, f"hello {str(odd)[:60]}", frames=[self.text(hello(**odd))], expect="answer")

    def ping(self, n):
        if self.rng.random() < 0.5:
            return WsCase(n, "ping first", frames=[self.text('{"type":"ping"}')], expect="close", codes=(4400,))
        return WsCase(n, "hello then ping", frames=[self.text(hello(token="t")), self.text('{"type":"ping"}')],
                      expect="pong")

    def unknown_type(self, n):
        r = self.rng
        msg = json.dumps({"type": r.choice(["subscribe", "snapshot", "deltas", "pong", "heartbeat", "bye", "é"])})
        frames = [self.text(msg)] if r.random() < 0.5 else [self.text(hello()), self.text(msg)]
        return WsCase(n, f"unknown type {msg} after {len(frames) - 1} hello", frames=frames, expect="close", codes=(4400,))

    def not_json(self, n):
        r = self.rng
        text, expect = r.choice([(t, "close") for t in (
            "", "{", "}", "null", "[]", "1", '"hello"', "hello", "{'type': 'hello'}", '{"type": "hello"} x',
            '{"type": "hello",}', "[" * 30000 + "]" * 30000, '{"a":' * 10000 + "1" + "}" * 10000,
            "".join(r.choice(NOISE) for _ in range(20)))] + [('{"type": "hello", "type": 5}', "answer")])
        return WsCase(n, f"not JSON {text[:40]!r}", frames=[self.text(text)], expect=expect, codes=(4400,))

    def binary(self, n):
        payload = hello().encode() if self.rng.random() < 0.5 else bytes(self.rng.getrandbits(8) for _ in range(40))
        return WsCase(n, "binary frame", frames=[ws_frame(payload, opcode=0x2)], expect="close",
                      codes=(4400, 1003), drop_ok=True)

    def huge(self, n):
        size = self.rng.choice([64 * 1024 + 1, 100 * 1024, 1 << 20])
        if self.rng.random() < 0.3:
            padded = hello() + " " * (64 * 1024 - len(hello()))
            return WsCase(n, "hello padded to 64 KiB", frames=[self.text(padded)], expect="answer")
        return WsCase(n, f"text frame of {size} bytes", frames=[self.text("x" * size)], expect="close",
                      codes=(1009,), drop_ok=True)

    def fragmented(self, n):
        text = hello(token="t").encode()
        cut = self.rng.randint(1, len(text) - 1)
        frames = [ws_frame(text[:cut], opcode=0x1, fin=False)]
        if self.rng.random() < 0.5:
            frames.append(ws_frame(b"in between", opcode=0x9))
        frames.append(ws_frame(text[cut:], opcode=0x0, fin=True))
        return WsCase(n, f"hello in fragments at {cut}", frames=frames, expect="snapshot")

    def bad_utf8(self, n):
        return WsCase(n, "invalid UTF-8", frames=[ws_frame(b'{"type":"hello","token":"\xff\xfe"}')],
                      expect="close", codes=(1007, 4400), drop_ok=True)

    def bad_frame(self, n):
        r = self.rng
        if r.random() < 0.1:
            return WsCase(n, "frame: unmasked hello", frames=[ws_frame(hello(), mask=None)], expect="answer", drop_ok=True)
        label, frame = r.choice([
            ("reserved opcode 3", ws_frame(hello(), opcode=0x3)),
            ("reserved opcode 11", ws_frame(b"", opcode=0xB)),
            ("rsv1 set", ws_frame(hello(), rsv=4)),
            ("rsv3 set", ws_frame(hello(), rsv=1)),
            ("continuation first", ws_frame(hello(), opcode=0x0)),
            ("control frame of 200 bytes", ws_frame(b"x" * 200, opcode=0x9)),
            ("fragmented control frame", ws_frame(b"x", opcode=0x9, fin=False)),
            ("length 2^63-1", b"\x81\xff\x7f\xff\xff\xff\xff\xff\xff\xff\x01\x02\x03\x04"),
            ("length 2^64-1", b"\x81\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01\x02\x03\x04"),
            ("text after text without fin", ws_frame(b"{", fin=False) + ws_frame(b"}")),
        ])
        return WsCase(n, f"frame: {label}", frames=[frame], expect="close", codes=(1002, 1009, 4400), drop_ok=True)

    def control(self, n):
        r = self.rng
        label, frames, expect = r.choice([
            ("ping control after hello", [ws_frame(hello()), ws_frame(b"p", opcode=0x9)], "snapshot"),
            ("close 1000", [ws_frame((1000).to_bytes(2, "big") + b"bye", opcode=0x8)], "close"),
            ("close without code", [ws_frame(b"", opcode=0x8)], "close"),
            ("close 999", [ws_frame((999).to_bytes(2, "big"), opcode=0x8)], "close"),
            ("close 1 byte", [ws_frame(b"\x03", opcode=0x8)], "close"),
            ("close bad utf-8 reason", [ws_frame(b"\x03\xe8\xff", opcode=0x8)], "close"),
            ("unsolicited pong", [ws_frame(b"x", opcode=0xA), ws_frame(hello())], "snapshot"),
        ])
        return WsCase(n, label, frames=frames, expect=expect, codes=tuple(CLOSE_CODES | {1005}), drop_ok=True)

    def junk_query(self, n):
        r = self.rng
        q = r.choice(["?=", "?&&", "?%", "?%zz", "?==", "?subscribe=1&=", "?token=&queues=,,,&resume=", "?queues=%00",
                      "?" + "a" * 6000, "?token=%", "?subscribe=1&queues=" + ",".join(f"q{i}" for i in range(500)),
                      "?resume=%ff", "?subscribe=1&resume=1.1", "?subscribe", "?token=t&token=u", "?a=1&=&subscribe=1"])
        return WsCase(n, f"upgrade /live{q[:60]}", target="/live" + q, frames=[ws_frame(hello())], expect="answer")

    def bad_handshake(self, n):
        r = self.rng
        label, headers = r.choice([
            ("no key", {"Sec-WebSocket-Key": ""}),
            ("version 8", {"Sec-WebSocket-Version": "8"}),
            ("version junk", {"Sec-WebSocket-Version": "x"}),
            ("foreign origin", {"Origin": "http://evil.example"}),
            ("origin null", {"Origin": "null"}),
            ("unknown subprotocol", {"Sec-WebSocket-Protocol": "nope"}),
            ("subprotocol sightline.v1", {"Sec-WebSocket-Protocol": "sightline.v1"}),
            ("deflate offer junk", {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits=99"}),
        ])
        refused = label in ("foreign origin", "origin null")       # documented: close 1008 (or an HTTP 403)
        return WsCase(n, f"handshake: {label}", headers=headers, frames=[ws_frame(hello())],
                      expect="refuse" if refused else "answer", drop_ok=True)


def run_ws(case, port):
    """(case, outcome, problems). Expectations: snapshot (or resumed) first; pong after hello;
    close with one of case.codes (a dropped connection only when drop_ok); answer: a message, a
    close frame or an HTTP answer; refuse: an HTTP 4xx or a close before any data."""
    problems = []
    try:
        sock, answer = ws_upgrade(port, case.target, case.headers, timeout=TIMEOUT)
    except (OSError, ValueError, IndexError) as e:
        return case, ("error",), [f"upgrade failed: {e!r}"]
    try:
        if answer is None:
            if b"%00" in case.target.encode("latin-1", "replace") if isinstance(case.target, str) else b"%00" in case.target:
                LWS_PARSER["lws closed on %00 in the target"] += 1
                return case, ("nothing",), []
            if len(case.target) > 4000:
                LWS_PARSER["lws closed on a head over 4 KiB"] += 1
                return case, ("nothing",), []
            if "unknown subprotocol" in case.label or "no key" in case.label:
                # lws hangs up on an upgrade without a Sec-WebSocket-Key, or asking only for
                # subprotocols it does not serve.
                LWS_PARSER["lws closed on an upgrade it cannot serve"] += 1
                return case, ("nothing",), []
            return case, ("nothing",), ["no answer to the upgrade"]
        if answer.status != 101:
            if answer.status >= 500:
                problems.append(f"upgrade answered {answer.status}")
            elif case.expect not in ("refuse", "answer"):
                problems.append(f"upgrade refused with {answer.status}")
            return case, ("http",), problems
        for frame in case.frames:
            try:
                sock.sendall(frame)
            except OSError:
                break
        deadline = time.monotonic() + TIMEOUT
        types, closed = [], None
        while True:
            try:
                frame = read_ws_frame(sock, deadline)
            except OSError:
                frame = None
            if frame is None:
                closed = "dropped" if time.monotonic() < deadline else None
                break
            opcode, payload = frame
            if opcode == 0x8:
                closed = close_code(payload) or 1005
                if closed not in CLOSE_CODES | {1005}:
                    problems.append(f"close code {closed}")
                break
            if opcode in (0x9, 0xA):
                continue
            try:
                msg = json.loads(payload)
                types.append(msg["type"])
                if msg["type"] not in KNOWN_TYPES:
                    problems.append(f"unknown message type {msg['type']!r}")
            except (ValueError, KeyError, TypeError):
                problems.append(f"not a JSON message: {payload[:100]!r}")
            if case.expect in ("snapshot", "answer", "refuse") or "pong" in types:
                break
        if closed == "dropped" and not case.drop_ok:
            problems.append("dropped without a close frame")
        if case.expect == "snapshot" and (not types or types[0] not in ("snapshot", "resumed")):
            problems.append(f"no snapshot (closed: {closed})")
        elif case.expect == "pong" and "pong" not in types:
            problems.append(f"no pong (got {types}, closed: {closed})")
        elif case.expect == "close":
            if closed is None and "2^6" in case.label and not types:
                # lws waits for the announced payload before it hands over any of it; the idle
                # policy (ping after 20 s, hang up after 45 s) ends such a connection.
                LWS_PARSER["lws waits for a giant frame's payload"] += 1
            elif closed is None:
                problems.append(f"not closed (got {types})")
            elif closed != "dropped" and closed not in case.codes:
                problems.append(f"closed with {closed}, expected {case.codes}")
        elif case.expect == "refuse" and types:
            problems.append(f"a bad handshake was served: {types}")
        elif case.expect == "answer" and not types and closed is None:
            problems.append("neither a message nor a close")
        return case, ("ws", tuple(types[:1]), closed), problems
    finally:
        sock.close()


# -- the test -------------------------------------------------------------------------------

LOST = ("no answer", "closed without", "ConnectionRefused", "ConnectionReset", "upgrade failed", "dropped",
        "AssertionError: body cut short", "AssertionError: chunked body cut short")


def lost(problems):
    return any(p.startswith(LOST) for p in problems)


class Run:
    """Runs batches concurrently and checks the server after each. After an exit it restarts the
    server and replays the cases that lost their connection one at a time, to name the one that
    kills it."""

    def __init__(self, server):
        self.server = server
        self.problems = []          # (kind, case, text)
        self.exits = []
        self.outcomes = collections.Counter()
        self.ran = collections.Counter()
        self.restarts_seconds = 0.0
        self.stopped = False        # after too many exits: no more cases

    def batch(self, kind, cases, runner, workers=8):
        if self.stopped:
            return
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            results = list(pool.map(lambda c: runner(c, self.server.port), cases))
        if self.server.exited(within=0.5 if any(lost(p) for _, _, p in results) else 0):
            summary = self.server.crash_summary()
            self.restart()
            replay = [c for c, _, p in results if lost(p)]
            results = [r for r in results if not lost(r[2])]
            named = 0
            for case in replay:
                result = runner(case, self.server.port)
                results.append(result)
                if lost(result[2]) and self.server.exited(within=0.5):
                    named += 1
                    self.exited(f"{kind} #{case.n} {case.label[:160]}: {self.server.crash_summary()}")
            if not named:
                self.exited(f"{kind} cases #{cases[0].n}..#{cases[-1].n} (not one alone): {summary}")
        for case, outcome, problems in results:
            self.ran[kind] += 1
            self.outcomes[getattr(outcome, "status", None) or (outcome[0] if outcome else "no answer")] += 1
            self.problems += [(kind, case, p) for p in problems]
        status, seconds = self.server.timed_health(timeout=5)
        if status != 200 or seconds >= HEALTH_BOUND:
            self.problems.append((kind, cases[-1], f"/healthz after the batch: {status} in {seconds:.2f}s"))

    def exited(self, text):
        self.exits.append(text)
        self.stopped = len(self.exits) >= 30
        self.restart()

    def restart(self):
        if self.server.alive():
            return
        t0 = time.monotonic()
        self.server.start_server()
        self.restarts_seconds += time.monotonic() - t0

    def report(self):
        lines = [f"seed {SEED} (SIGHTLINE_FUZZ_SEED); the server exited {len(self.exits)} times"
                 + (" (stopped there)" if self.stopped else "")] + self.exits[:15]
        groups = collections.defaultdict(list)
        for kind, case, text in self.problems:
            groups[(kind, "".join("#" if ch.isdigit() else ch for ch in text[:45]))].append((case, text))
        for (kind, _), items in sorted(groups.items(), key=lambda g: -len(g[1]))[:30]:
            case, text = items[0]
            lines.append(f"{kind} x{len(items)}: {text[:200]} -- e.g. #{case.n} {case.label[:140]}")
        lines.append(f"{len(self.problems)} problems in {sum(self.ran.values())} cases")
        return "\n".join(lines)


@pytest.mark.slow
def test_fuzzed_http_and_websocket_input_never_breaks_the_server(isolated_server, capsys):
    server = isolated_server()
    rng = random.Random(SEED)
    tag = f"{rng.getrandbits(24):06x}"
    ctx = {"tag": tag, "queues": [f"fzq{tag}{i}" for i in range(3)], "agents": [f"fza{tag}{i}" for i in range(3)],
           "interactions": [], "position": "1.1"}
    for q in ctx["queues"]:
        server.add_queue(q)
    for a in ctx["agents"]:
        server.add_agent(a, queues=ctx["queues"])
    for i in range(6):
        ctx["interactions"].append(server.create(f"fz-{tag}-seed-{i}"))
    ctx["position"] = server.board()["position"]
    run = Run(server)
    started = time.monotonic()
    http = Generator(rng, ctx)
    mixed = HTTP_CASES // 2
    # Phase 1: valid, mutated and garbage input; accepted writes are fine.
    for start in range(0, mixed, 200):
        run.batch("http", [http.http_case(n, refused=False) for n in range(start, min(mixed, start + 200))], run_http)
    # Leave a small board (snapshots stay small), then nothing may change.
    with psycopg.connect(isolated_server.database, autocommit=True) as conn:
        conn.execute("""do $$ declare r record; begin
            for r in select id from sightline.interactions where state <> 'completed' loop
                begin perform sightline.transition(r.id, 'completed'); exception when others then null; end;
            end loop; end $$""")
    time.sleep(0.5)
    ctx["position"] = server.board()["position"]
    before = db_digest(isolated_server.database)
    mixed_seconds = time.monotonic() - started
    # Phase 2: only input designed to be refused, and every WebSocket case (none of them writes).
    for start in range(mixed, HTTP_CASES, 200):
        run.batch("http", [http.http_case(n, refused=True) for n in range(start, min(HTTP_CASES, start + 200))], run_http)
    refused_seconds = time.monotonic() - started - mixed_seconds
    ws = WsGenerator(rng, ctx)
    for start in range(0, WS_CASES, 100):
        run.batch("ws", [ws.case(n) for n in range(start, min(WS_CASES, start + 100))], run_ws)
    after = db_digest(isolated_server.database)
    elapsed = time.monotonic() - started
    with capsys.disabled():
        print(f"\nfuzz: ran {run.ran['http']} of {HTTP_CASES} HTTP cases ({mixed} may write, {HTTP_CASES - mixed} "
              f"designed to be refused) and {run.ran['ws']} of {WS_CASES} WebSocket cases, seed {SEED}, {elapsed:.1f}s "
              f"(mixed {mixed_seconds:.1f}s, refused {refused_seconds:.1f}s, WebSocket "
              f"{elapsed - mixed_seconds - refused_seconds:.1f}s; {len(run.exits)} restarts: {run.restarts_seconds:.1f}s); "
              f"outcomes {dict(run.outcomes.most_common(16))}; refused by lws's own parser: {dict(LWS_PARSER)}")
    changed = [] if before == after else [f"input designed to be refused changed the database ({before} -> {after})"]
    assert not run.exits and not run.problems and not changed, "\n".join(changed + [run.report()])

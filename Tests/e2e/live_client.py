"""A real WebSocket dashboard client for the tests: applies snapshot and deltas as
docs/protocol.md says and records everything it got."""
import json
import threading
import time

from websockets.sync.client import connect


class LiveClient:
    def __init__(self, url, queues=None, resume=None, token="test", origin=None, hello=True):
        headers = {"Origin": origin} if origin else None
        self.ws = connect(url, additional_headers=headers, max_size=64 * 1024 * 1024, open_timeout=10)
        self.board = {}
        self.position = None
        self.positions = []          # every delta position applied, in order
        self.transitions = []        # every transition applied, in order
        self.presence = []           # every presence delta applied, in order
        self.agents = {}             # agent id -> presence, from the snapshot and presence deltas
        self.figures = None          # the FIGURES object, kept up to date by figures messages
        self.messages = []           # types received
        self.arrivals = []           # (time.monotonic(), type) of every message
        self.snapshots = 0
        self.resumed = False
        self.closed = None           # (code, reason)
        self.error = None            # what ended the background reader
        self.database = "up"
        self.lock = threading.Lock()
        self.thread = None
        if hello:
            msg = {"type": "hello", "token": token, "queues": queues}
            if resume:
                msg["resume"] = resume
            self.ws.send(json.dumps(msg))

    # -- receiving ---------------------------------------------------------------------------
    def apply(self, msg):
        t = msg["type"]
        self.messages.append(t)
        if t == "snapshot":
            self.snapshots += 1
            self.board = {i["id"]: i for i in msg["board"]["interactions"]}
            self.agents = {a["id"]: a.get("presence") for a in msg["board"]["agents"]}
            self.figures = msg["board"].get("figures")
            self.position = msg["position"]
            self.database = msg.get("database", "up")
        elif t == "resumed":
            self.resumed = True
            self.position = msg["position"]
        elif t == "deltas":
            for d in msg["deltas"]:
                if "presence" in d:
                    self.positions.append(d["position"])
                    self.presence.append(d)
                    self.agents[d["agent"]] = d["agentPresence"]
                    continue
                tr = d["transition"]
                self.positions.append(d["position"])
                self.transitions.append(tr)
                if d["interaction"] is None:
                    self.board.pop(tr["interaction"], None)
                else:
                    self.board[tr["interaction"]] = d["interaction"]
            self.position = msg["position"]
        elif t == "figures":
            f = msg["figures"]
            if msg["complete"] or self.figures is None:
                self.figures = f
            else:
                self.figures = {**f, "queues": {**self.figures["queues"], **f["queues"]},
                                "agents": {**self.figures["agents"], **f["agents"]}}
        elif t == "heartbeat":
            self.position = msg["position"]
            self.database = msg.get("database", "up")
        elif t == "status":
            self.database = msg["database"]

    def recv(self, timeout=5):
        raw = self.ws.recv(timeout=timeout)
        msg = json.loads(raw)
        with self.lock:
            self.arrivals.append((time.monotonic(), msg.get("type")))
            self.apply(msg)
        return msg

    def recv_until(self, predicate, timeout=10):
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                msg = self.recv(timeout=max(0.05, deadline - time.time()))
            except TimeoutError:
                break
            if predicate(msg):
                return msg
        raise AssertionError(f"condition not met within {timeout}s; got {self.messages[-10:]}")

    def run_in_background(self):
        def loop():
            try:
                while True:
                    self.recv(timeout=None)
            except Exception as e:  # closed
                code = getattr(getattr(e, "rcvd", None), "code", None)
                reason = getattr(getattr(e, "rcvd", None), "reason", None)
                self.error = repr(e)[:300]
                self.closed = (code, reason)
        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()
        return self

    def wait_for(self, predicate, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                if predicate(self):
                    return True
            time.sleep(0.02)
        return False

    def close(self):
        try:
            self.ws.close()
        except Exception:
            pass
        if self.thread:
            self.thread.join(timeout=5)


def db_board(sightline):
    """The live interactions as the database has them."""
    rows = sightline.db_query(
        "select id, state::text, queue_id, agent_id, held_by, version from sightline.interactions where state <> 'completed'")
    return {r[0]: {"state": r[1], "queue": r[2], "agent": r[3], "heldBy": r[4], "version": r[5]} for r in rows}


def client_view(board):
    return {i: {"state": v["state"], "queue": v["queue"], "agent": v["agent"], "heldBy": v["heldBy"], "version": v["version"]}
            for i, v in board.items()}

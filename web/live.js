// The live connection shared by the board and the wallboard: hello, snapshot, deltas,
// resume with the last applied position, heartbeat watchdog, reconnect with backoff.
// Protocol: docs/protocol.md.

export function tokenFromPage() {
  const fromUrl = new URLSearchParams(location.search).get("token");
  if (fromUrl) localStorage.setItem("sightline.token", fromUrl);
  return fromUrl || localStorage.getItem("sightline.token") || "demo";
}

export class Live {
  constructor({ queues = null, token = tokenFromPage() } = {}) {
    this.queues = queues;
    this.token = token;
    this.board = { queues: new Map(), agents: new Map(), interactions: new Map(), depth: {} };
    this.position = null;
    this.state = "connecting";      // connecting | live | reconnecting | stale
    this.attempt = 0;
    this.database = "up";
    this.dataTime = null;           // server time of the newest data we hold
    this.serverOffset = 0;          // server clock - our clock, ms
    this.listeners = new Set();
    this.lastHeard = Date.now();
    this.connect();
    setInterval(() => this.watchdog(), 1000);
  }

  on(fn) { this.listeners.add(fn); }
  emit(kind, detail) { for (const fn of this.listeners) fn(kind, detail); }
  now() { return Date.now() + this.serverOffset; }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/live`);
    this.ws = ws;
    ws.onopen = () => {
      this.lastHeard = Date.now();
      const hello = { type: "hello", token: this.token, queues: this.queues };
      if (this.position) hello.resume = this.position;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      this.lastHeard = Date.now();
      let msg;
      try { msg = JSON.parse(event.data); } catch { return; }
      this.handle(msg);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (event.code === 4401) { this.setState("refused", "token refused"); return; }
      this.scheduleReconnect();
    };
    ws.onerror = () => {};
  }

  scheduleReconnect() {
    this.attempt += 1;
    this.setState("reconnecting");
    const delay = Math.min(10000, 500 * 2 ** (this.attempt - 1)) * (0.75 + Math.random() / 2);
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  watchdog() {
    if (this.ws && this.ws.readyState === WebSocket.OPEN && Date.now() - this.lastHeard > 15000) {
      const ws = this.ws;
      this.ws = null;
      ws.close();
      this.scheduleReconnect();
    }
    this.emit("tick");
  }

  setState(state, why) {
    this.state = state;
    this.emit("status", { state, why });
  }

  serverTime(text) {
    if (!text) return;
    this.serverOffset = Date.parse(text) - Date.now();
    this.dataTime = Date.parse(text);
  }

  handle(msg) {
    switch (msg.type) {
      case "snapshot": {
        const b = msg.board;
        this.board = {
          queues: new Map(b.queues.map((q) => [q.id, q])),
          agents: new Map(b.agents.map((a) => [a.id, a])),
          interactions: new Map(b.interactions.map((i) => [i.id, i])),
          depth: b.depth || {},
          figures: b.figures || null,
          presenceReasons: b.presenceReasons || [],
        };
        this.position = msg.position;
        this.database = msg.database;
        this.serverTime(msg.serverTime);
        this.attempt = 0;
        this.setState(msg.database === "up" ? "live" : "stale");
        this.emit("board", { snapshot: true });
        for (const a of msg.alerts || []) this.emit("alert", a);
        break;
      }
      case "figures": {
        // Entries present replace ours; a complete message replaces all (docs/protocol.md).
        const f = msg.figures;
        const prev = this.board.figures;
        if (msg.complete || !prev) this.board.figures = f;
        else this.board.figures = { ...f, queues: { ...prev.queues, ...f.queues }, agents: { ...prev.agents, ...f.agents } };
        this.emit("board", { figures: true });
        break;
      }
      case "resumed":
        this.attempt = 0;
        this.setState(this.database === "up" ? "live" : "stale");
        break;
      case "deltas": {
        const touched = [];
        for (const d of msg.deltas) {
          if (d.presence) {
            const a = this.board.agents.get(d.agent);
            if (a) a.presence = d.agentPresence;
            continue;
          }
          const t = d.transition;
          if (d.interaction) this.board.interactions.set(t.interaction, d.interaction);
          else this.board.interactions.delete(t.interaction);
          for (const [id, today] of Object.entries(d.queueToday || {})) {
            const q = this.board.queues.get(id);
            if (q) q.today = today;
          }
          for (const [id, today] of Object.entries(d.agentToday || {})) {
            const a = this.board.agents.get(id);
            if (a) a.today = today;
          }
          touched.push(t);
        }
        this.position = msg.position;
        this.dataTime = this.now();
        this.emit("board", { transitions: touched });
        break;
      }
      case "heartbeat":
        this.position = msg.position;
        this.serverTime(msg.serverTime);
        if (msg.database !== this.database) {
          this.database = msg.database;
          this.setState(msg.database === "up" ? "live" : "stale");
        }
        break;
      case "status":
        this.database = msg.database;
        this.setState(msg.database === "up" ? "live" : "stale");
        if (msg.database === "down") this.dataTime = Date.parse(msg.since);
        break;
      case "alert":
        this.emit("alert", msg.alert);
        break;
    }
  }

  /// "live", "reconnecting (attempt 3)", "stale, data 42 s old"
  describe() {
    const age = this.dataTime ? Math.max(0, Math.round((this.now() - this.dataTime) / 1000)) : 0;
    if (this.state === "reconnecting") return `reconnecting (attempt ${this.attempt}), data ${age} s old`;
    if (this.state === "stale") return `stale: database unreachable, data ${age} s old`;
    if (this.state === "refused") return "refused: check the token";
    if (this.state === "connecting") return "connecting";
    return "live";
  }
}

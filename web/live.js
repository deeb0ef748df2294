// The transport shared by the board and the wallboard: the WebSocket, hello, resume with the last
// applied position, heartbeat watchdog, reconnect with backoff. It keeps no board: every parsed
// message goes to onMessage (the page feeds it to the reducer in state.js), every change of the
// connection to onConnection. Protocol: docs/protocol.md.

// The token comes in the URL's fragment (#token=...), which browsers never send to a server,
// so it reaches no log; the page keeps it in localStorage and takes it out of the address bar.
// It goes to the server only inside the first WebSocket message (hello). Without one (a server
// with no token configured serves this machine only) the hello carries none.
export function tokenFromPage() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const fromUrl = fragment.get("token");
  if (fromUrl) {
    localStorage.setItem("sightline.token", fromUrl);
    fragment.delete("token");
    const rest = fragment.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }
  return fromUrl || localStorage.getItem("sightline.token") || null;
}

/// The Authorization header of the page's HTTP requests: none without a token.
export function authHeaders() {
  const token = tokenFromPage();
  return token ? { Authorization: `Bearer ${token}` } : {};
}

export class Live {
  /// queues: ids to watch (null: all); position(): the last applied position, for resume.
  constructor({ queues = null, token = tokenFromPage(), position = () => null, onMessage, onConnection }) {
    Object.assign(this, { queues, token, position, onMessage, onConnection });
    this.attempt = 0;
    this.lastHeard = Date.now();
    this.connect();
    setInterval(() => this.watchdog(), 1000);
    // A new #token=... on the open page (the address edited, a link followed) starts over with it.
    addEventListener("hashchange", () => {
      if (new URLSearchParams(location.hash.slice(1)).has("token")) location.reload();
    });
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(`${scheme}//${location.host}/live`);
    this.ws = ws;
    ws.onopen = () => {
      this.lastHeard = Date.now();
      const hello = { type: "hello", token: this.token, queues: this.queues };
      const position = this.position();
      if (position) hello.resume = position;
      ws.send(JSON.stringify(hello));
    };
    ws.onmessage = (event) => {
      this.lastHeard = Date.now();
      let msg;
      try { msg = JSON.parse(event.data); } catch { return; }
      if (!msg || typeof msg !== "object") return;
      if (msg.type === "snapshot" || msg.type === "resumed") this.attempt = 0;
      this.onMessage(msg);
    };
    ws.onclose = (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (event.code === 4401 || event.code === 4403) {
        this.onConnection({ state: "refused", attempt: this.attempt, why: `${event.reason || "token refused"}, check the token` });
        return;
      }
      this.scheduleReconnect();
    };
    ws.onerror = () => {};
  }

  scheduleReconnect() {
    this.attempt += 1;
    this.onConnection({ state: "reconnecting", attempt: this.attempt });
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
  }
}

// Wallboard for a TV: every selected queue on screen, sized to fit; when they cannot all fit at
// a readable size, pages rotate. Worst queues first (or by name). Dimmed while the data is stale.
// With a wallboard token the server sends counts per queue only (snapshot "view": "wallboard",
// then `wallboard` messages; no call, no agent); with a supervisor or admin token, or a server
// with no tokens, it sends the whole board and the same figures are counted here (derive.js).
// URL parameters:
//   queues=sales,support      only these queues (default: all)
//   sort=severity|name        tile order (default severity: alarm, warning, then longest wait)
//   rotate=15                 seconds per page when the queues need more than one (default 15)
//   #token=...                access token, in the fragment (remembered by the browser)
import { Live } from "/live.js";
import { connectionLevel, describeConnection, initialState, reduce, serverNow } from "/state.js";
import { LEVEL_ICON, LEVEL_TEXT, count, derive, duration, percent, sortQueues } from "/derive.js";
import { el, frameScheduler, setAttr, setClass, setText, syncKeyed } from "/dom.js";

const params = new URLSearchParams(location.search);
const only = params.get("queues")?.split(",").filter(Boolean) || null;
const sortBy = params.get("sort") === "name" ? "name" : "severity";
const rotate = Math.max(3, Number(params.get("rotate")) || 15);
const MIN_W = 300, MIN_H = 200;      // smallest tile still readable across a room (CSS px)

let state = initialState();
const schedule = frameScheduler(render);
const live = new Live({
  queues: only,
  position: () => state.position,
  onMessage: (msg) => { state = reduce(state, { ...msg, at: Date.now() }); schedule(); },
  onConnection: (c) => { state = reduce(state, { type: "connection", ...c, at: Date.now() }); schedule(); },
});
setInterval(schedule, 1000);
let page = 0;
setInterval(() => { page += 1; schedule(); }, rotate * 1000);
addEventListener("resize", schedule);

/// Columns and rows that fit n tiles in w x h with the largest tiles; perPage < n when even the
/// best layout would make tiles smaller than MIN_W x MIN_H.
export function layout(n, w, h, gap) {
  let best = null;
  for (let cols = 1; cols <= Math.max(1, n); cols++) {
    const rows = Math.ceil(n / cols);
    const tw = (w - gap * (cols - 1)) / cols, th = (h - gap * (rows - 1)) / rows;
    const score = Math.min(tw / MIN_W, th / MIN_H);
    if (!best || score > best.score) best = { cols, rows, score, perPage: n };
  }
  if (best.score >= 1 || n <= 1) return best;
  const cols = Math.max(1, Math.floor((w + gap) / (MIN_W + gap)));
  const rows = Math.max(1, Math.floor((h + gap) / (MIN_H + gap)));
  return { cols, rows, score: 1, perPage: cols * rows };
}

function cell(label, testid) {
  const b = el("b", { "data-testid": testid });
  return { node: el("div", { class: "wall-fig" }, [el("span", { class: "wall-label", text: label }), b]), b };
}

function build() {
  const t = {};
  t.name = el("h2", { "data-testid": "wall-name" });
  t.badge = el("span", { class: "badge", "data-testid": "wall-level" });
  t.waiting = el("b", { "data-testid": "wall-waiting" });
  t.longest = cell("longest", "wall-longest");
  t.sl = cell("SL", "wall-sl");
  t.abandon = cell("abandoned", "wall-abandoned");
  t.asa = cell("ASA", "wall-asa");
  t.ready = cell("ready", "wall-ready");
  t.onCall = cell("handling", "wall-oncall");
  t.talking = cell("talking", "wall-talking");
  t.onHold = cell("on hold", "wall-onhold");
  t.agents = cell("agents", "wall-agents");
  t.node = el("section", { class: "wall-tile", "data-testid": "wallboard-tile" }, [
    el("div", { class: "wall-head" }, [t.name, t.badge]),
    el("div", { class: "wall-big" }, [t.waiting, el("span", { class: "wall-label", text: " waiting" })]),
    el("div", { class: "wall-row" }, [t.longest.node, t.sl.node, t.abandon.node]),
    el("div", { class: "wall-row" }, [t.talking.node, t.onHold.node, t.asa.node]),
    el("div", { class: "wall-row" }, [t.agents.node, t.ready.node, t.onCall.node]),
  ]);
  t.node._t = t;
  return t.node;
}

function update(node, s) {
  const t = node._t;
  node.dataset.queue = s.id;
  setClass(node, `wall-tile level-${s.level}`);
  setAttr(node, "data-level", s.level);
  setText(t.name, s.name);
  setAttr(t.name, "title", s.name);
  setText(t.badge, `${LEVEL_ICON.get(s.level)} ${LEVEL_TEXT.get(s.level)}`);
  setClass(t.badge, `badge level-${s.level}`);
  setText(t.waiting, s.waitingCount);
  setText(t.longest.b, duration(s.longest));
  setText(t.sl.b, `${percent(s.serviceLevel)}${s.serviceLevel != null && s.serviceLevelTarget != null && s.serviceLevel < s.serviceLevelTarget ? " ▼" : ""}`);
  setText(t.abandon.b, percent(s.abandon));
  setText(t.asa.b, s.asa == null ? "—" : duration(s.asa));
  // Without presence from the server an agent with no interaction is "no call", never "ready".
  setText(t.ready.node.firstChild, s.presenceKnown ? "ready" : "no call");
  setText(t.ready.b, count(s.presenceKnown ? s.ready : s.free));
  setText(t.onCall.b, count(s.here));
  setText(t.talking.b, count(s.talking));
  setText(t.onHold.b, count(s.onHold));
  setText(t.agents.b, count(s.agents));
}

const tiles = new Map();
function render() {
  const now = serverNow(state, Date.now());
  const view = derive(state, now);
  let list = sortQueues(view.queues.values(), sortBy);
  if (only) list = list.filter((s) => only.includes(s.id));
  const wall = document.getElementById("wall");
  const style = getComputedStyle(wall);
  const gap = parseFloat(style.columnGap) || 16;
  const w = wall.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
  const h = wall.clientHeight - parseFloat(style.paddingTop) - parseFloat(style.paddingBottom);
  const fit = layout(list.length, w, h, gap);
  const pages = Math.max(1, Math.ceil(list.length / fit.perPage));
  const p = page % pages;
  const shown = list.slice(p * fit.perPage, (p + 1) * fit.perPage);
  const rows = Math.max(1, Math.ceil(shown.length / fit.cols));
  wall.style.gridTemplateColumns = `repeat(${fit.cols}, minmax(0, 1fr))`;
  wall.style.gridTemplateRows = `repeat(${rows}, minmax(0, 1fr))`;
  const tileH = (h - gap * (rows - 1)) / rows, tileW = (w - gap * (fit.cols - 1)) / fit.cols;
  wall.style.setProperty("--u", `${Math.max(6, Math.min(tileH / 21.5, tileW / 24)).toFixed(1)}px`);
  syncKeyed(wall, tiles, shown, (s) => s.id, build, update);
  setText(document.getElementById("wall-page"), pages > 1 ? `page ${p + 1} of ${pages} · ${list.length} queues` : `${list.length} queue${list.length === 1 ? "" : "s"}`);
  setText(document.getElementById("wall-clock"), new Date(now).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false }));
  const status = document.getElementById("status");
  setText(status, describeConnection(state, Date.now()));
  setClass(status, `status st-${connectionLevel(state)}`);
  document.body.classList.toggle("stale", connectionLevel(state) !== "live");
}

window.sightline = { get state() { return state; }, live };
render();

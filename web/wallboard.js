// Wallboard for a TV: big tiles, colour thresholds, no input needed.
// URL parameters:
//   queues=sales,support      only these queues (default: all)
//   groups=sales,support|billing,vip   rotate between these groups of queues
//   rotate=15                 seconds per group (default 15)
//   token=...                 access token (remembered by the browser)
import { Live } from "/live.js";
import { duration, held, percent, queueSummary } from "/derive.js";

const params = new URLSearchParams(location.search);
const only = params.get("queues")?.split(",").filter(Boolean) || null;
const groups = params.get("groups")?.split("|").map((g) => g.split(",").filter(Boolean)).filter((g) => g.length) || null;
const rotate = Math.max(3, Number(params.get("rotate")) || 15);
const live = new Live({ queues: only || (groups ? [...new Set(groups.flat())] : null) });
let group = 0;
if (groups && groups.length > 1) setInterval(() => { group = (group + 1) % groups.length; render(); }, rotate * 1000);

function render() {
  const now = live.now();
  let ids = [...live.board.queues.keys()].sort();
  if (groups) ids = ids.filter((id) => groups[group].includes(id));
  const cols = ids.length <= 2 ? ids.length || 1 : ids.length <= 4 ? 2 : ids.length <= 9 ? 3 : 4;
  const wall = document.getElementById("wall");
  wall.style.gridTemplateColumns = `repeat(${cols}, 1fr)`;
  const heldBy = held(live.board);
  wall.innerHTML = ids.map((id) => {
    const s = queueSummary(live.board, id, now);
    const holds = heldBy.filter((i) => i.queue === id);
    const longHold = holds.length ? (now - Date.parse(holds[0].stateSince)) / 1000 : 0;
    const holdBad = holds.length && longHold >= s.queue.thresholds.holdAlarmSeconds;
    const name = s.queue.name.replace(/[&<>"']/g, "");
    return `<section class="wall-tile level-${s.level}" data-testid="wallboard-tile" data-queue="${id.replace(/"/g, "")}">
      <h2>${name}</h2>
      <div class="wall-big">${s.waiting}<small> waiting</small></div>
      <div class="wall-row"><span>longest <b class="${s.level === "ok" ? "" : s.level === "warn" ? "warn" : "bad"}">${duration(s.longest)}</b></span><span>SL <b class="${s.serviceLevelOk ? "" : "bad"}">${percent(s.serviceLevel)}</b></span></div>
      <div class="wall-row"><span>available <b>${s.available}</b></span><span>on call <b>${s.onCall}</b></span><span>on hold <b class="${holdBad ? "bad" : ""}">${holds.length}</b></span></div>
    </section>`;
  }).join("");
  document.getElementById("wall-title").textContent = groups && groups.length > 1 ? `Sightline · ${group + 1}/${groups.length}` : "Sightline";
  document.getElementById("wall-clock").textContent = new Date(now).toLocaleTimeString();
  const status = document.getElementById("status");
  status.textContent = live.describe();
  status.className = `status st-${live.state}`;
}

live.on(() => render());
render();

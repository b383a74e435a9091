// Dataset exports (leads only): start one, watch its progress (live job events, with polling while the socket is
// down), and download the finished archives.
import { makeApi } from "./api.js";
import { connectLive } from "./live.js";
import { el } from "./lib/dom.js";

const card = document.getElementById("exports");
const button = document.getElementById("export-start");
const status = document.getElementById("export-status");
const table = document.getElementById("export-list");
const body = table.querySelector("tbody");
const empty = document.getElementById("export-empty");
const api = makeApi(document.querySelector("input[name=csrfmiddlewaretoken]").value);
const listUrl = card.dataset.exportsUrl;
const ACTIVE = new Set(["queued", "running"]);
const POLL_MS = { live: 5000, offline: 800 };

const exports = new Map(); // id -> the export as the API (or the latest live event) describes it
let live = false;
let timer = null;

function formatBytes(n) {
  if (n === null || n === undefined) return "";
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

function count(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function progressText(item) {
  if (item.status === "queued") return "waiting for the worker…";
  if (item.status === "failed") return item.error || "failed";
  const detail = item.detail || {};
  const parts = [];
  if (item.status === "running" && detail.phase) parts.push(detail.phase);
  if (item.status === "running" && detail.total) parts.push(`${detail.done ?? 0} of ${detail.total} steps`);
  if (item.status === "succeeded" && item.counts) {
    parts.push(`${count(item.counts.current_labels, "current label")}, ${count(item.counts.label_versions, "version")}`);
    parts.push(count(item.counts.files, "file"));
  }
  return parts.join(" · ");
}

function row(item) {
  const percent = Math.round(Math.min(1, Math.max(0, item.progress || 0)) * 100);
  const bar = el("progress", { max: "100", value: String(percent), "aria-label": `Export ${item.id}` });
  const link =
    item.status === "succeeded" && item.download_url
      ? el("a", { class: "download", href: item.download_url, download: item.filename || "", text: "Download" })
      : el("span", { class: "muted", text: item.status === "succeeded" ? "archive gone" : "" });
  const created = item.created_at ? new Date(item.created_at).toLocaleString() : "";
  return el(
    "tr",
    { "data-export": item.id, "data-status": item.status, class: item.status },
    el("td", { class: "num", text: `#${item.id}` }),
    el("td", { text: created }),
    el("td", { text: item.created_by || "" }),
    el(
      "td",
      {},
      el("span", { class: "export-state", text: item.status }),
      " ",
      bar,
      el("span", { class: "export-detail muted", text: ` ${progressText(item)}` }),
    ),
    el("td", { class: "num", text: formatBytes(item.bytes) }),
    el("td", {}, link),
  );
}

function render() {
  const items = [...exports.values()].sort((a, b) => b.id - a.id);
  body.replaceChildren(...items.map(row));
  table.hidden = items.length === 0;
  empty.hidden = items.length > 0;
  schedule();
}

function remember(item) {
  exports.set(item.id, { ...(exports.get(item.id) || {}), ...item });
}

async function load() {
  const page = await api.get(`${listUrl}?limit=20`);
  exports.clear();
  for (const item of page.results || page) remember(item);
  render();
}

// While an export is queued or running its state is fetched now and then: often while the live socket is down,
// seldom while it is up (as a safety net for an event missed across a reconnect).
function schedule() {
  if (timer !== null) clearTimeout(timer);
  timer = null;
  if (![...exports.values()].some((item) => ACTIVE.has(item.status))) return;
  timer = setTimeout(() => {
    timer = null;
    load().catch((error) => {
      status.textContent = `Could not refresh the exports: ${error.message}`;
      schedule();
    });
  }, live ? POLL_MS.live : POLL_MS.offline);
}

function onEvent(event) {
  if (event.event !== "job" || event.kind !== "export") return;
  if (event.status === "succeeded" || !exports.has(event.job)) {
    load().catch(() => schedule()); // the download link, size and counts come with the export itself
    return;
  }
  remember({ id: event.job, status: event.status, progress: event.progress, detail: event.detail, error: event.error });
  render();
}

function onState(state, { reconnected = false } = {}) {
  live = state === "open";
  card.dataset.live = state;
  if (live && reconnected) load().catch(() => schedule());
  else schedule();
}

button.addEventListener("click", async () => {
  button.disabled = true;
  status.textContent = "Queuing an export…";
  try {
    const job = await api.post(listUrl, {});
    remember(job);
    render();
    status.textContent = `Export #${job.id} queued.`;
  } catch (error) {
    status.textContent = `Not started: ${error.message}`; // 409: one is already queued or running
  } finally {
    button.disabled = false;
  }
});

connectLive(card.dataset.liveUrl, { onEvent, onState });
load()
  .catch((error) => {
    status.textContent = `Could not load the exports: ${error.message}`;
  })
  .finally(() => {
    card.dataset.ready = "true"; // for tests: the listeners above are in place
  });

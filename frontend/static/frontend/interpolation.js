// Frame interpolation (leads): train a network on the project's cine runs, follow the job (live job events, with
// polling while the socket is down), and read the held-out evaluation beside the baselines and the paper.
import { makeApi } from "./api.js";
import { connectLive } from "./live.js";
import { el } from "./lib/dom.js";

const card = document.getElementById("interpolation");
const button = document.getElementById("interpolation-start");
const status = document.getElementById("interpolation-status");
const runsLine = document.getElementById("interpolation-runs");
const stepsInput = document.getElementById("interpolation-steps");
const jobLine = document.getElementById("interpolation-job");
const bar = jobLine.querySelector("progress");
const jobDetail = jobLine.querySelector(".interpolation-detail");
const result = document.getElementById("interpolation-result");
const summary = result.querySelector(".interpolation-summary");
const body = result.querySelector("tbody");
const empty = document.getElementById("interpolation-empty");
const api = makeApi(document.querySelector("input[name=csrfmiddlewaretoken]").value);
const url = card.dataset.interpolationUrl;
const ACTIVE = new Set(["queued", "running"]);
const POLL_MS = { live: 5000, offline: 1000 };
const METHODS = [
  ["model", "Trained network"],
  ["linear_blend", "Linear blending"],
  ["frame_repetition", "Frame repetition"],
];
const PROTOCOLS = [
  ["clips", "Clips (every interior frame)"],
  ["triplets", "Triplets (random sample)"],
];

let job = null;
let live = false;
let timer = null;

function fixed(value, digits) {
  return value === null || value === undefined ? "—" : Number(value).toFixed(digits);
}

function jobText(current) {
  if (current.status === "queued") return "waiting for a worker…";
  const detail = current.detail || {};
  if (detail.phase === "training" && detail.total) {
    const loss = detail.loss !== undefined ? ` · loss ${fixed(detail.loss, 4)}` : "";
    return `training: step ${detail.done ?? 0} of ${detail.total}${loss}`;
  }
  if (detail.phase && detail.total) return `${detail.phase}: ${detail.done ?? 0} of ${detail.total} runs`;
  return current.status;
}

function renderJob() {
  const running = job !== null && ACTIVE.has(job.status);
  jobLine.hidden = !running;
  button.disabled = running || button.dataset.enough !== "true";
  if (!running) return;
  bar.value = Math.round(Math.min(1, Math.max(0, job.progress || 0)) * 100);
  jobDetail.textContent = ` Job #${job.id}: ${jobText(job)}`;
}

function rows(metrics) {
  const out = [];
  for (const [protocol, title] of PROTOCOLS) {
    const block = metrics[protocol];
    if (!block) continue;
    for (const [method, name] of METHODS) {
      const values = block[method] || {};
      out.push(
        el(
          "tr",
          { "data-protocol": protocol, "data-method": method },
          el("td", { text: title }),
          el("td", { text: name }),
          el("td", { class: "num", text: fixed(values.psnr, 2) }),
          el("td", { class: "num", text: fixed(values.ssim, 3) }),
          el("td", { class: "num", text: String(block.n_frames ?? "") }),
          el("td", { class: "num", text: String(block.n_runs ?? "") }),
        ),
      );
    }
    const paper = (metrics.paper || {})[protocol];
    if (paper) {
      out.push(
        el(
          "tr",
          { "data-protocol": protocol, "data-method": "paper", class: "muted" },
          el("td", { text: title }),
          el("td", { text: "Seed paper (DAIN, real angiography)" }),
          el("td", { class: "num", text: fixed(paper.psnr, 2) }),
          el("td", { class: "num", text: fixed(paper.ssim, 3) }),
          el("td", { text: "" }),
          el("td", { text: "" }),
        ),
      );
    }
  }
  return out;
}

function renderModels(models) {
  const latest = models[0];
  result.hidden = !latest;
  empty.hidden = Boolean(latest);
  if (!latest) return;
  const metrics = latest.metrics || {};
  const clips = metrics.clips || {};
  const beats = (clips.model?.psnr ?? -Infinity) > (clips.linear_blend?.psnr ?? Infinity);
  const train = metrics.train || {};
  const held = metrics.held_out || {};
  summary.textContent =
    `Network #${latest.id} (${new Date(latest.created_at).toLocaleString()}): trained on ${train.runs ?? "?"} runs ` +
    `of ${train.patients ?? "?"} patients, evaluated on ${held.runs ?? "?"} runs of ${held.patients ?? "?"} ` +
    `held-out patients (${held.source || "held out by patient"}) at ${metrics.resolution || "?"}. ` +
    (beats
      ? "On the clips it beats linear blending."
      : "On the clips it does not beat linear blending: do not rely on its frames.");
  body.replaceChildren(...rows(metrics));
}

async function load() {
  const data = await api.get(url);
  const counts = data.runs || {};
  const enough = (counts.runs ?? 0) >= (counts.needed_runs ?? 2) && (counts.patients ?? 0) >= (counts.needed_patients ?? 2);
  button.dataset.enough = String(enough);
  runsLine.textContent =
    `${counts.runs ?? 0} usable cine run${counts.runs === 1 ? "" : "s"} of ${counts.patients ?? 0} ` +
    `patient${counts.patients === 1 ? "" : "s"}` +
    (enough ? "" : ` (needs ${counts.needed_runs} runs of ${counts.needed_patients} patients)`);
  job = data.job;
  renderJob();
  renderModels(data.models || []);
  schedule();
}

// While a job is queued or running its state is fetched now and then: often while the live socket is down,
// seldom while it is up (a safety net for an event missed across a reconnect).
function schedule() {
  if (timer !== null) clearTimeout(timer);
  timer = null;
  if (job === null || !ACTIVE.has(job.status)) return;
  timer = setTimeout(() => {
    timer = null;
    load().catch((error) => {
      status.textContent = `Could not refresh: ${error.message}`;
      schedule();
    });
  }, live ? POLL_MS.live : POLL_MS.offline);
}

function onEvent(event) {
  if (event.event !== "job" || event.kind !== "interpolate") return;
  if (!ACTIVE.has(event.status)) {
    if (event.status === "failed") status.textContent = `Training failed: ${event.error || "no reason given"}`;
    load().catch(() => schedule()); // the evaluation comes with the stored network
    return;
  }
  job = { ...(job || {}), id: event.job, status: event.status, progress: event.progress, detail: event.detail };
  renderJob();
  schedule();
}

function onState(state, { reconnected = false } = {}) {
  live = state === "open";
  card.dataset.live = state;
  if (live && reconnected) load().catch(() => schedule());
  else schedule();
}

button.addEventListener("click", async () => {
  button.disabled = true;
  status.textContent = "Queuing…";
  try {
    job = await api.post(url, { steps: Number(stepsInput.value) });
    status.textContent = `Job #${job.id} queued.`;
    renderJob();
    schedule();
  } catch (error) {
    status.textContent = `Not started: ${error.message}`; // 400: too few runs; 409: one is already queued or running
    renderJob();
  }
});

connectLive(card.dataset.liveUrl, { onEvent, onState });
load()
  .catch((error) => {
    status.textContent = `Could not load: ${error.message}`;
  })
  .finally(() => {
    card.dataset.ready = "true"; // for tests: the listeners above are in place
  });

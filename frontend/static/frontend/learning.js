// The lead's active-learning card: queue summary, learning settings, "Retrain now", live jobs and model versions.
import { makeApi } from "./api.js";
import { connectLive } from "./live.js";
import { jobRow, versionRow } from "./learning-rows.js";

const card = document.getElementById("learning");
const $ = (id) => document.getElementById(id);
const api = makeApi(document.querySelector("input[name=csrfmiddlewaretoken]").value);
const form = $("learning-form");
const primaryMetric = card.dataset.primaryMetric;
const LIVE_STATES = { open: "live", closed: "reconnecting…", gone: "no live updates" };
const LEARNING_KINDS = new Set(["train", "score"]);

const jobs = new Map(); // job id -> the job as the API or the last event described it
let versionNumbers = new Map(); // model version pk -> number, to name a job's model

// ---------------------------------------------------------------------------------------------- queue
function fact(name, text) {
  card.querySelector(`[data-fact=${name}]`).textContent = text;
}

/** Name what ordered the queue: the champion, the newest model before the first champion, or the cold start. */
function rankedBy(queue) {
  if (!queue.model_version) return "cold start";
  const model = `model v${queue.model_version}`;
  return queue.model_status === "champion" ? model : `${model} (newest model, not promoted: it only ranks)`;
}

function showQueue(queue) {
  fact("open", String(queue.open));
  card.querySelector("[data-fact=open]").dataset.value = queue.open;
  if (!("generation" in queue)) return; // a `queue` event carries the size only
  const ranked = Boolean(queue.ranked_at);
  fact("ranked_by", !ranked ? "not ranked yet" : rankedBy(queue));
  fact("strategy", ranked ? String(queue.strategy || "").replaceAll("_", " ") : "–");
  const when = ranked ? new Date(queue.ranked_at).toLocaleString() : "–";
  fact("ranked_at", ranked ? `${when} (${queue.ranked_items} items in ${queue.rank_seconds ?? "?"} s)` : when);
  fact("unranked_items", String(queue.unranked_items));
}

async function loadQueue() {
  showQueue(await api.get(card.dataset.queueUrl));
}

// ---------------------------------------------------------------------------------------------- jobs
function renderJobs() {
  const list = $("jobs");
  const shown = [...jobs.values()].sort((a, b) => b.id - a.id).slice(0, 20);
  list.replaceChildren(...shown.map((job) => jobRow(job, versionNumbers)));
  $("jobs-empty").hidden = shown.length > 0;
}

function rememberJob(job) {
  if (!LEARNING_KINDS.has(job.kind)) return;
  jobs.set(job.id, { ...jobs.get(job.id), ...job });
}

async function loadJobs() {
  const body = await api.get(card.dataset.jobsUrl);
  for (const job of body.results) rememberJob(job);
  renderJobs();
}

function onJobEvent(event) {
  rememberJob({
    id: event.job,
    kind: event.kind,
    status: event.status,
    progress: event.progress,
    detail: event.detail || {},
    model_version: event.model_version,
    error: event.error,
  });
  renderJobs();
  if (event.status === "succeeded" || event.status === "failed") {
    loadVersions().catch(() => {});
    loadQueue().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------- versions
async function loadVersions() {
  const body = await api.get(card.dataset.versionsUrl);
  versionNumbers = new Map(body.results.map((version) => [version.id, version.number]));
  $("model-versions").tBodies[0].replaceChildren(...body.results.map((version) => versionRow(version, primaryMetric)));
  $("versions-empty").hidden = body.results.length > 0;
  renderJobs(); // job rows name their model by number
}

// ---------------------------------------------------------------------------------------------- settings
function numberOrNull(input) {
  return input.value.trim() === "" ? null : Number(input.value);
}

function readSettings() {
  const fields = form.elements;
  return {
    acquisition_strategy: fields.acquisition_strategy.value,
    retrain_every_n_labels: numberOrNull(fields.retrain_every_n_labels),
    retrain_every_minutes: numberOrNull(fields.retrain_every_minutes),
    overlap_rate: numberOrNull(fields.overlap_rate),
    gold_rate: numberOrNull(fields.gold_rate),
    pseudo_label_threshold: numberOrNull(fields.pseudo_label_threshold), // empty: no pseudo-labels
    queue_batch_size: numberOrNull(fields.queue_batch_size),
    test_handout_rate: numberOrNull(fields.test_handout_rate),
    promotion_min_test_items: numberOrNull(fields.promotion_min_test_items),
    promotion_refresh_growth: numberOrNull(fields.promotion_refresh_growth), // empty: only a win beyond noise
    ...classSettings(),
  };
}

// The classes a model learns travel in the training hyper-parameters (the others there are kept as they are).
function classSettings() {
  const boxes = [...form.querySelectorAll("input[name=model_class]")];
  if (!boxes.length) return {};
  const hparams = JSON.parse(card.dataset.trainingHparams || "{}");
  hparams.classes = boxes.filter((box) => box.checked).map((box) => box.value).join(",");
  return { training_hparams: hparams };
}

// `field` names a setting as the form does (the server says "settings.<name>").
function showSettingsError(field, detail) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  const error = $("learning-error");
  error.hidden = !detail;
  error.textContent = detail || "";
  const input = field && form.elements[field];
  if (input) {
    input.setAttribute("aria-invalid", "true");
    error.dataset.field = field;
    input.focus();
  } else {
    delete error.dataset.field;
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  $("learning-status").textContent = "Saving…";
  showSettingsError(null, "");
  try {
    await api.patch(card.dataset.projectUrl, { settings: readSettings() });
    $("learning-status").textContent = "Saved. The queue follows the new settings at its next re-rank.";
  } catch (error) {
    $("learning-status").textContent = "Not saved.";
    const field = (error.body || {}).field || "";
    const name = field.replace(/^settings\./, "");
    showSettingsError(name, !name || error.message.includes(name) ? error.message : `${name}: ${error.message}`);
  }
});

// ---------------------------------------------------------------------------------------------- retrain
$("retrain").addEventListener("click", async () => {
  const button = $("retrain");
  const status = $("retrain-status");
  button.disabled = true;
  status.className = "";
  status.textContent = "Queuing a training job…";
  try {
    const job = await api.post(card.dataset.trainUrl, {});
    rememberJob(job);
    renderJobs();
    status.textContent = `Training job #${job.id} queued.`;
  } catch (error) {
    status.className = "bad";
    status.textContent = `Not queued: ${error.message}`; // 409: a round is already under way
  } finally {
    button.disabled = false;
  }
});

// ---------------------------------------------------------------------------------------------- live
function onEvent(event) {
  if (event.event === "job") onJobEvent(event);
  else if (event.event === "queue") showQueue({ open: event.open });
  else if (event.event === "reranked") loadQueue().catch(() => {});
  else if (event.event === "model" || event.event === "scored") {
    loadVersions().catch(() => {});
    loadQueue().catch(() => {});
  }
}

function onState(state, { reconnected = false } = {}) {
  card.dataset.live = state;
  $("learning-live").textContent = LIVE_STATES[state] || "";
  $("learning-live").title = `Live updates: ${LIVE_STATES[state] || state}`;
  if (state === "open" && reconnected) loadAll(); // events sent while the socket was down are lost
}

function loadAll() {
  return Promise.all([loadQueue(), loadVersions().then(loadJobs)]).catch((error) => {
    $("retrain-status").className = "bad";
    $("retrain-status").textContent = `Could not load the learning state: ${error.message}`;
  });
}

connectLive(card.dataset.liveUrl, { onEvent, onState });
loadAll();

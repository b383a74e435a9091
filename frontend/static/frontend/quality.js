// The leads' label-quality dashboard: the adjudication queue, model health, agreement and annotators, kept
// current by the project's live events (and every 30 s for the adjudication queue).
import { makeApi } from "./api.js";
import { connectLive } from "./live.js";
import { el, formatNumber } from "./lib/dom.js";
import { barChart, formatValue, histogram, lineChart } from "./lib/charts.js";
import { agreementCharts, agreementFacts, agreementTables } from "./quality-agreement.js";

const root = document.getElementById("quality");
const $ = (id) => document.getElementById(id);
const api = makeApi(root.querySelector("input[name=csrfmiddlewaretoken]").value);
// The task's own views (LabelTask.views_script); the agreement card is drawn its way.
const taskViews = import(root.dataset.viewsUrl);
taskViews.catch(() => {}); // reported by the agreement section
const LIVE_STATES = { open: "live", closed: "reconnecting…", gone: "no live updates" };
const CASES_EVERY_MS = 30_000;
const DEBOUNCE_MS = 800;
const REASONS = { disagreement: "annotators disagree", model_disagrees: "model disagrees" };

const reports = { agreement: null, health: null }; // the last bodies, for the chart that needs both

function reportUrl(name) {
  return root.dataset.reportUrlTemplate.replace("REPORT", name);
}

function status(text, kind = "") {
  $("status").textContent = text || "";
  $("status").className = `q-status ${kind}`;
}

function percent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(0)}%`;
}

function cell(content, attrs = {}) {
  return typeof content === "string" ? el("td", { ...attrs, text: content }) : el("td", attrs, content);
}

// ---------------------------------------------------------------------------------------------- adjudication
function adjudicateUrl(item, reason) {
  const url = root.dataset.adjudicateUrlTemplate.replace(/\/0\/$/, `/${item}/`);
  return `${url}?reason=${encodeURIComponent(reason)}`;
}

function caseRow(kase) {
  const authors = kase.labels.map((label) => label.author).join(", ");
  const model = kase.prediction
    ? `v${kase.prediction.model_version}${kase.prediction.confidence !== null ? ` (${percent(kase.prediction.confidence)} sure)` : ""}`
    : "—";
  return el(
    "tr",
    { class: `case ${kase.reason}`, "data-item": kase.item, "data-reason": kase.reason },
    cell(el("a", { href: adjudicateUrl(kase.item, kase.reason), class: "adjudicate-link", text: kase.title || `item ${kase.item}` })),
    cell(REASONS[kase.reason] || kase.reason),
    cell(kase.detail),
    cell(kase.importance.toFixed(2), { class: "num" }),
    cell(kase.split || "unassigned"),
    cell(kase.is_gold ? "gold" : "", { class: "gold" }),
    cell(`${kase.labels.length}: ${authors}`),
    cell(model),
  );
}

function renderCases(body) {
  $("cases").tBodies[0].replaceChildren(...body.cases.map(caseRow));
  $("cases-empty").hidden = body.cases.length > 0;
  $("adjudication").dataset.count = body.cases.length;
}

// ---------------------------------------------------------------------------------------------- model health
const STATUS_MARKS = [
  { text: "champion", className: "status-champion" },
  { text: "rejected", className: "status-rejected" },
];

function renderLearningCurve(health) {
  const points = health.learning_curve.map((p) => ({
    x: p.labels,
    y: p.test,
    className: `status-${p.status}`,
    title: `v${p.version} (${p.status}): ${p.labels} labels → test ${health.metric} ${formatValue(p.test, 3)}`,
  }));
  $("learning-curve").replaceChildren(
    lineChart({
      name: "learning-curve",
      title: `Learning curve: test ${health.metric} by labels trained on`,
      xLabel: "human labels trained on",
      yLabel: `test ${health.metric}`,
      series: [{ name: `test ${health.metric}`, points }],
      yDomain: [0, 1],
      empty: "No model yet: the curve starts with the first trained version that has a held-out score.",
      marks: STATUS_MARKS,
    }),
  );
}

function renderOverTime() {
  const between = (reports.agreement?.over_time || []).map((d) => ({
    x: d.day,
    y: d.agreement,
    title: `${d.day}: ${d.pairs} pair(s) of labels, agreement ${formatValue(d.agreement, 3)}`,
  }));
  const model = (reports.health?.model_vs_human || []).map((d) => ({
    x: d.day,
    y: d.agreement,
    title: `${d.day}: ${d.items} item(s) labelled after the model scored them, agreement ${formatValue(d.agreement, 3)}`,
  }));
  $("over-time").replaceChildren(
    lineChart({
      name: "agreement-over-time",
      title: "Agreement over time",
      xLabel: "day",
      yLabel: "agreement",
      xType: "day",
      yDomain: [0, 1],
      series: [
        { name: "between annotators", points: between },
        { name: "model vs. people", points: model },
      ],
      empty: "No overlapping labels yet, and no labels given after a model's prediction.",
    }),
  );
}

function renderUncertainty(health) {
  const queue = health.queue_uncertainty;
  $("uncertainty").replaceChildren(
    histogram({
      name: "queue-uncertainty",
      title: queue.model_version ? `Queue uncertainty (model v${queue.model_version})` : "Queue uncertainty",
      xLabel: "uncertainty",
      yLabel: "items",
      edges: queue.bins,
      counts: queue.counts,
      empty: queue.model_version
        ? `Model v${queue.model_version} has scored none of the items still waiting for labels.`
        : "No model yet: nothing has scored the queue.",
    }),
  );
  $("uncertainty-facts").textContent = queue.items
    ? `${queue.items} queued items scored · mean ${formatValue(queue.mean, 3)} · median ${formatValue(queue.median, 3)}`
    : "";
}

function metricText(version) {
  if (version.test === null) return "—";
  const ci = version.test_ci ? ` [${formatValue(version.test_ci[0], 3)}–${formatValue(version.test_ci[1], 3)}]` : "";
  const n = version.test_items ? ` (n=${version.test_items})` : "";
  return `${version.test.toFixed(3)}${ci}${n}`;
}

function versionRow(version) {
  const labels = version.train_examples === null ? null : version.train_examples - (version.pseudo_examples || 0);
  const pseudo = version.pseudo_examples ? ` + ${version.pseudo_examples} pseudo` : "";
  return el(
    "tr",
    { class: `version ${version.status}`, "data-number": version.number, "data-status": version.status },
    cell(`v${version.number}`, { class: "num" }),
    cell(version.family),
    cell(version.status, { class: "version-status" }),
    cell(labels === null ? "—" : `${labels}${pseudo}`, { class: "num" }),
    cell(metricText(version), { class: "num test" }),
    cell(version.validation === null ? "—" : version.validation.toFixed(3), { class: "num" }),
    cell(version.rule || "", { class: "rule" }),
    cell(version.trained_at ? new Date(version.trained_at).toLocaleString() : "—"),
  );
}

function renderHealth(health) {
  reports.health = health;
  renderLearningCurve(health);
  renderOverTime();
  renderUncertainty(health);
  $("versions-metric").textContent = `Test ${health.metric} (95% CI)`;
  $("versions").tBodies[0].replaceChildren(...health.versions.map(versionRow));
  $("versions-empty").hidden = health.versions.length > 0;
}

// ---------------------------------------------------------------------------------------------- agreement
async function renderAgreement(agreement) {
  const view = (await taskViews).agreement;
  reports.agreement = agreement;
  $("agreement-overall").replaceChildren(...agreementFacts(view, agreement));
  $("agreement-charts").replaceChildren(...agreementCharts(view, agreement));
  $("agreement-tables").replaceChildren(...agreementTables(view, agreement));
  renderOverTime();
}

// ---------------------------------------------------------------------------------------------- annotators
function reviewForm(annotator) {
  const limit = el("input", {
    type: "number",
    name: "limit",
    min: 1,
    max: 500,
    step: 1,
    value: 20,
    title: "How many of the most recent labels",
    "aria-label": `How many of ${annotator}'s recent labels`,
  });
  const note = el("input", {
    type: "text",
    name: "note",
    maxlength: 2000,
    placeholder: "Note to the annotator",
    "aria-label": `Note to ${annotator}`,
  });
  const result = el("span", { class: "review-result", role: "status" });
  const button = el("button", { type: "submit", class: "secondary" }, "Send back for review");
  const form = el("form", { class: "review-form", "data-annotator": annotator }, limit, note, button, result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    button.disabled = true;
    result.className = "review-result";
    result.textContent = "Sending…";
    try {
      const body = await api.post(root.dataset.reviewsUrl, {
        annotator,
        limit: Number(limit.value),
        note: note.value.trim(),
      });
      result.className = "review-result good";
      result.textContent = `Sent ${body.items.length} item(s) back to ${body.annotator} (review #${body.review}).`;
      form.dataset.review = body.review;
      note.value = "";
    } catch (error) {
      result.className = "review-result bad";
      const field = error.body && error.body.field;
      result.textContent = field && !String(error.message).startsWith(field) ? `${field}: ${error.message}` : error.message;
      if (field) result.dataset.field = field;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function annotatorRow(row) {
  return el(
    "tr",
    { class: "annotator", "data-annotator": row.annotator },
    cell(row.annotator),
    cell(String(row.labels), { class: "num" }),
    cell(`${percent(row.gold_agreement)} (${row.gold_items})`, { class: "num" }),
    cell(`${percent(row.consensus_agreement)} (${row.consensus_items})`, { class: "num" }),
    cell(formatNumber(row.items_per_hour === null ? null : row.items_per_hour.toFixed(1)), { class: "num" }),
    cell(formatNumber(row.median_seconds_per_item === null ? null : row.median_seconds_per_item.toFixed(1)), { class: "num" }),
    cell(String(row.skips), { class: "num" }),
    cell(percent(row.skip_rate), { class: "num" }),
    cell(reviewForm(row.annotator)),
  );
}

function annotatorCharts(rows) {
  const chart = (key, options) =>
    barChart({ xLabel: "annotator", bars: rows.map((r) => ({ label: r.annotator, value: r[key] })), ...options });
  const share = { yDomain: [0, 1], format: percent };
  return [
    chart("gold_agreement", {
      name: "gold-agreement",
      title: "Agreement with gold",
      yLabel: "share of gold items",
      empty: "No gold items labelled by others yet.",
      ...share,
    }),
    chart("consensus_agreement", {
      name: "consensus-agreement",
      title: "Agreement with the final label",
      yLabel: "share of items",
      empty: "No settled labels to compare with yet.",
      ...share,
    }),
    chart("items_per_hour", {
      name: "items-per-hour",
      title: "Pace",
      yLabel: "items per hour",
      empty: "No timed labels yet.",
      format: (v) => formatValue(v, 1),
    }),
    chart("skip_rate", {
      name: "skip-rate",
      title: "Skip rate",
      yLabel: "share skipped",
      empty: "Nobody has labelled or skipped yet.",
      ...share,
    }),
  ];
}

function renderAnnotators(body) {
  const rows = body.annotators;
  $("annotator-charts").replaceChildren(...annotatorCharts(rows).map((chart) => el("div", { class: "chart-cell" }, chart)));
  $("annotator-table").tBodies[0].replaceChildren(...rows.map(annotatorRow));
  $("annotators-empty").hidden = rows.length > 0;
}

// ---------------------------------------------------------------------------------------------- loading
const SECTIONS = {
  adjudication: { section: "adjudication", render: renderCases },
  health: { section: "health", render: renderHealth },
  agreement: { section: "agreement", render: renderAgreement },
  annotators: { section: "annotators", render: renderAnnotators },
};

async function load(name) {
  const { section, render } = SECTIONS[name];
  const node = $(section);
  const error = node.querySelector(".section-error");
  try {
    await render(await api.get(reportUrl(name)));
    error.hidden = true;
    node.dataset.state = "ready";
  } catch (problem) {
    error.textContent = `The ${name} report could not be loaded: ${problem.message}`;
    error.hidden = false;
    node.dataset.state = "error";
  }
  $("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

const timers = {};
function schedule(name) {
  clearTimeout(timers[name]);
  timers[name] = setTimeout(() => load(name), DEBOUNCE_MS);
}

async function loadAll() {
  await Promise.all(Object.keys(SECTIONS).map(load));
  const failed = Object.values(SECTIONS).some(({ section }) => $(section).dataset.state === "error");
  root.dataset.state = failed ? "error" : "ready";
}

function onEvent(event) {
  if (event.event === "model" || event.event === "scored" || event.event === "reranked") {
    schedule("health");
    schedule("adjudication"); // a new champion's predictions can open "model disagrees" cases
  } else if (event.event === "queue") {
    schedule("adjudication"); // labels came in
  } else if (event.event === "job" && event.status === "succeeded") {
    schedule("health");
  }
}

function onState(state, { reconnected = false } = {}) {
  root.dataset.live = state;
  $("live-state").textContent = LIVE_STATES[state] || state;
  $("live-state").title = `Live updates: ${LIVE_STATES[state] || state}`;
  if (state === "open" && reconnected) loadAll(); // events sent while the socket was down are lost
}

$("refresh").addEventListener("click", () => loadAll());
setInterval(() => {
  if (document.visibilityState === "visible") load("adjudication");
}, CASES_EVERY_MS);

const settled = new URL(window.location.href).searchParams.get("settled");
if (settled) status(`Item ${settled} settled: its final label is stored and it left the queue.`, "good");
loadAll();
connectLive(root.dataset.liveUrl, { onEvent, onState });

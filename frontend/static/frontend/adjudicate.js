// A lead settles one item: the task's own tool for the final label, beside each annotator's label and the model's
// prediction; "Settle" stores it through POST /api/items/<id>/adjudicate/ and returns to the dashboard.
import { makeApi } from "./api.js";
import { comboOf, isTyping, renderShortcuts } from "./keys.js";
import { el } from "./lib/dom.js";
import { opinionPanels } from "./adjudicate-views.js";

const root = document.getElementById("adjudicate");
const $ = (id) => document.getElementById(id);
const api = makeApi(root.querySelector("input[name=csrfmiddlewaretoken]").value);
const itemId = Number(root.dataset.itemId);
const toolModule = import(root.dataset.toolUrl);
toolModule.catch(() => {}); // reported when the tool mounts
const taskViews = import(root.dataset.viewsUrl); // the task's own views (LabelTask.views_script)
taskViews.catch(() => {}); // reported when the opinions are drawn

let tool = null;
let busy = false;

function setState(state) {
  root.dataset.state = state;
}

function status(text, kind = "") {
  $("status").textContent = text || "";
  $("status").className = `q-status ${kind}`;
}

function showError(field, detail) {
  const box = $("settle-error");
  box.hidden = !detail;
  const prefixed = field && detail && !detail.startsWith(`${field}:`) ? `${field}: ${detail}` : detail;
  box.textContent = prefixed || "";
  if (field) box.dataset.field = field;
  else delete box.dataset.field;
}

/** Return the case as the dashboard lists it; for an item not in the queue, its current labels and newest prediction. */
async function loadCase() {
  const { cases } = await api.get(root.dataset.casesUrl);
  const listed = cases.find((c) => c.item === itemId);
  if (listed) return listed;
  const [labels, predictions] = await Promise.all([
    api.get(root.dataset.labelsUrl),
    api.get(root.dataset.predictionsUrl),
  ]);
  const newest = [...predictions.results].sort((a, b) => b.created_at.localeCompare(a.created_at))[0];
  return {
    item: itemId,
    reason: root.dataset.reason,
    detail: "not in the adjudication queue (no open disagreement)",
    labels: labels.results
      .filter((label) => label.source !== "adjudication")
      .sort((a, b) => a.created_at.localeCompare(b.created_at))
      .map((label) => ({ label: label.id, author: label.author, payload: label.payload, created_at: label.created_at })),
    prediction: newest ? { model_version: newest.model_version, output: newest.output, confidence: null } : null,
  };
}

function startFrom(payload, panel, who) {
  tool.setPayload(structuredClone(payload));
  for (const other of $("opinions").querySelectorAll(".opinion.chosen")) other.classList.remove("chosen");
  panel.classList.add("chosen");
  root.dataset.startedFrom = panel.dataset.author || `model v${panel.dataset.modelVersion}`;
  showError(null, "");
  status(`Started from ${who}: edit it if needed, add a note and settle.`);
}

function renderOpinions(view, kase, data) {
  $("case-detail").textContent = kase.detail;
  const panels = opinionPanels(view, kase, { item: data.item, onStart: startFrom });
  $("opinions").replaceChildren(...(panels.length ? panels : [el("p", { class: "muted", text: "Nobody has labelled this item yet." })]));
}

async function start() {
  const [data, kase] = await Promise.all([api.get(root.dataset.workspaceUrl), loadCase()]);
  const ctx = {
    // The tool starts empty: the lead picks a starting point from the panels, the model's included.
    item: { ...data, prediction: null },
    api,
    isLead: true,
    changed: () => showError(null, ""),
    status: (text) => status(text),
  };
  tool = await (await toolModule).mountTool($("tool"), ctx);
  if (data.label) {
    tool.setPayload(data.label.payload);
    status(`Showing your own current label (version ${data.label.version}); settling stores a new version.`);
  }
  renderShortcuts($("shortcuts"), tool.shortcuts);
  renderOpinions((await taskViews).adjudication, kase, data);
  setState("ready");
}

async function settle() {
  if (busy || !tool) return;
  const result = tool.getPayload();
  if (result.error) {
    showError(null, result.error);
    return;
  }
  busy = true;
  $("settle").disabled = true;
  showError(null, "");
  try {
    const body = await api.post(root.dataset.adjudicateUrl, {
      payload: result.payload,
      reason: root.dataset.reason,
      note: $("settle-note").value.trim(),
    });
    setState("settled");
    root.dataset.adjudication = body.adjudication;
    status("Settled. Back to the dashboard…", "good");
    window.location.assign(`${root.dataset.dashboardUrl}?settled=${itemId}`);
  } catch (error) {
    const body = error.body || {};
    showError(body.field || null, body.detail || error.message);
  } finally {
    busy = false;
    $("settle").disabled = false;
  }
}

$("settle-form").addEventListener("submit", (event) => {
  event.preventDefault();
  settle();
});

// The tool's own keys work here as in the workspace (not while typing the note).
document.addEventListener("keydown", (event) => {
  if (!tool || root.dataset.state !== "ready" || isTyping(event.target)) return;
  if (event.target.tagName === "BUTTON" && (event.key === "Enter" || event.key === " ")) return;
  const shortcut = tool.shortcuts.find((s) => s.key === comboOf(event));
  if (!shortcut) return;
  event.preventDefault();
  shortcut.run(event);
});

start().catch((error) => {
  setState("error");
  status(`The item could not be opened: ${error.message}`, "bad");
});

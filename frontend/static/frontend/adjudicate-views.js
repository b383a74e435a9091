// The side panels of the adjudication page: each annotator's label and the model's prediction, drawn the task's
// way by its module (LabelTask.views_script, under tasks/), which exports `adjudication = {label, model,
// startFromModel}`; each panel has "Start from this" where it can seed the tool.
import { el } from "./lib/dom.js";

export function percent(value) {
  return typeof value === "number" ? `${(value * 100).toFixed(0)}%` : "—";
}

export function words(value) {
  return String(value || "").replaceAll("_", " ");
}

function panel({ kind, heading, attrs, body, note, start }) {
  const header = el("header", {}, el("h3", { text: heading }));
  if (start) header.append(el("button", { type: "button", class: "secondary start-from", onclick: start }, "Start from this"));
  return el("section", { class: `opinion ${kind}`, "data-kind": kind, ...attrs }, header, ...body, el("p", { class: "muted small", text: note }));
}

/**
 * Return the panels of a case: one per annotator's label, then the model's prediction (if any).
 * `view`: the task's adjudication view; `context`: {item (the workspace body's item), onStart(payload, panel, who)}.
 */
export function opinionPanels(view, kase, context) {
  const panels = kase.labels.map((label) => {
    const section = panel({
      kind: "label",
      heading: label.author,
      attrs: { "data-author": label.author, "data-label": label.label },
      body: view.label(label.payload, context, label.author),
      note: `labelled ${new Date(label.created_at).toLocaleString()}`,
      start: () => context.onStart(label.payload, section, `${label.author}'s label`),
    });
    return section;
  });
  const prediction = kase.prediction;
  if (prediction) {
    const seed = view.startFromModel(prediction.output);
    const sure = typeof prediction.confidence === "number" ? ` · ${percent(prediction.confidence)} sure` : "";
    const section = panel({
      kind: "model",
      heading: `Model v${prediction.model_version}`,
      attrs: { "data-model-version": prediction.model_version },
      body: view.model(prediction, context),
      note: `prediction${sure}`,
      start: seed ? () => context.onStart(seed, section, `model v${prediction.model_version}'s prediction`) : null,
    });
    panels.push(section);
  }
  return panels;
}

// Vessel type's views outside the workspace tool: the quality dashboard's agreement card (a confusion heatmap
// between annotators) and the adjudication page's panels (the class, and the model's probability of each).
import { el } from "../lib/dom.js";
import { heatmap } from "../lib/charts.js";
import { NO_OVERLAP, PAIR_COLUMNS, fixed, percent, table } from "../quality-agreement.js";
import { percent as probability } from "../adjudicate-views.js";

export const agreement = {
  facts: (o) => [
    ["Items labelled by two or more", String(o.items), "items"],
    ["Percent agreement", percent(o.percent_agreement), "percent_agreement"],
    ["Cohen's kappa (pooled pairs)", fixed(o.kappa), "kappa"],
    ["Fleiss' kappa", fixed(o.fleiss_kappa), "fleiss_kappa"],
  ],
  charts: (o) => [
    heatmap({
      name: "confusion",
      title: "Confusion between annotators (vessel)",
      xLabel: "second annotator of the pair",
      yLabel: "first annotator",
      rows: o.categories,
      cols: o.categories,
      values: o.confusion || o.categories.map(() => o.categories.map(() => 0)),
      empty: NO_OVERLAP,
      cellTitle: (first, second, count) => `${count} item${count === 1 ? "" : "s"}: first said ${first}, second said ${second}`,
    }),
  ],
  tables: (a) => [
    table(
      "pair-table",
      [...PAIR_COLUMNS, ["Agreement", (p) => percent(p.percent_agreement), "num"], ["Kappa", (p) => fixed(p.kappa), "num"]],
      a.pairs,
      NO_OVERLAP,
    ),
  ],
};

// ---------------------------------------------------------------------------------------------- adjudication
export const adjudication = {
  label(payload) {
    const nodes = [el("p", { class: "opinion-class", "data-vessel": payload.vessel, text: payload.vessel })];
    if (payload.unusable_reason) nodes.push(el("p", { class: "opinion-facts", text: `Reason: ${payload.unusable_reason}` }));
    return nodes;
  },
  model(prediction) {
    const output = prediction.output || {};
    const probabilities = Object.entries(output.probabilities || {}).sort((a, b) => b[1] - a[1]);
    const list = el(
      "ul",
      { class: "probabilities", "aria-label": "The model's probability of each class" },
      ...probabilities.map(([name, p]) => {
        const fill = el("span");
        fill.style.width = `${Math.round(p * 100)}%`;
        return el(
          "li",
          { "data-class": name },
          el("span", { text: name }),
          el("span", { class: "meter", role: "img", "aria-label": `${name} ${probability(p)}` }, fill),
          el("span", { class: "num", text: probability(p) }),
        );
      }),
    );
    return [el("p", { class: "opinion-class", "data-vessel": output.vessel, text: output.vessel || "—" }), list];
  },
  startFromModel: (output) => (output && output.vessel ? { vessel: output.vessel } : null),
};

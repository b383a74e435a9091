// The agreement card of the quality dashboard, drawn the task's way: each task's module (LabelTask.views_script,
// under tasks/) exports `agreement = {facts, charts, tables}`, built from the helpers here.
import { el } from "./lib/dom.js";
import { formatValue } from "./lib/charts.js";

export const NO_OVERLAP = "No overlapping labels yet: agreement needs items that two annotators both labelled.";

export function fixed(value, digits = 3) {
  return value === null || value === undefined ? "—" : formatValue(value, digits);
}

export function percent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(0)}%`;
}

function facts(pairs) {
  return pairs.flatMap(([term, value, key]) => [el("dt", { text: term }), el("dd", { text: value, "data-fact": key })]);
}

/** Return a table: `columns` [[heading, row => text, className?]], one row per element of `rows`. */
export function table(id, columns, rows, empty) {
  if (!rows.length) return el("p", { id: `${id}-empty`, class: "muted", text: empty });
  const head = el("tr", {}, ...columns.map(([heading]) => el("th", { text: heading })));
  const body = rows.map((row) =>
    el("tr", {}, ...columns.map(([, value, className]) => el("td", { class: className || "", text: value(row) }))),
  );
  return el("table", { class: "grid", id }, el("thead", {}, head), el("tbody", {}, ...body));
}

export const PAIR_COLUMNS = [
  ["First", (p) => p.first],
  ["Second", (p) => p.second],
  ["Items", (p) => String(p.items), "num"],
];

/** Return the <dt>/<dd> pairs of the overall agreement. */
export function agreementFacts(view, agreement) {
  return facts(view.facts(agreement.overall));
}

/** Return the task's agreement charts (figures). */
export function agreementCharts(view, agreement) {
  return view.charts(agreement.overall, agreement).map((chart) => el("div", { class: "chart-cell" }, chart));
}

/** Return the task's agreement tables (or a sentence where there is nothing to show). */
export function agreementTables(view, agreement) {
  return view.tables(agreement);
}

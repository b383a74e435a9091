// The agreement card of the quality dashboard, drawn the task's way: a confusion heatmap for vessel type, Dice per
// pair and per frame for OCT calcium, weighted kappa per segment and per territory for SPECT.
import { el } from "./lib/dom.js";
import { barChart, binValues, formatValue, heatmap, histogram } from "./lib/charts.js";

const NO_OVERLAP = "No overlapping labels yet: agreement needs items that two annotators both labelled.";

function fixed(value, digits = 3) {
  return value === null || value === undefined ? "—" : formatValue(value, digits);
}

function percent(value) {
  return value === null || value === undefined ? "—" : `${(value * 100).toFixed(0)}%`;
}

function facts(pairs) {
  return pairs.flatMap(([term, value, key]) => [el("dt", { text: term }), el("dd", { text: value, "data-fact": key })]);
}

/** Return a table: `columns` [[heading, row => text, className?]], one row per element of `rows`. */
function table(id, columns, rows, empty) {
  if (!rows.length) return el("p", { id: `${id}-empty`, class: "muted", text: empty });
  const head = el("tr", {}, ...columns.map(([heading]) => el("th", { text: heading })));
  const body = rows.map((row) =>
    el("tr", {}, ...columns.map(([, value, className]) => el("td", { class: className || "", text: value(row) }))),
  );
  return el("table", { class: "grid", id }, el("thead", {}, head), el("tbody", {}, ...body));
}

const PAIR_COLUMNS = [
  ["First", (p) => p.first],
  ["Second", (p) => p.second],
  ["Items", (p) => String(p.items), "num"],
];

// ---------------------------------------------------------------------------------------------- vessel type
const vessel = {
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

// ---------------------------------------------------------------------------------------------- OCT calcium
const oct = {
  facts: (o) => [
    ["Frames labelled by two or more", String(o.items), "items"],
    ["Frames both drew a mask on", String(o.frames_with_masks ?? 0), "frames_with_masks"],
    ["Mean Dice", o.dice_mean === undefined ? "—" : `${fixed(o.dice_mean)} ± ${fixed(o.dice_sd)}`, "dice_mean"],
    ["Mean IoU", fixed(o.iou_mean), "iou_mean"],
    ["Agreement on excluding", percent(o.excluded_agreement), "excluded_agreement"],
    ["Kappa on excluding", fixed(o.excluded_kappa), "excluded_kappa"],
  ],
  charts: (_o, a) => {
    const { edges, counts } = binValues((a.frames || []).map((f) => f.dice), { bins: 10 });
    return [
      histogram({
        name: "dice-histogram",
        title: "Dice between two annotators' masks, per frame",
        xLabel: "Dice",
        yLabel: "frames",
        edges,
        counts,
        unit: "frames",
        empty: "No frame has two annotators' masks yet.",
      }),
    ];
  },
  tables: (a) => [
    table(
      "pair-table",
      [
        ...PAIR_COLUMNS,
        ["Masks", (p) => String(p.frames_with_masks), "num"],
        ["Dice (mean ± sd)", (p) => (p.dice_mean === null ? "—" : `${fixed(p.dice_mean)} ± ${fixed(p.dice_sd)}`), "num"],
        ["IoU", (p) => fixed(p.iou_mean), "num"],
        ["Excluded agree", (p) => percent(p.excluded_agreement), "num"],
        ["Excluded kappa", (p) => fixed(p.excluded_kappa), "num"],
      ],
      a.pairs,
      NO_OVERLAP,
    ),
  ],
};

// ---------------------------------------------------------------------------------------------- SPECT
const TERRITORY_NAMES = ["LAD", "RCA", "LCX"];
const spect = {
  facts: (o) => [
    ["Patients scored by two or more", String(o.items), "items"],
    ["Weighted kappa, all stress segments", fixed(o.weighted_kappa_all_segments), "weighted_kappa_all_segments"],
  ],
  charts: (o) => {
    const kappas = o.segment_weighted_kappa || [];
    const low = Math.min(0, ...kappas.filter((k) => k !== null));
    return [
      barChart({
        name: "segment-kappa",
        title: "Weighted kappa per stress segment",
        xLabel: "segment (AHA 17)",
        yLabel: "quadratic-weighted kappa",
        bars: kappas.map((value, index) => ({ label: String(index + 1), value })),
        yDomain: [low < 0 ? -1 : 0, 1],
        empty: NO_OVERLAP,
      }),
    ];
  },
  tables: (a) => {
    const territories = a.overall.territories || {};
    const rows = TERRITORY_NAMES.filter((name) => territories[name]).map((name) => ({ name, ...territories[name] }));
    return [
      table(
        "territory-table",
        [
          ["Territory", (t) => t.name],
          ["SSS ICC", (t) => fixed(t.sss_icc), "num"],
          ["Flag kappa", (t) => fixed(t.flag_kappa), "num"],
          ["Flag agreement", (t) => percent(t.flag_agreement), "num"],
        ],
        rows,
        NO_OVERLAP,
      ),
      table(
        "pair-table",
        [...PAIR_COLUMNS, ["Weighted kappa (all segments)", (p) => fixed(p.weighted_kappa_all_segments), "num"]],
        a.pairs,
        NO_OVERLAP,
      ),
    ];
  },
};

const TASKS = { vessel_type: vessel, oct_calcium: oct, spect_territory: spect };

/** Return the <dt>/<dd> pairs of the overall agreement. */
export function agreementFacts(taskType, agreement) {
  return facts(TASKS[taskType].facts(agreement.overall));
}

/** Return the task's agreement charts (figures). */
export function agreementCharts(taskType, agreement) {
  return TASKS[taskType].charts(agreement.overall, agreement).map((chart) => el("div", { class: "chart-cell" }, chart));
}

/** Return the task's agreement tables (or a sentence where there is nothing to show). */
export function agreementTables(taskType, agreement) {
  return TASKS[taskType].tables(agreement);
}

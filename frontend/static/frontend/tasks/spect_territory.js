// SPECT territories' views outside the workspace tool: the quality dashboard's agreement card (weighted kappa per
// segment and per territory) and the adjudication page's panels (the 17-segment scores as small bull's-eyes with
// the territory roll-up; the model's territory flags).
import { el, svg } from "../lib/dom.js";
import { barChart } from "../lib/charts.js";
import {
  SEGMENT_NAMES,
  TERRITORIES,
  point,
  segmentCentre,
  segmentPath,
  territoryFlags,
  territoryRollup,
} from "../lib/territories.js";
import { NO_OVERLAP, PAIR_COLUMNS, fixed, percent, table } from "../quality-agreement.js";
import { percent as probability } from "../adjudicate-views.js";

export const agreement = {
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
    const rows = TERRITORIES.filter((name) => territories[name]).map((name) => ({ name, ...territories[name] }));
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

// ---------------------------------------------------------------------------------------------- adjudication
const EYE_RADIUS = 60;
const SCORE_WORDS = ["normal", "mild", "moderate", "severe", "absent"];

function miniEye(scores, phase, author) {
  const eye = svg("svg", {
    class: "mini-eye",
    viewBox: `${-EYE_RADIUS - 2} ${-EYE_RADIUS - 2} ${2 * EYE_RADIUS + 4} ${2 * EYE_RADIUS + 4}`,
    role: "img",
    "aria-label": `${author}: ${phase} scores ${scores.join(", ")}`,
    "data-phase": phase,
  });
  const title = svg("title");
  title.textContent = `${author}: ${phase} scores`;
  eye.append(title);
  scores.forEach((score, index) => {
    const segment = index + 1;
    const path = svg("path", {
      d: segmentPath(segment, EYE_RADIUS),
      class: `score-${score}`,
      "data-segment": segment,
      "data-score": score,
    });
    const tip = svg("title");
    tip.textContent = `Segment ${segment} (${SEGMENT_NAMES[index]}): ${score} ${SCORE_WORDS[score] || ""}`;
    path.append(tip);
    const centre = segmentCentre(segment);
    const [x, y] = point(centre.radius * EYE_RADIUS, centre.angle);
    const label = svg("text", { x: x.toFixed(1), y: (y + 3).toFixed(1), "text-anchor": "middle" });
    label.textContent = String(score);
    eye.append(path, label);
  });
  return el("figure", {}, eye, el("figcaption", { text: phase }));
}

function territoryTable(rows) {
  return el(
    "table",
    { class: "grid territory-mini" },
    el("thead", {}, el("tr", {}, ...["", "SSS", "SRS", "SDS", "Flag"].map((h) => el("th", { text: h })))),
    el("tbody", {}, ...rows),
  );
}

export const adjudication = {
  label(payload, _context, author) {
    let rollup;
    try {
      rollup = territoryRollup(payload.stress, payload.rest);
    } catch (error) {
      return [el("p", { class: "error", text: error.message })];
    }
    const overrides = payload.flag_overrides || {};
    const flags = territoryFlags(rollup, overrides);
    const rows = TERRITORIES.map((name) => {
      const override = overrides[name];
      const flag = `${flags[name] ? "abnormal" : "normal"}${override ? " (overridden)" : ""}`;
      return el(
        "tr",
        { "data-territory": name, "data-abnormal": String(flags[name]), title: override ? `Override: ${override.reason}` : "" },
        el("td", { text: name }),
        el("td", { class: "num", text: String(rollup[name].sss) }),
        el("td", { class: "num", text: String(rollup[name].srs) }),
        el("td", { class: "num", text: String(rollup[name].sds) }),
        el("td", { class: "flag", text: flag }),
      );
    });
    return [
      el("div", { class: "eyes" }, miniEye(payload.stress, "stress", author), miniEye(payload.rest, "rest", author)),
      territoryTable(rows),
    ];
  },
  model(prediction) {
    const output = prediction.output || {};
    const probabilities = output.probabilities || {};
    const abnormal = output.abnormal || {};
    const rows = TERRITORIES.map((name) =>
      el(
        "tr",
        { "data-territory": name, "data-abnormal": String(Boolean(abnormal[name])) },
        el("td", { text: name }),
        el("td", { class: "num", text: probability(probabilities[name]) }),
        el("td", { class: "flag", text: abnormal[name] ? "abnormal" : "normal" }),
      ),
    );
    return [
      el(
        "table",
        { class: "grid territory-mini" },
        el("thead", {}, el("tr", {}, ...["", "P(abnormal)", "Flag"].map((h) => el("th", { text: h })))),
        el("tbody", {}, ...rows),
      ),
      el("p", { class: "muted small", text: "The model predicts territory flags only, not segment scores." }),
    ];
  },
  startFromModel: () => null,
};

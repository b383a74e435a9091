// The side panels of the adjudication page: each annotator's label and the model's prediction, drawn the task's
// way (vessel: the class and the model's probabilities; OCT: the frame with the mask over it; SPECT: the 17-segment
// scores as small bull's-eyes with the territory roll-up), each with "Start from this" where it can seed the tool.
import { el, svg } from "./lib/dom.js";
import { decodeMask } from "./lib/mask-rle.js";
import {
  SEGMENT_NAMES,
  TERRITORIES,
  point,
  segmentCentre,
  segmentPath,
  territoryFlags,
  territoryRollup,
} from "./lib/territories.js";

function percent(value) {
  return typeof value === "number" ? `${(value * 100).toFixed(0)}%` : "—";
}

function words(value) {
  return String(value || "").replaceAll("_", " ");
}

// ---------------------------------------------------------------------------------------------- vessel type
const vessel = {
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
          el("span", { class: "meter", role: "img", "aria-label": `${name} ${percent(p)}` }, fill),
          el("span", { class: "num", text: percent(p) }),
        );
      }),
    );
    return [el("p", { class: "opinion-class", "data-vessel": output.vessel, text: output.vessel || "—" }), list];
  },
  startFromModel: (output) => (output && output.vessel ? { vessel: output.vessel } : null),
};

// ---------------------------------------------------------------------------------------------- OCT calcium
const OVERLAYS = {
  label: [255, 80, 80],
  model: [255, 190, 40],
};

function frameImage(context) {
  if (!context.frame) {
    const { media, frame_index: frameIndex } = context.item;
    const image = new Image();
    image.src = media.frame_url_template.replace("{n}", String(frameIndex ?? 0));
    context.frame = image.decode().then(() => image);
  }
  return context.frame;
}

/** Return a canvas showing the item's frame with `mask` (RLE) drawn over it; dimmed and unmasked when excluded. */
function maskCanvas(context, { mask, excluded, colour, name }) {
  const decoded = mask ? decodeMask(mask) : null;
  const rows = decoded ? decoded.rows : context.item.media.rows;
  const cols = decoded ? decoded.cols : context.item.media.columns;
  const canvas = el("canvas", {
    class: "opinion-canvas",
    width: cols,
    height: rows,
    role: "img",
    "aria-label": excluded ? `${name}: frame excluded` : `${name}: calcium mask over the frame`,
    "data-drawn": "false",
  });
  const area = decoded ? decoded.data.reduce((sum, v) => sum + v, 0) : 0;
  canvas.dataset.maskPixels = String(area);
  frameImage(context)
    .catch(() => null)
    .then((image) => {
      const draw = canvas.getContext("2d");
      draw.fillStyle = "#000";
      draw.fillRect(0, 0, cols, rows);
      if (image) {
        draw.globalAlpha = excluded ? 0.35 : 1;
        draw.drawImage(image, 0, 0, cols, rows);
        draw.globalAlpha = 1;
      }
      if (decoded && !excluded) {
        const overlay = new ImageData(cols, rows);
        const [r, g, b] = colour;
        decoded.data.forEach((set, i) => {
          if (!set) return;
          overlay.data.set([r, g, b, 150], i * 4);
        });
        const layer = document.createElement("canvas");
        layer.width = cols;
        layer.height = rows;
        layer.getContext("2d").putImageData(overlay, 0, 0);
        draw.drawImage(layer, 0, 0);
      }
      canvas.dataset.drawn = image ? "true" : "no-frame";
    });
  return { canvas, area, pixels: rows * cols };
}

const oct = {
  label(payload, context, author) {
    if (payload.excluded) {
      const { canvas } = maskCanvas(context, { excluded: true, name: author });
      return [canvas, el("p", { class: "opinion-facts excluded", text: `Excluded: ${words(payload.exclusion_reason)}` })];
    }
    const { canvas, area, pixels } = maskCanvas(context, { mask: payload.mask, colour: OVERLAYS.label, name: author });
    return [canvas, el("p", { class: "opinion-facts", text: `${area} px calcium (${((100 * area) / pixels).toFixed(1)}% of the frame)` })];
  },
  model(prediction, context) {
    const output = prediction.output || {};
    if (!output.mask) return [el("pre", { text: JSON.stringify(output) })];
    const name = `model v${prediction.model_version}`;
    const { canvas, area } = maskCanvas(context, { mask: output.mask, colour: OVERLAYS.model, name });
    const fraction = typeof output.calcium_fraction === "number" ? ` · calcium fraction ${output.calcium_fraction.toFixed(3)}` : "";
    return [canvas, el("p", { class: "opinion-facts", text: `${area} px calcium${fraction}` })];
  },
  startFromModel: (output) => (output && output.mask ? { mask: output.mask } : null),
};

// ---------------------------------------------------------------------------------------------- SPECT
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

const spect = {
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
        el("td", { class: "num", text: percent(probabilities[name]) }),
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

const TASKS = { vessel_type: vessel, oct_calcium: oct, spect_territory: spect };

function panel({ kind, heading, attrs, body, note, start }) {
  const header = el("header", {}, el("h3", { text: heading }));
  if (start) header.append(el("button", { type: "button", class: "secondary start-from", onclick: start }, "Start from this"));
  return el("section", { class: `opinion ${kind}`, "data-kind": kind, ...attrs }, header, ...body, el("p", { class: "muted small", text: note }));
}

/**
 * Return the panels of a case: one per annotator's label, then the model's prediction (if any).
 * `context`: {item (the workspace body's item), onStart(payload, panel, who)}.
 */
export function opinionPanels(taskType, kase, context) {
  const task = TASKS[taskType];
  const panels = kase.labels.map((label) => {
    const section = panel({
      kind: "label",
      heading: label.author,
      attrs: { "data-author": label.author, "data-label": label.label },
      body: task.label(label.payload, context, label.author),
      note: `labelled ${new Date(label.created_at).toLocaleString()}`,
      start: () => context.onStart(label.payload, section, `${label.author}'s label`),
    });
    return section;
  });
  const prediction = kase.prediction;
  if (prediction) {
    const seed = task.startFromModel(prediction.output);
    const sure = typeof prediction.confidence === "number" ? ` · ${percent(prediction.confidence)} sure` : "";
    const section = panel({
      kind: "model",
      heading: `Model v${prediction.model_version}`,
      attrs: { "data-model-version": prediction.model_version },
      body: task.model(prediction, context),
      note: `prediction${sure}`,
      start: seed ? () => context.onStart(seed, section, `model v${prediction.model_version}'s prediction`) : null,
    });
    panels.push(section);
  }
  return panels;
}

// SPECT territory tool: rest and stress polar maps under one colour map, two 17-segment bull's-eyes to
// score (0 normal … 4 absent), a live territory roll-up with reasoned flag overrides, and the ICA reference.
import {
  MAX_SCORE,
  SEGMENT_COUNT,
  SEGMENT_NAMES,
  SEGMENT_TERRITORY,
  TERRITORIES,
  TERRITORY_SEGMENTS,
  neighbourRing,
  patientAbnormal,
  point,
  segmentCentre,
  segmentPath,
  territoryFlags,
  territoryRollup,
} from "../lib/territories.js";
import { el, formatNumber, svg } from "../lib/dom.js";
import { colourBarFigure, drawSegmentOutlines, loadImage, paintMap } from "../lib/polar-colormap.js";
import { icaPanel } from "./spect-ica.js";

const PHASES = ["stress", "rest"];
const SCORE_WORDS = ["normal", "mild", "moderate", "severe", "absent"];
const EYE_RADIUS = 100;

function clinicalList(clinical = {}) {
  const { age, sex, weight_kg: weight, height_cm: height } = clinical;
  const bmi = weight && height ? (weight / (height / 100) ** 2).toFixed(1) : null;
  const rows = [
    ["Age", formatNumber(age, " y")],
    ["Sex", formatNumber(sex)],
    ["Weight", formatNumber(weight, " kg")],
    ["Height", formatNumber(height, " cm")],
    ["BMI", formatNumber(bmi)],
  ];
  return el(
    "dl",
    { id: "spect-clinical" },
    ...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]),
  );
}

function predictionPanel(prediction) {
  const output = prediction.output || {};
  const probabilities = TERRITORIES.filter((t) => typeof output[t] === "number");
  const body = probabilities.length
    ? el("ul", {}, ...probabilities.map((t) => el("li", { text: `${t}: ${(output[t] * 100).toFixed(0)}% abnormal` })))
    : el("pre", { text: JSON.stringify(output) });
  const version = prediction.model_version ? ` v${prediction.model_version}` : "";
  return el(
    "section",
    { id: "spect-prediction", class: "spect-prediction" },
    el("h3", { text: `Model prediction${version} — not a reader's label` }),
    body,
  );
}

function emptyScores() {
  return new Array(SEGMENT_COUNT).fill(0);
}

function validScores(scores) {
  return (
    Array.isArray(scores) &&
    scores.length === SEGMENT_COUNT &&
    scores.every((s) => Number.isInteger(s) && s >= 0 && s <= MAX_SCORE)
  );
}

export async function mountTool(root, ctx) {
  const item = ctx.item;
  const media = item.item.media;
  const state = {
    stress: emptyScores(),
    rest: emptyScores(),
    overrides: {},
    phase: "stress",
    selected: 1,
    outlines: true,
  };
  const history = [];
  let edited = false; // an untouched item (all 0) is a valid label, but not worth a draft
  const eyes = {};
  const maps = {};

  const snapshot = () => JSON.stringify({ stress: state.stress, rest: state.rest, overrides: state.overrides });
  function edit(apply) {
    const before = snapshot();
    apply();
    if (snapshot() === before) return;
    history.push(before);
    edited = true;
    if (history.length > 200) history.shift();
    render();
    ctx.changed();
  }

  // --- layout -------------------------------------------------------------------------------------------
  const container = el("div", { id: "spect-tool", class: "spect-tool", "data-phase": state.phase });
  const side = el("aside", { class: "spect-side" }, el("h3", { text: "Clinical" }), clinicalList(media.clinical));
  if (item.prediction) side.append(predictionPanel(item.prediction));

  const mapRow = el("section", { id: "spect-maps", class: "spect-maps" });
  for (const phase of PHASES) {
    const canvas = el("canvas", { id: `spect-map-${phase}`, width: media.columns || 256, height: media.rows || 256 });
    const overlay = svg("svg", { class: "spect-outline", viewBox: `0 0 ${media.columns || 256} ${media.rows || 256}` });
    maps[phase] = { canvas, overlay };
    mapRow.append(
      el(
        "figure",
        { class: `spect-map spect-map-${phase}` },
        el("div", { class: "spect-map-frame" }, canvas, overlay),
        el("figcaption", { text: phase === "stress" ? "Stress" : "Rest" }),
      ),
    );
  }
  mapRow.append(colourBarFigure({ id: "spect-colorbar", className: "spect-colorbar" }));

  const eyeRow = el("section", { id: "spect-eyes", class: "spect-eyes" });
  for (const phase of PHASES) {
    const r = EYE_RADIUS;
    const eye = svg("svg", {
      id: `spect-${phase}-eye`,
      class: "spect-eye",
      viewBox: `${-r - 22} ${-r - 22} ${2 * r + 44} ${2 * r + 44}`,
      role: "group",
      "aria-label": `${phase} scores`,
    });
    const groups = {};
    for (let segment = 1; segment <= SEGMENT_COUNT; segment += 1) {
      const group = svg("g", {
        class: "segment",
        "data-segment": segment,
        "data-score": 0,
        "data-territory": SEGMENT_TERRITORY[segment],
      });
      const title = svg("title");
      title.textContent = `${segment} ${SEGMENT_NAMES[segment - 1]} (${SEGMENT_TERRITORY[segment]})`;
      const centre = segmentCentre(segment);
      const [x, y] = point(centre.radius * r, centre.angle);
      // The score reads large in the middle, the segment number small beside it.
      const score = svg("text", { class: "score", x: (x + 4).toFixed(1), y: (y + 6).toFixed(1) });
      const number = svg("text", { class: "number", x: (x - 8).toFixed(1), y: (y - 2).toFixed(1) });
      number.textContent = segment;
      group.append(title, svg("path", { d: segmentPath(segment, r) }), number, score);
      group.addEventListener("click", (event) => onSegmentClick(event, phase, segment, event.shiftKey ? -1 : 1));
      group.addEventListener("contextmenu", (event) => onSegmentClick(event, phase, segment, -1));
      eye.append(group);
      groups[segment] = { group, score };
    }
    for (const [name, angle] of [
      ["LAD", 135],
      ["RCA", 270],
      ["LCX", 345],
    ]) {
      const [x, y] = point(r + 13, angle);
      const label = svg("text", { class: "territory-label", x: x.toFixed(1), y: (y + 4).toFixed(1) });
      label.textContent = name;
      eye.append(label);
    }
    eyes[phase] = { eye, groups };
    const caption = el(
      "figcaption",
      {},
      el("strong", { text: phase === "stress" ? "Stress" : "Rest" }),
      el("span", { class: "editing", text: " · editing" }),
    );
    eyeRow.append(el("figure", { class: `spect-eye-figure spect-eye-${phase}`, "data-phase": phase }, eye, caption));
  }

  const selectedLine = el("p", { id: "spect-selected", class: "spect-selected" });
  const scoreButtons = el(
    "div",
    { id: "spect-score-buttons", class: "spect-score-buttons" },
    ...SCORE_WORDS.map((word, score) =>
      el("button", { type: "button", "data-score": score, class: `score-${score}`, text: `${score} ${word}` }),
    ),
  );
  const phaseButton = el("button", { type: "button", id: "spect-phase", text: "Switch stress/rest (t)" });
  const copyButton = el("button", { type: "button", id: "spect-copy", text: "Copy stress → rest (c)" });
  const clickHint = el("p", {
    id: "spect-click-hint",
    class: "muted small",
    text: "Click a segment to raise its score by one; Shift-click or right-click lowers it.",
  });
  const controls = el(
    "div",
    { class: "spect-controls" },
    clickHint,
    selectedLine,
    scoreButtons,
    el("div", { class: "spect-actions" }, phaseButton, copyButton),
  );

  const territoryBody = el("tbody");
  const territoryRows = {};
  for (const name of TERRITORIES) {
    const cells = {
      sss: el("td", { class: "num sss" }),
      srs: el("td", { class: "num srs" }),
      sds: el("td", { class: "num sds" }),
      flag: el("td", { class: "flag" }),
      action: el("td", { class: "action" }),
    };
    const row = el(
      "tr",
      { "data-territory": name },
      el("th", { scope: "row", text: name }),
      el("td", { class: "segments muted", text: TERRITORY_SEGMENTS[name].join(", ") }),
      cells.sss,
      cells.srs,
      cells.sds,
      cells.flag,
      cells.action,
    );
    territoryRows[name] = { row, cells };
    territoryBody.append(row);
  }
  const patientCell = el("td", { id: "spect-patient", colspan: 6 });
  const territoryTable = el(
    "table",
    { id: "spect-territories", class: "grid spect-territories" },
    el(
      "thead",
      {},
      el("tr", {}, ...["Territory", "Segments", "SSS", "SRS", "SDS", "Flag", ""].map((h) => el("th", { text: h }))),
    ),
    territoryBody,
    el("tfoot", {}, el("tr", {}, el("th", { text: "Patient" }), patientCell)),
  );

  const overrideTerritory = el("strong");
  const overrideFlag = el(
    "select",
    { id: "spect-override-flag", name: "abnormal" },
    el("option", { value: "true", text: "abnormal" }),
    el("option", { value: "false", text: "normal" }),
  );
  const overrideReason = el("input", {
    id: "spect-override-reason",
    name: "reason",
    type: "text",
    autocomplete: "off",
    placeholder: "Why the rule is wrong here (required)",
  });
  const overrideError = el("p", { id: "spect-override-error", class: "error", role: "alert" });
  const overrideForm = el(
    "form",
    { id: "spect-override", class: "spect-override", hidden: true },
    el("p", {}, "Override the flag of ", overrideTerritory, " to ", overrideFlag),
    el("label", {}, "Reason", overrideReason),
    overrideError,
    el("button", { type: "submit", text: "Apply override" }),
    " ",
    el("button", { type: "button", class: "secondary", id: "spect-override-cancel", text: "Cancel" }),
  );

  const { section: icaSection, form: icaForm } = icaPanel(item, ctx);

  const main = el("div", { class: "spect-main" }, mapRow, eyeRow, controls, territoryTable, overrideForm);
  container.append(main, el("div", { class: "spect-aside" }, side, icaSection));
  root.replaceChildren(container);

  // --- behaviour ------------------------------------------------------------------------------------------
  function select(phase, segment) {
    state.phase = phase;
    state.selected = segment;
  }

  function describe(segment = state.selected, phase = state.phase) {
    const score = state[phase][segment - 1];
    return `${phase === "stress" ? "Stress" : "Rest"} segment ${segment} (${SEGMENT_NAMES[segment - 1]}, ${SEGMENT_TERRITORY[segment]}): ${score} ${SCORE_WORDS[score]}`;
  }

  function onSegmentClick(event, phase, segment, step) {
    event.preventDefault();
    select(phase, segment);
    edit(() => {
      state[phase][segment - 1] = (state[phase][segment - 1] + step + MAX_SCORE + 1) % (MAX_SCORE + 1);
    });
    render();
    ctx.status(describe());
  }

  function setScore(score, advance) {
    const segment = state.selected;
    edit(() => {
      state[state.phase][segment - 1] = score;
    });
    ctx.status(describe(segment));
    if (advance) state.selected = (segment % SEGMENT_COUNT) + 1;
    render();
  }

  function move(step) {
    state.selected = ((state.selected - 1 + step + SEGMENT_COUNT) % SEGMENT_COUNT) + 1;
    render();
  }

  function moveRing(step) {
    state.selected = neighbourRing(state.selected, step);
    render();
  }

  function switchPhase() {
    state.phase = state.phase === "stress" ? "rest" : "stress";
    render();
    ctx.status(`Scoring ${state.phase}`);
  }

  function copyStressToRest() {
    edit(() => {
      state.rest = [...state.stress];
    });
    ctx.status("Copied the stress scores to rest");
  }

  function undo() {
    const previous = history.pop();
    if (!previous) return ctx.status("Nothing to undo");
    const restored = JSON.parse(previous);
    Object.assign(state, restored);
    render();
    ctx.changed();
    ctx.status("Undone");
  }

  let overrideFor = null;
  function openOverride(territory) {
    overrideFor = territory;
    const rule = territoryRollup(state.stress, state.rest)[territory].abnormal;
    const current = state.overrides[territory];
    overrideTerritory.textContent = territory;
    overrideFlag.value = String(current ? current.abnormal : !rule);
    overrideReason.value = current ? current.reason : "";
    overrideError.textContent = "";
    overrideForm.hidden = false;
    overrideReason.focus();
  }

  function closeOverride() {
    if (overrideForm.contains(document.activeElement)) document.activeElement.blur(); // Enter belongs to the shell again
    overrideForm.hidden = true;
    overrideFor = null;
    overrideError.textContent = "";
  }

  overrideForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const reason = overrideReason.value.trim();
    if (!reason) {
      overrideError.textContent = "An override needs a reason.";
      ctx.status("Override refused: give a reason");
      overrideReason.focus();
      return;
    }
    const territory = overrideFor;
    edit(() => {
      state.overrides[territory] = { abnormal: overrideFlag.value === "true", reason };
    });
    closeOverride();
    ctx.status(`${territory} flag overridden`);
  });
  overrideForm.querySelector("#spect-override-cancel").addEventListener("click", closeOverride);
  overrideForm.addEventListener("keydown", (event) => {
    if (event.key === "Escape") closeOverride();
  });

  function clearOverride(territory) {
    edit(() => {
      delete state.overrides[territory];
    });
    ctx.status(`${territory} override removed`);
  }

  scoreButtons.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-score]");
    if (!button) return;
    button.blur(); // keep Enter for the shell's submit
    setScore(Number(button.dataset.score), false);
  });
  phaseButton.addEventListener("click", () => {
    phaseButton.blur();
    switchPhase();
  });
  copyButton.addEventListener("click", () => {
    copyButton.blur();
    copyStressToRest();
  });
  territoryBody.addEventListener("click", (event) => {
    const button = event.target.closest("button[data-territory]");
    if (!button) return;
    button.blur();
    if (button.classList.contains("clear-override")) clearOverride(button.dataset.territory);
    else openOverride(button.dataset.territory);
  });

  function toggleOutlines() {
    state.outlines = !state.outlines;
    render();
  }

  function render() {
    container.dataset.phase = state.phase;
    for (const phase of PHASES) {
      const { eye, groups } = eyes[phase];
      eye.closest("figure").classList.toggle("active", phase === state.phase);
      for (let segment = 1; segment <= SEGMENT_COUNT; segment += 1) {
        const { group, score } = groups[segment];
        const value = state[phase][segment - 1];
        group.setAttribute("data-score", value);
        group.setAttribute(
          "class",
          `segment score-${value}${phase === state.phase && segment === state.selected ? " selected" : ""}`,
        );
        score.textContent = value;
      }
      maps[phase].overlay.style.display = state.outlines ? "" : "none";
    }
    selectedLine.textContent = describe();
    for (const button of scoreButtons.children) {
      button.classList.toggle("current", Number(button.dataset.score) === state[state.phase][state.selected - 1]);
    }
    const rollup = territoryRollup(state.stress, state.rest);
    const flags = territoryFlags(rollup, state.overrides);
    for (const name of TERRITORIES) {
      const { row, cells } = territoryRows[name];
      const t = rollup[name];
      const override = state.overrides[name];
      cells.sss.textContent = t.sss;
      cells.srs.textContent = t.srs;
      cells.sds.textContent = t.sds;
      row.dataset.abnormal = String(flags[name]);
      row.dataset.ruleAbnormal = String(t.abnormal);
      row.dataset.overridden = String(Boolean(override));
      row.classList.toggle("abnormal", flags[name]);
      cells.flag.replaceChildren(
        el("span", { class: `flag-badge ${flags[name] ? "bad" : "ok"}`, text: flags[name] ? "abnormal" : "normal" }),
        ...(override
          ? [
              el("span", {
                class: "override-note",
                text: ` overridden (rule: ${t.abnormal ? "abnormal" : "normal"}) — ${override.reason}`,
              }),
            ]
          : []),
      );
      cells.action.replaceChildren(
        override
          ? el("button", {
              type: "button",
              class: "secondary clear-override",
              "data-territory": name,
              text: "Remove override",
            })
          : el("button", { type: "button", class: "secondary override", "data-territory": name, text: "Override" }),
      );
    }
    const abnormal = patientAbnormal(rollup, state.overrides);
    patientCell.replaceChildren(
      el("span", { class: `flag-badge ${abnormal ? "bad" : "ok"}`, text: abnormal ? "abnormal" : "normal" }),
    );
    patientCell.dataset.abnormal = String(abnormal);
  }

  // --- polar maps -----------------------------------------------------------------------------------------
  async function drawMap(phase, url) {
    const { canvas, overlay } = maps[phase];
    try {
      const image = await loadImage(url);
      paintMap(canvas, image);
    } catch (failure) {
      canvas.replaceWith(
        el("p", { class: "error", text: `The ${phase} map could not be shown (${failure.message}).` }),
      );
      ctx.status(`The ${phase} map could not be loaded`);
    }
    drawSegmentOutlines(overlay, canvas.width, canvas.height);
  }

  const keyScore = (score) => ({
    key: String(score),
    label: `Score ${score} (${SCORE_WORDS[score]}), next segment`,
    run: () => setScore(score, true),
  });
  const shortcuts = [
    { key: "ArrowRight", label: "Next segment", run: () => move(1) },
    { key: "ArrowLeft", label: "Previous segment", run: () => move(-1) },
    { key: "ArrowUp", label: "Segment one ring outward (to base)", run: () => moveRing(1) },
    { key: "ArrowDown", label: "Segment one ring inward (to apex)", run: () => moveRing(-1) },
    ...[0, 1, 2, 3, 4].map(keyScore),
    { key: "t", label: "Switch stress / rest", run: switchPhase },
    { key: "c", label: "Copy stress scores to rest", run: copyStressToRest },
    {
      key: "o",
      label: "Override the flag of the selected segment's territory",
      run: () => openOverride(SEGMENT_TERRITORY[state.selected]),
    },
    { key: "g", label: "Segment outlines on the polar maps", run: toggleOutlines },
    { key: "Ctrl+z", label: "Undo", run: undo },
  ];
  if (icaForm)
    shortcuts.push({ key: "i", label: "Enter the ICA reference", run: () => icaForm.querySelector("input").focus() });
  for (const shortcut of shortcuts) {
    const run = shortcut.run;
    shortcut.run = (event) => {
      if (event && typeof event.preventDefault === "function") event.preventDefault();
      run();
    };
  }

  render();
  await Promise.all([drawMap("stress", media.stress_url), drawMap("rest", media.rest_url)]);

  const tool = {
    shortcuts,
    getDraft() {
      return edited ? (tool.getPayload().payload ?? null) : null;
    },
    getPayload() {
      if (!validScores(state.stress) || !validScores(state.rest)) return { error: "Every segment needs a score 0-4" };
      for (const [territory, override] of Object.entries(state.overrides)) {
        if (!override.reason?.trim()) return { error: `The ${territory} override needs a reason` };
      }
      return {
        payload: {
          stress: [...state.stress],
          rest: [...state.rest],
          flag_overrides: structuredClone(state.overrides),
        },
      };
    },
    setPayload(payload) {
      if (!payload) return;
      state.stress = validScores(payload.stress) ? [...payload.stress] : emptyScores();
      state.rest = validScores(payload.rest) ? [...payload.rest] : emptyScores();
      const overrides =
        payload.flag_overrides && typeof payload.flag_overrides === "object" ? payload.flag_overrides : {};
      state.overrides = Object.fromEntries(
        Object.entries(overrides).filter(([t, o]) => TERRITORIES.includes(t) && o && typeof o.abnormal === "boolean"),
      );
      history.length = 0;
      edited = false;
      closeOverride();
      render();
    },
    destroy() {
      history.length = 0;
      root.replaceChildren();
    },
  };
  return tool;
}

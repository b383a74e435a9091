// One 12-lead ECG drawn on ECG paper (SVG in millimetres): 25 mm/s, 10 mm/mV, a 1 mV calibration pulse per lead,
// each lead labelled, a time axis in seconds below. The samples come from the signal API in the channels' units.

import { svg } from "./lib/dom.js";

const MM_PER_S = 25;
const MM_PER_MV = 10;
const ROW_MM = 20; // one lead per row; large deflections may cross into the next row, as on paper
const LEFT_MM = 16; // lead name and calibration pulse
const TOP_MM = 4;
const AXIS_MM = 12; // time axis below the last row
const TO_MV = { uV: 0.001, "µV": 0.001, mV: 1, V: 1000 };

const section = document.getElementById("ecg");
const plot = document.getElementById("ecg-plot");
const status = document.getElementById("ecg-status");
const startInput = document.getElementById("ecg-start");
const secondsInput = document.getElementById("ecg-seconds");
const duration = Number(section.dataset.duration);

function line(x1, y1, x2, y2, cls) {
  return svg("line", { x1, y1, x2, y2, class: cls });
}

function text(x, y, value, cls, anchor = "start") {
  const node = svg("text", { x, y, class: cls, "text-anchor": anchor });
  node.textContent = value;
  return node;
}

/** The paper: 1 mm squares, every fifth line heavier (0.2 s × 0.5 mV). */
function grid(width, height) {
  const group = svg("g", { class: "ecg-grid" });
  group.append(svg("rect", { x: 0, y: 0, width, height, class: "ecg-paper-bg" }));
  for (let x = 0; x <= width; x += 1) {
    group.append(line(x, 0, x, height, x % 5 === 0 ? "major" : "minor"));
  }
  for (let y = 0; y <= height; y += 1) {
    group.append(line(0, y, width, y, y % 5 === 0 ? "major" : "minor"));
  }
  return group;
}

function tracePath(values, toMv, baseline) {
  const parts = new Array(values.length);
  const step = MM_PER_S / signalRate;
  for (let i = 0; i < values.length; i += 1) {
    const x = LEFT_MM + i * step;
    const y = baseline - values[i] * toMv * MM_PER_MV;
    parts[i] = `${i === 0 ? "M" : "L"}${x.toFixed(3)} ${y.toFixed(3)}`;
  }
  return parts.join("");
}

let signalRate = 1;

function draw(signal) {
  signalRate = signal.sampling_frequency;
  const count = signal.samples.length ? signal.samples[0].length : 0;
  const seconds = count / signal.sampling_frequency;
  const width = Math.ceil(LEFT_MM + seconds * MM_PER_S + 4);
  const rowsBottom = TOP_MM + signal.leads.length * ROW_MM;
  const height = rowsBottom + AXIS_MM;
  plot.replaceChildren();
  plot.setAttribute("viewBox", `0 0 ${width} ${height}`);
  plot.style.aspectRatio = `${width} / ${height}`;
  plot.append(grid(width, rowsBottom));
  const unknownUnits = new Set();
  signal.leads.forEach((lead, index) => {
    const baseline = TOP_MM + index * ROW_MM + ROW_MM / 2;
    const unit = signal.units[index];
    const toMv = TO_MV[unit] ?? 1;
    if (!(unit in TO_MV)) unknownUnits.add(unit || "(none)");
    const group = svg("g", { class: "ecg-lead", "data-lead": lead });
    group.append(text(1, baseline - ROW_MM / 2 + 4.5, lead, "lead-label"));
    // The calibration pulse: 1 mV high, 0.2 s wide.
    const c = LEFT_MM - 8;
    group.append(
      svg("path", {
        class: "calibration",
        d: `M${c - 2} ${baseline}L${c} ${baseline}L${c} ${baseline - MM_PER_MV}L${c + 5} ${baseline - MM_PER_MV}L${c + 5} ${baseline}L${c + 7} ${baseline}`,
      }),
    );
    group.append(
      svg("path", {
        class: "trace",
        d: tracePath(signal.samples[index], toMv, baseline),
        "data-points": String(signal.samples[index].length),
      }),
    );
    plot.append(group);
  });
  // Amplitude scale over the first calibration pulse, and the time axis below the rows.
  const scale = svg("g", { class: "amplitude-scale" });
  scale.append(text(LEFT_MM - 5.5, TOP_MM + ROW_MM / 2 - MM_PER_MV - 1, "1 mV", "scale-label", "middle"));
  plot.append(scale);
  const axis = svg("g", { class: "time-axis" });
  axis.append(line(LEFT_MM, rowsBottom, LEFT_MM + seconds * MM_PER_S, rowsBottom, "axis"));
  const first = signal.start_sample / signal.sampling_frequency;
  const every = seconds > 12 ? 2 : seconds > 4 ? 1 : 0.5;
  for (let t = Math.ceil(first / every) * every; t <= first + seconds + 1e-9; t += every) {
    const x = LEFT_MM + (t - first) * MM_PER_S;
    axis.append(line(x, rowsBottom, x, rowsBottom + 1.5, "tick"));
    axis.append(text(x, rowsBottom + 5, `${Number(t.toFixed(2))} s`, "tick-label", "middle"));
  }
  axis.append(text(LEFT_MM + (seconds * MM_PER_S) / 2, rowsBottom + 10, "time (s)", "axis-title", "middle"));
  plot.append(axis);
  const shown = `${first.toFixed(2)}–${(first + seconds).toFixed(2)} s of ${signal.duration_s.toFixed(2)} s`;
  const units = unknownUnits.size ? ` Units ${[...unknownUnits].join(", ")} are drawn as mV.` : "";
  status.textContent = `${signal.leads.length} leads, ${shown}, ${signal.sampling_frequency} Hz.${units}`;
}

async function load() {
  const start = Math.max(0, Number(startInput.value) || 0);
  const seconds = Number(secondsInput.value);
  section.dataset.state = "loading";
  const url = `${section.dataset.signalUrl}?start=${start}&seconds=${seconds}`;
  try {
    const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || `the server answered ${response.status}`);
    draw(body);
    section.dataset.state = "ready";
  } catch (error) {
    status.textContent = `The signal could not be loaded: ${error.message}`;
    status.classList.add("error");
    section.dataset.state = "error";
  }
}

function shift(direction) {
  const seconds = Number(secondsInput.value);
  const latest = Math.max(0, duration - seconds);
  const next = Math.min(latest, Math.max(0, (Number(startInput.value) || 0) + direction * seconds));
  startInput.value = String(Number(next.toFixed(3)));
  load();
}

document.getElementById("ecg-earlier").addEventListener("click", () => shift(-1));
document.getElementById("ecg-later").addEventListener("click", () => shift(1));
startInput.addEventListener("change", load);
secondsInput.addEventListener("change", load);
document.getElementById("ecg-window").addEventListener("submit", (event) => {
  event.preventDefault();
  load();
});
load();

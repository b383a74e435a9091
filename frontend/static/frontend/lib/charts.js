// Small inline-SVG charts for the leads' pages: line chart, bar chart, heatmap and histogram.
//
// Each function returns a <figure class="chart" data-chart="<name>"> with a caption, an <svg role="img"> that
// carries a <title> and an aria-label, axes with ticks and axis labels, and a <title> on every mark (hover shows
// the exact value). Without data the figure holds a sentence instead (data-empty="true"), e.g. "No model yet."
// Colours come from CSS classes (quality.css): series-0…3, and the marks' own classes.
import { el, svg } from "./dom.js";

const WIDTH = 480;
const HEIGHT = 260;
const MARGIN = { top: 14, right: 16, bottom: 48, left: 56 };
const DAY_MS = 86_400_000;

// ---------------------------------------------------------------------------------------------- helpers
/** Return a linear map from a domain [d0, d1] to a range [r0, r1]. */
export function linear([d0, d1], [r0, r1]) {
  const span = d1 - d0 || 1;
  return (value) => r0 + ((value - d0) / span) * (r1 - r0);
}

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const power = 10 ** Math.floor(Math.log10(raw));
  const fraction = raw / power;
  return (fraction <= 1 ? 1 : fraction <= 2 ? 2 : fraction <= 5 ? 5 : 10) * power;
}

/** Return about `count` round tick values covering [lo, hi]. */
export function niceTicks(lo, hi, count = 5) {
  if (!(hi > lo)) return [lo];
  const step = niceStep(hi - lo, count);
  const ticks = [];
  for (let value = Math.ceil(lo / step - 1e-9) * step; value <= hi + step * 1e-9; value += step) {
    ticks.push(Number(value.toPrecision(12)));
  }
  return ticks;
}

/** Return [lo, hi] widened to round numbers (and to something non-empty when lo == hi). */
function niceDomain(values, { zero = false } = {}) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (zero) lo = Math.min(0, lo);
  if (lo === hi) [lo, hi] = lo === 0 ? [0, 1] : [lo - Math.abs(lo) * 0.1, hi + Math.abs(hi) * 0.1];
  const step = niceStep(hi - lo, 5);
  return [Math.floor(lo / step) * step, Math.ceil(hi / step) * step];
}

/** Return a number for a label: integers as they are, others with up to `digits` decimals. */
export function formatValue(value, digits = 2) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (Number.isInteger(value)) return String(value);
  return String(Number(value.toFixed(digits)));
}

/** Return an ISO day ("2024-05-01") as milliseconds since the epoch (UTC), for time axes. */
export function dayValue(day) {
  return Date.parse(`${day}T00:00:00Z`);
}

function dayText(ms) {
  return new Date(ms).toISOString().slice(5, 10);
}

/** Count `values` into `bins` equal bins over [lo, hi] (the top edge counts in the last bin). */
export function binValues(values, { bins = 10, lo = 0, hi = 1 } = {}) {
  const edges = Array.from({ length: bins + 1 }, (_, i) => Number((lo + ((hi - lo) * i) / bins).toPrecision(12)));
  const counts = new Array(bins).fill(0);
  for (const value of values) {
    if (value === null || value === undefined || value < lo || value > hi) continue;
    counts[Math.min(bins - 1, Math.floor(((value - lo) / (hi - lo)) * bins))] += 1;
  }
  return { edges, counts };
}

function text(x, y, content, attrs = {}) {
  const node = svg("text", { x, y, ...attrs });
  node.textContent = content;
  return node;
}

function titled(node, content) {
  const title = svg("title");
  title.textContent = content;
  node.append(title);
  return node;
}

function figure(name, title, description) {
  const chart = svg("svg", {
    class: "chart-svg",
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    role: "img",
    "aria-label": `${title}. ${description}`,
    preserveAspectRatio: "xMidYMid meet",
  });
  titled(chart, title);
  const node = el("figure", { class: "chart", "data-chart": name, "data-empty": "false" }, el("figcaption", { text: title }), chart);
  return { node, chart };
}

function emptyFigure(name, title, message) {
  return el(
    "figure",
    { class: "chart", "data-chart": name, "data-empty": "true" },
    el("figcaption", { text: title }),
    el("p", { class: "chart-empty muted", text: message }),
  );
}

const plot = {
  left: MARGIN.left,
  right: WIDTH - MARGIN.right,
  top: MARGIN.top,
  bottom: HEIGHT - MARGIN.bottom,
};

/** Draw the two axes with ticks ({value, text} on x), tick labels and axis titles. */
function axes(chart, { xTicks, yTicks, x, y, yFormat, xLabel, yLabel }) {
  const group = svg("g", { class: "axes" });
  group.append(svg("line", { class: "axis", x1: plot.left, x2: plot.right, y1: plot.bottom, y2: plot.bottom }));
  group.append(svg("line", { class: "axis", x1: plot.left, x2: plot.left, y1: plot.top, y2: plot.bottom }));
  for (const tick of yTicks) {
    const at = y(tick);
    group.append(svg("line", { class: "grid", x1: plot.left, x2: plot.right, y1: at, y2: at }));
    group.append(text(plot.left - 6, at + 4, yFormat(tick), { class: "tick", "text-anchor": "end" }));
  }
  for (const tick of xTicks) {
    const at = x(tick.value);
    group.append(svg("line", { class: "tick-mark", x1: at, x2: at, y1: plot.bottom, y2: plot.bottom + 4 }));
    group.append(text(at, plot.bottom + 17, tick.text, { class: "tick", "text-anchor": "middle" }));
  }
  group.append(text((plot.left + plot.right) / 2, HEIGHT - 8, xLabel, { class: "axis-label", "text-anchor": "middle" }));
  const middle = (plot.top + plot.bottom) / 2;
  group.append(
    text(14, middle, yLabel, { class: "axis-label", "text-anchor": "middle", transform: `rotate(-90 14 ${middle})` }),
  );
  chart.append(group);
}

function legend(entries) {
  return el(
    "ul",
    { class: "chart-legend" },
    ...entries.map(({ text: label, className }) =>
      el("li", {}, el("span", { class: `swatch ${className}`, "aria-hidden": "true" }), ` ${label}`),
    ),
  );
}

// ---------------------------------------------------------------------------------------------- charts
/**
 * A line chart with points. `series`: [{name, points: [{x, y, title?, className?}]}]; `xType` "number" or "day"
 * (x given as ISO days). `marks`: extra legend entries for point classes ([{text, className}]).
 */
export function lineChart({ name, title, xLabel, yLabel, series, xType = "number", yDomain, empty, marks = [] }) {
  const toX = (value) => (xType === "day" ? dayValue(value) : value);
  const all = series.flatMap((s) => s.points.filter((p) => p.y !== null && p.y !== undefined));
  if (!all.length) return emptyFigure(name, title, empty);
  const xs = all.map((p) => toX(p.x));
  let [x0, x1] = [Math.min(...xs), Math.max(...xs)];
  if (x0 === x1) [x0, x1] = xType === "day" ? [x0 - DAY_MS, x1 + DAY_MS] : [x0 - 1, x1 + 1];
  const [y0, y1] = yDomain || niceDomain(all.map((p) => p.y));
  const x = linear([x0, x1], [plot.left + 10, plot.right - 10]);
  const y = linear([y0, y1], [plot.bottom, plot.top]);
  const xTicks =
    xType === "day"
      ? niceTicks(0, (x1 - x0) / DAY_MS, 6)
          .filter(Number.isInteger)
          .map((days) => ({ value: x0 + days * DAY_MS, text: dayText(x0 + days * DAY_MS) }))
      : niceTicks(x0, x1, 6).map((value) => ({ value, text: formatValue(value) }));
  const description = series
    .map((s) => `${s.name}: ${s.points.map((p) => `${p.x} → ${formatValue(p.y, 3)}`).join(", ") || "no points"}`)
    .join("; ");
  const { node, chart } = figure(name, title, description);
  axes(chart, { xTicks, yTicks: niceTicks(y0, y1, 5), x, y, yFormat: (v) => formatValue(v), xLabel, yLabel });
  series.forEach((s, index) => {
    const points = s.points
      .filter((p) => p.y !== null && p.y !== undefined)
      .sort((a, b) => toX(a.x) - toX(b.x));
    const group = svg("g", { class: `series series-${index}`, "data-series": s.name });
    if (points.length > 1) {
      const d = points.map((p, i) => `${i ? "L" : "M"} ${x(toX(p.x)).toFixed(1)} ${y(p.y).toFixed(1)}`).join(" ");
      group.append(svg("path", { class: "line", d }));
    }
    for (const p of points) {
      const circle = svg("circle", {
        class: `point ${p.className || ""}`.trim(),
        cx: x(toX(p.x)).toFixed(1),
        cy: y(p.y).toFixed(1),
        r: 4.5,
        "data-x": p.x,
        "data-y": p.y,
      });
      group.append(titled(circle, p.title || `${s.name}: ${p.x} → ${formatValue(p.y, 3)}`));
    }
    chart.append(group);
  });
  const entries = series.map((s, index) => ({ text: s.name, className: `series-${index}` }));
  if (entries.length > 1 || marks.length) node.append(legend([...entries, ...marks]));
  return node;
}

/** A bar chart of categories. `bars`: [{label, value, title?}]; a null value shows a dash instead of a bar. */
export function barChart({ name, title, xLabel, yLabel, bars, yDomain, empty, format = (v) => formatValue(v) }) {
  if (!bars.length || bars.every((b) => b.value === null || b.value === undefined)) {
    return emptyFigure(name, title, empty);
  }
  const values = bars.map((b) => b.value).filter((v) => v !== null && v !== undefined);
  const [y0, y1] = yDomain || niceDomain(values, { zero: true });
  const y = linear([y0, y1], [plot.bottom, plot.top]);
  const band = (plot.right - plot.left) / bars.length;
  const centre = (index) => plot.left + band * (index + 0.5);
  const description = bars.map((b) => `${b.label}: ${format(b.value)}`).join(", ");
  const { node, chart } = figure(name, title, description);
  const xTicks = bars.map((b, index) => ({ value: index, text: b.label }));
  axes(chart, { xTicks, yTicks: niceTicks(y0, y1, 5), x: centre, y, yFormat: (v) => formatValue(v), xLabel, yLabel });
  const baseline = y(Math.max(y0, Math.min(y1, 0)));
  const group = svg("g", { class: "bars" });
  bars.forEach((b, index) => {
    const width = Math.min(48, band * 0.7);
    const bar = svg("g", { class: "bar-group", "data-label": b.label, "data-value": b.value ?? "" });
    if (b.value === null || b.value === undefined) {
      bar.append(text(centre(index), plot.bottom - 6, "—", { class: "bar-value", "text-anchor": "middle" }));
    } else {
      // Bars grow from zero (down for negative values, e.g. a kappa below chance).
      const end = y(Math.max(y0, Math.min(y1, b.value)));
      const top = Math.min(end, baseline);
      const rect = svg("rect", {
        class: `bar${b.value < 0 ? " negative" : ""}`,
        x: (centre(index) - width / 2).toFixed(1),
        y: top.toFixed(1),
        width: width.toFixed(1),
        height: Math.abs(baseline - end).toFixed(1),
      });
      bar.append(titled(rect, b.title || `${b.label}: ${format(b.value)}`));
      const labelY = b.value < 0 ? end + 12 : end - 4;
      bar.append(text(centre(index), labelY, format(b.value), { class: "bar-value", "text-anchor": "middle" }));
    }
    group.append(bar);
  });
  chart.append(group);
  return node;
}

/** A heatmap of counts: `values[r][c]` for row label `rows[r]` and column label `cols[c]` (a confusion matrix). */
export function heatmap({ name, title, xLabel, yLabel, rows, cols, values, empty, cellTitle }) {
  const total = values.flat().reduce((sum, v) => sum + (v || 0), 0);
  if (!total) return emptyFigure(name, title, empty);
  const max = Math.max(...values.flat());
  const size = Math.min((plot.right - plot.left - 20) / cols.length, (plot.bottom - plot.top) / rows.length);
  const left = plot.left + 20;
  const description = rows
    .map((r, i) => `${r}: ${cols.map((c, j) => `${c} ${values[i][j]}`).join(", ")}`)
    .join("; ");
  const { node, chart } = figure(name, title, description);
  const group = svg("g", { class: "cells" });
  rows.forEach((rowLabel, i) => {
    group.append(
      text(left - 6, plot.top + size * (i + 0.5) + 4, rowLabel, { class: "tick", "text-anchor": "end" }),
    );
    cols.forEach((colLabel, j) => {
      const count = values[i][j] || 0;
      const cell = svg("g", {
        class: `cell${i === j ? " diagonal" : ""}`,
        "data-row": rowLabel,
        "data-col": colLabel,
        "data-count": count,
      });
      const rect = svg("rect", {
        x: (left + size * j).toFixed(1),
        y: (plot.top + size * i).toFixed(1),
        width: (size - 2).toFixed(1),
        height: (size - 2).toFixed(1),
        "fill-opacity": (count ? 0.15 + 0.85 * (count / max) : 0.04).toFixed(3),
      });
      cell.append(titled(rect, cellTitle ? cellTitle(rowLabel, colLabel, count) : `${rowLabel} × ${colLabel}: ${count}`));
      const strong = count / max > 0.55;
      cell.append(
        text(left + size * (j + 0.5) - 1, plot.top + size * (i + 0.5) + 4, String(count), {
          class: `cell-count${strong ? " on-strong" : ""}`,
          "text-anchor": "middle",
        }),
      );
      group.append(cell);
    });
  });
  cols.forEach((colLabel, j) => {
    group.append(
      text(left + size * (j + 0.5), plot.top + size * rows.length + 14, colLabel, { class: "tick", "text-anchor": "middle" }),
    );
  });
  const middleX = left + (size * cols.length) / 2;
  group.append(text(middleX, plot.top + size * rows.length + 32, xLabel, { class: "axis-label", "text-anchor": "middle" }));
  const middleY = plot.top + (size * rows.length) / 2;
  group.append(
    text(14, middleY, yLabel, { class: "axis-label", "text-anchor": "middle", transform: `rotate(-90 14 ${middleY})` }),
  );
  chart.append(group);
  return node;
}

/** A histogram: `counts[i]` items between `edges[i]` and `edges[i + 1]`. */
export function histogram({ name, title, xLabel, yLabel = "items", edges, counts, empty, unit = "items" }) {
  if (!counts.length || !counts.some((c) => c > 0)) return emptyFigure(name, title, empty);
  const [lo, hi] = [edges[0], edges[edges.length - 1]];
  const x = linear([lo, hi === lo ? lo + 1 : hi], [plot.left, plot.right]);
  const [y0, y1] = niceDomain(counts, { zero: true });
  const y = linear([y0, y1], [plot.bottom, plot.top]);
  const description = counts
    .map((count, i) => (count ? `${formatValue(edges[i], 3)}–${formatValue(edges[i + 1], 3)}: ${count}` : null))
    .filter(Boolean)
    .join(", ");
  const { node, chart } = figure(name, title, description);
  const xTicks = niceTicks(lo, hi, 6).map((value) => ({ value, text: formatValue(value) }));
  const yTicks = niceTicks(y0, y1, 5).filter(Number.isInteger);
  axes(chart, { xTicks, yTicks, x, y, yFormat: (v) => formatValue(v), xLabel, yLabel });
  const group = svg("g", { class: "bars" });
  counts.forEach((count, i) => {
    const left = x(edges[i]);
    const right = x(edges[i + 1]);
    const top = y(count);
    const rect = svg("rect", {
      class: "bar",
      x: (left + 0.5).toFixed(1),
      y: top.toFixed(1),
      width: Math.max(0, right - left - 1).toFixed(1),
      height: Math.max(0, plot.bottom - top).toFixed(1),
      "data-from": edges[i],
      "data-to": edges[i + 1],
      "data-count": count,
    });
    group.append(titled(rect, `${formatValue(edges[i], 3)}–${formatValue(edges[i + 1], 3)}: ${count} ${unit}`));
  });
  chart.append(group);
  return node;
}

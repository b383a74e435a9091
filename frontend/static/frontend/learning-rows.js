// Rows of the active-learning card: one job with its progress bar, one model version with its promotion rule.
import { el } from "./lib/dom.js";

const KINDS = { train: "Training", score: "Scoring" };

function fixed(value, digits) {
  return typeof value === "number" && Number.isFinite(value) ? value.toFixed(digits) : null;
}

/** Return the job's progress in words: phase, epoch, loss, validation, done of total. */
export function jobFacts(job) {
  const detail = job.detail || {};
  const facts = [];
  if (detail.phase) facts.push(detail.phase);
  if (detail.epoch !== undefined && detail.epoch !== null && detail.phase === "training") {
    facts.push(`epoch ${detail.epoch}${detail.total ? ` of ${detail.total}` : ""}`);
  } else if (detail.total) {
    facts.push(`${detail.done ?? 0} of ${detail.total}`);
  }
  const loss = fixed(detail.loss, 4);
  if (loss !== null) facts.push(`loss ${loss}`);
  const validation = fixed(detail.validation, 3);
  if (validation !== null) facts.push(`validation ${validation}`);
  return facts;
}

/** Return the list item showing one training or scoring job. */
export function jobRow(job, versionNumbers) {
  const percent = Math.round(Math.min(1, Math.max(0, job.progress || 0)) * 100);
  const kind = KINDS[job.kind] || job.kind;
  const number = versionNumbers.get(job.model_version);
  const reason = job.params && job.params.reason ? ` · ${job.params.reason}` : "";
  const fill = el("span", { class: "fill" });
  fill.style.width = `${percent}%`;
  const bar = el(
    "div",
    {
      class: "bar",
      role: "progressbar",
      "aria-valuemin": "0",
      "aria-valuemax": "100",
      "aria-valuenow": String(percent),
      "aria-label": `${kind} job ${job.id}`,
    },
    fill,
  );
  const row = el(
    "li",
    { class: `job ${job.status}`, "data-job": job.id, "data-status": job.status },
    el(
      "div",
      { class: "job-head" },
      el("strong", { text: `${kind} #${job.id}` }),
      el("span", { class: "job-status", text: job.status }),
      el("span", { class: "muted", text: `${number ? `model v${number}` : ""}${reason}` }),
    ),
    el("div", { class: "job-progress" }, bar, el("span", { class: "percent", text: `${percent} %` })),
    el("div", { class: "job-detail muted", text: jobFacts(job).join(" · ") }),
  );
  if (job.error) row.append(el("div", { class: "job-error error", text: job.error }));
  return row;
}

/** Return how well the version's probabilities are calibrated, in words: its test ECE with interval, and what
 * was fitted on validation (a temperature; an ensemble's members, whose spread averaging smooths out). */
export function calibrationText(metrics) {
  const test = metrics.test || {};
  const fitted = metrics.calibration || {};
  const parts = [];
  const ece = fixed(test.ece, 3);
  if (ece !== null) {
    const ci = test.ece_ci;
    const interval = ci && ci[0] !== null && ci[1] !== null ? ` [${fixed(ci[0], 3)}–${fixed(ci[1], 3)}]` : "";
    parts.push(`test ECE ${ece}${interval}`);
  }
  const temperature = fixed(fitted.temperature, 2);
  if (temperature !== null) parts.push(`temperature ${temperature} fitted on ${fitted.n} validation items`);
  const members = (fitted.member_log_loss || []).filter((v) => typeof v === "number");
  if (members.length > 1) {
    const low = fixed(Math.min(...members), 3);
    const high = fixed(Math.max(...members), 3);
    parts.push(`${members.length} ensemble members, validation log loss ${low}–${high} (averaged)`);
  }
  if (fitted.fitted === false && fitted.reason) parts.push(fitted.reason);
  return parts.join("; ");
}

/** Return the table row of one model version: number, family, status, test metric with its interval and n,
 * its calibration, and the rule of the last decision on it (which says "not enough evidence" below the project's
 * minimum test size). */
export function versionRow(version, primaryMetric) {
  const metrics = version.metrics || {};
  const test = metrics.test || {};
  const score = fixed(test[primaryMetric], 3);
  const ci = test[`${primaryMetric}_ci`];
  const interval = ci && ci[0] !== null && ci[1] !== null ? ` [${fixed(ci[0], 3)}–${fixed(ci[1], 3)}]` : "";
  return el(
    "tr",
    { class: `version ${version.status}`, "data-number": version.number, "data-status": version.status },
    el("td", { class: "num", text: `v${version.number}` }),
    el("td", { text: version.family }),
    el("td", { class: "version-status", text: version.status }),
    el("td", { class: "num", text: score === null ? "—" : `${score}${interval}${test.n ? ` (n=${test.n})` : ""}` }),
    el("td", { class: "calibration", text: calibrationText(metrics) || "—" }),
    el("td", {
      class: "rule",
      text: version.decision_rule || "",
      title: version.decided_at ? `decided ${version.decided_at}` : "",
    }),
  );
}

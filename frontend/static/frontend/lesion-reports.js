// The lead's lesion-report card: upload a report CSV (every bad row listed when it is refused), then the exams with
// their lesions, the runs each links to, and the flags that make an exam ambiguous.
import { makeApi } from "./api.js";
import { el } from "./lib/dom.js";

const card = document.getElementById("lesion-reports");
const $ = (id) => document.getElementById(id);
const csrf = document.querySelector("input[name=csrfmiddlewaretoken]").value;
const api = makeApi(csrf);
const PAGE = 25;
const FLAG_WORDS = {
  dominance_unknown: "dominance unknown (PDA / PLA cannot be placed)",
  no_run_of_artery: "a lesion's artery has no typed run",
  untyped_runs: "runs without a usable vessel type yet",
};
const state = { offset: 0 };

function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

function showErrors(title, errors) {
  const box = $("lesion-errors");
  $("lesion-errors-title").textContent = title;
  box.querySelector("ul").replaceChildren(
    ...errors.map((error) => {
      const where = error.row === null ? "File" : `Row ${error.row}`;
      const column = error.column ? ` · ${error.column}` : "";
      const text = `${where}${column}: ${error.message}`;
      return el("li", { "data-row": error.row ?? "", "data-column": error.column ?? "" }, text);
    }),
  );
  box.hidden = errors.length === 0 && !title;
}

async function upload(event) {
  event.preventDefault();
  const file = $("lesion-file").files[0];
  if (!file) return;
  const status = $("lesion-status");
  const body = new FormData();
  body.append("file", file);
  $("lesion-submit").disabled = true;
  status.className = "";
  status.textContent = `Importing ${file.name}…`;
  showErrors("", []);
  try {
    const response = await fetch(card.dataset.reportsUrl, {
      method: "POST",
      body,
      credentials: "same-origin",
      headers: { Accept: "application/json", "X-CSRFToken": csrf },
    });
    const answer = (response.headers.get("Content-Type") || "").includes("json") ? await response.json() : {};
    if (response.ok) {
      const parts = [plural(answer.exams, "exam"), plural(answer.lesions, "lesion")];
      if (answer.exams_without_lesions) parts.push(`${answer.exams_without_lesions} without lesions`);
      if (answer.superseded) parts.push(`${plural(answer.superseded, "earlier report")} superseded`);
      status.textContent = `Imported ${answer.source_name}: ${parts.join(", ")}.`;
      status.className = "good";
      $("lesion-upload").reset();
      state.offset = 0;
      await load();
    } else {
      status.textContent = "";
      showErrors(answer.detail || `The server answered ${response.status}.`, answer.errors || []);
    }
  } catch (error) {
    status.textContent = "Could not reach the server.";
    status.className = "error";
  } finally {
    $("lesion-submit").disabled = false;
  }
}

function runWords(run) {
  if (run.basis === "none") return `${run.title}: ${run.reason.replaceAll("_", " ")}`;
  const how = run.basis === "model" ? `model ${run.probability.toFixed(2)}` : "label";
  return `${run.title}: ${run.vessel} (${how})`;
}

function lesionItem(lesion, runs) {
  const titles = lesion.runs.map((id) => runs.get(id)?.title || `#${id}`);
  const where = lesion.problem ? FLAG_WORDS[lesion.problem] : `→ ${titles.join(", ")}`;
  return el(
    "li",
    { "data-segment": lesion.segment, class: lesion.problem ? "unlinked" : "linked" },
    el("strong", { text: `${lesion.segment} ${lesion.segment_name}` }),
    ` ${lesion.stenosis_percent} % `,
    el("span", { class: "muted", text: where }),
  );
}

function studyText(exam) {
  return `${exam.study_date || "undated"} · …${exam.study_instance_uid.slice(-8)}`;
}

function examRow(exam) {
  const runs = new Map(exam.runs.map((run) => [run.item, run]));
  const lesions = exam.lesions.length
    ? el("ul", { class: "lesion-list" }, ...exam.lesions.map((lesion) => lesionItem(lesion, runs)))
    : el("span", { class: "muted", text: "no significant lesion" });
  const flags = exam.flags.map((flag) =>
    el("span", { class: `flag lesion-flag ${flag}`, "data-flag": flag, text: FLAG_WORDS[flag] || flag }),
  );
  return el(
    "tr",
    { "data-report": exam.report.id, class: exam.ambiguous ? "ambiguous" : null },
    el("td", { text: exam.patient }),
    el("td", { class: "uid", title: exam.study_instance_uid, text: studyText(exam) }),
    el("td", { text: exam.report.dominance || "not recorded" }),
    el("td", {}, lesions),
    el("td", {}, el("ul", { class: "run-list" }, ...exam.runs.map((run) => el("li", { text: runWords(run) })))),
    el("td", { class: "flags" }, ...(flags.length ? flags : [el("span", { class: "good", text: "linked" })])),
  );
}

async function load() {
  try {
    const body = await api.get(`${card.dataset.reportsUrl}?limit=${PAGE}&offset=${state.offset}`);
    $("lesion-exams").tBodies[0].replaceChildren(...body.results.map(examRow));
    $("lesion-exams").hidden = body.results.length === 0;
    const ambiguous = body.results.filter((exam) => exam.ambiguous).length;
    $("lesion-summary").textContent = body.count
      ? `${plural(body.count, "exam")} with a report; ${ambiguous} of the ${body.results.length} shown ambiguous.`
      : "No report imported yet.";
    $("lesion-previous").hidden = !body.previous;
    $("lesion-next").hidden = !body.next;
    card.dataset.ready = "";
  } catch (error) {
    $("lesion-summary").textContent = `Reports not loaded: ${error.message}`;
  }
}

$("lesion-upload").addEventListener("submit", upload);
$("lesion-previous").addEventListener("click", () => {
  state.offset = Math.max(state.offset - PAGE, 0);
  load();
});
$("lesion-next").addEventListener("click", () => {
  state.offset += PAGE;
  load();
});
load();

// Import from the project's DICOMweb server (leads only): set and test the server, search its studies (QIDO-RS),
// pick some and import them as an import job, followed like an upload's: a progress bar and each file's outcome.
// Search results name patients: they stay on this page, never in storage or the URL.
import { makeApi } from "./api.js";
import { el, formatNumber } from "./lib/dom.js";

const section = document.getElementById("pacs");
const serverForm = document.getElementById("pacs-server-form");
const serverState = document.getElementById("pacs-server-state");
const serverStatus = document.getElementById("pacs-server-status");
const checkButton = document.getElementById("pacs-check");
const forgetButton = document.getElementById("pacs-forget");
const searchForm = document.getElementById("pacs-search-form");
const searchStatus = document.getElementById("pacs-search-status");
const studies = document.getElementById("pacs-studies");
const selectAll = document.getElementById("pacs-all");
const pages = document.getElementById("pacs-pages");
const previous = document.getElementById("pacs-previous");
const next = document.getElementById("pacs-next");
const importButton = document.getElementById("pacs-import");
const picked = document.getElementById("pacs-picked");
const progress = document.getElementById("pacs-progress");
const jobBar = document.getElementById("pacs-job-bar");
const jobText = document.getElementById("pacs-job-text");
const summary = document.getElementById("pacs-summary");
const outcomes = document.getElementById("pacs-outcomes");
const api = makeApi(serverForm.querySelector("input[name=csrfmiddlewaretoken]").value);
const PAGE = 25;
const POLL_MS = 700;

const selected = new Map(); // study UID -> its row as found, kept across result pages
let filters = {};
let offset = 0;

function showServer(server) {
  serverForm.elements.url.value = server.url;
  serverForm.elements.username.value = server.username;
  serverForm.elements.password.value = "";
  serverForm.elements.no_password.checked = false;
  serverForm.elements.password.placeholder = server.has_password ? "stored (leave empty to keep it)" : "none";
  forgetButton.hidden = server.source !== "project";
  serverState.textContent = {
    project: "This project's own server.",
    environment: "The deployment's server (LUMEN_DICOMWEB_URL); save one here to use another.",
    none: "No server set yet: enter its DICOMweb URL (and user name and password if it asks for them).",
  }[server.source];
}

async function check() {
  serverStatus.textContent = "Testing the connection…";
  try {
    const answer = await api.post(section.dataset.checkUrl);
    serverStatus.textContent = answer.detail;
  } catch (error) {
    serverStatus.textContent = error.message;
  }
}

serverForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = serverForm.elements;
  const body = { url: form.url.value.trim(), username: form.username.value.trim() };
  if (form.no_password.checked) body.password = "";
  else if (form.password.value) body.password = form.password.value;
  serverStatus.textContent = "Saving…";
  try {
    showServer(await api.put(section.dataset.serverUrl, body));
  } catch (error) {
    serverStatus.textContent = `Not saved: ${error.message}`;
    return;
  }
  await check();
});

checkButton.addEventListener("click", check);

forgetButton.addEventListener("click", async () => {
  serverStatus.textContent = "Removing…";
  try {
    showServer(await api.del(section.dataset.serverUrl));
    serverStatus.textContent = "The project's server and its password were removed.";
  } catch (error) {
    serverStatus.textContent = `Not removed: ${error.message}`;
  }
});

function showPicked() {
  const n = selected.size;
  picked.textContent = n ? `${n} ${n === 1 ? "study" : "studies"} selected.` : "No study selected.";
  importButton.disabled = n === 0;
  const boxes = [...studies.querySelectorAll("tbody input[type=checkbox]")];
  selectAll.checked = boxes.length > 0 && boxes.every((box) => box.checked);
}

function studyRow(study) {
  const box = el("input", { type: "checkbox", value: study.study_uid, "aria-label": `Select study ${study.date}` });
  box.checked = selected.has(study.study_uid);
  box.addEventListener("change", () => {
    if (box.checked) selected.set(study.study_uid, study);
    else selected.delete(study.study_uid);
    showPicked();
  });
  return el(
    "tr",
    { "data-study": study.study_uid },
    el("td", {}, box),
    el("td", { text: [study.date, study.time].filter(Boolean).join(" ") || "—" }),
    el("td", { text: study.patient_name || "—" }),
    el("td", { text: study.patient_id || "—" }),
    el("td", { text: study.accession || "—" }),
    el("td", { text: study.modalities.join(", ") || "—" }),
    el("td", { text: study.description || "—" }),
    el("td", { class: "num", text: formatNumber(study.series) }),
    el("td", { class: "num", text: formatNumber(study.instances) }),
  );
}

async function search() {
  const query = new URLSearchParams({ ...filters, limit: PAGE, offset });
  searchStatus.textContent = "Searching…";
  let page;
  try {
    page = await api.get(`${section.dataset.studiesUrl}?${query}`);
  } catch (error) {
    searchStatus.textContent = error.message;
    return;
  }
  studies.querySelector("tbody").replaceChildren(...page.results.map(studyRow));
  studies.hidden = page.results.length === 0;
  const first = page.results.length ? offset + 1 : 0;
  searchStatus.textContent = page.results.length
    ? `Studies ${first}–${offset + page.results.length}${page.more ? " (more follow)" : ""}.`
    : "No study matches.";
  pages.hidden = offset === 0 && !page.more;
  previous.disabled = offset === 0;
  next.disabled = !page.more;
  showPicked();
}

searchForm.addEventListener("submit", (event) => {
  event.preventDefault();
  filters = Object.fromEntries(
    [...new FormData(searchForm)].map(([name, value]) => [name, String(value).trim()]).filter(([, value]) => value),
  );
  offset = 0;
  search();
});

previous.addEventListener("click", () => {
  offset = Math.max(0, offset - PAGE);
  search();
});
next.addEventListener("click", () => {
  offset += PAGE;
  search();
});

selectAll.addEventListener("change", () => {
  for (const box of studies.querySelectorAll("tbody input[type=checkbox]")) {
    if (box.checked !== selectAll.checked) {
      box.checked = selectAll.checked;
      box.dispatchEvent(new Event("change"));
    }
  }
});

function addOutcomes(files) {
  const body = outcomes.querySelector("tbody");
  for (const file of files) {
    body.append(
      el(
        "tr",
        { class: file.outcome, "data-position": file.position },
        el("td", { text: file.name }),
        el("td", { text: file.outcome }),
        el("td", { text: file.message }),
      ),
    );
  }
  if (files.length) outcomes.hidden = false;
}

function describe(job) {
  const d = job.detail || {};
  if (job.status === "queued") return "waiting for the import worker…";
  if (d.phase === "listing") {
    return `listing the instances of ${d.studies} ${d.studies === 1 ? "study" : "studies"} (${d.listed} done)…`;
  }
  return (
    `${d.done ?? 0} of ${d.total ?? 0} files · ${d.stored ?? 0} stored · ` +
    `${d.duplicates ?? 0} duplicate · ${d.rejected ?? 0} rejected`
  );
}

async function follow(job) {
  const jobUrl = `${section.dataset.jobsUrl}${job.id}/`;
  let after = -1;
  for (;;) {
    // The job first, then its files: once the job has ended, the files fetched after it are all of them.
    const state = await api.get(jobUrl);
    const files = await api.get(`${jobUrl}files/?after=${after}`);
    addOutcomes(files.files);
    if (files.files.length) after = files.files[files.files.length - 1].position;
    jobBar.value = state.progress;
    jobText.textContent = describe(state);
    if (["succeeded", "failed"].includes(state.status) && files.files.length < 1000) {
      const s = (state.result && state.result.summary) || {};
      summary.textContent =
        `${s.stored ?? 0} stored, ${s.duplicates ?? 0} duplicate, ${s.rejected ?? 0} rejected, ` +
        `${s.items_created ?? 0} item(s) created` + (state.error ? ` — ${state.error}` : "");
      return;
    }
    if (files.files.length < 1000) await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

importButton.addEventListener("click", async () => {
  const uids = [...selected.keys()];
  if (!uids.length) return;
  importButton.disabled = true;
  outcomes.querySelector("tbody").replaceChildren();
  outcomes.hidden = true;
  progress.hidden = false;
  jobBar.value = 0;
  jobText.textContent = "";
  summary.textContent = "Starting the import…";
  try {
    const job = await api.post(section.dataset.importUrl, { studies: uids });
    summary.textContent = `Import job #${job.id} of ${uids.length} ${uids.length === 1 ? "study" : "studies"} is running.`;
    selected.clear();
    for (const box of studies.querySelectorAll("tbody input[type=checkbox]")) box.checked = false;
    showPicked();
    await follow(job);
  } catch (error) {
    summary.textContent = `Not imported: ${error.message}`;
  } finally {
    importButton.disabled = selected.size === 0;
  }
});

api
  .get(section.dataset.serverUrl)
  .then(showServer)
  .catch((error) => {
    serverState.textContent = `The server setting could not be loaded: ${error.message}`;
  })
  .finally(() => {
    section.dataset.ready = "true"; // for tests: the listeners above are in place and the setting is shown
  });

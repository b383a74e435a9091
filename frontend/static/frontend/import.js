// Upload files, zip archives or whole folders (dropped on the import card, or picked) to the project's import
// endpoint, show the upload's bytes as they are sent (with a Cancel), then follow the import job: its progress
// bar and each file's outcome as the worker decides it. A refused, failed or cancelled upload keeps the chosen
// files, so the lead can send them again once the cause is fixed.
const section = document.getElementById("import");
const form = document.getElementById("import-form");
const drop = document.getElementById("import-drop");
const filesInput = document.getElementById("import-files");
const folderInput = document.getElementById("import-folder");
const chooseFiles = document.getElementById("import-choose-files");
const chooseFolder = document.getElementById("import-choose-folder");
const picked = document.getElementById("import-picked");
const submit = document.getElementById("import-submit");
const cancel = document.getElementById("import-cancel");
const summary = document.getElementById("import-summary");
const errorLine = document.getElementById("import-error");
const table = document.getElementById("import-results");
const progress = document.getElementById("import-progress");
const uploadBar = document.getElementById("import-upload-bar");
const uploadText = document.getElementById("import-upload-text");
const jobBar = document.getElementById("import-job-bar");
const jobText = document.getElementById("import-job-text");
const POLL_MS = 700;
const POLL_RETRIES = 10; // a lost connection while following the job is retried this many times before giving up
// What one upload may hold (the server refuses more: 413 over the bytes, 400 over the files).
const LIMITS = {
  bytes: Number(section.dataset.maxUploadBytes) || Infinity,
  files: Number(section.dataset.maxUploadFiles) || Infinity,
};

let chosen = []; // [{file, path}] — path is the file's place inside a dropped or picked folder
let sending = null; // the XMLHttpRequest of the upload in flight
let following = false; // the upload's import job is being followed: the next upload waits for it

function csrfToken() {
  return form.querySelector("input[name=csrfmiddlewaretoken]").value;
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;
const chosenBytes = () => chosen.reduce((sum, e) => sum + e.file.size, 0);
const chosenText = () => `${plural(chosen.length, "file")} (${formatBytes(chosenBytes())})`;

function showError(text) {
  errorLine.textContent = text || "";
  errorLine.hidden = !text;
}

function renderControls() {
  const uploading = sending !== null;
  submit.disabled = uploading || following || chosen.length === 0 || Boolean(overLimit(chosen));
  cancel.hidden = !uploading;
  chooseFiles.disabled = uploading;
  chooseFolder.disabled = uploading;
  drop.setAttribute("aria-disabled", String(uploading));
  drop.classList.toggle("busy", uploading);
}

/** Return why `entries` cannot be sent as one upload, or "" when they can. */
function overLimit(entries) {
  const bytes = entries.reduce((sum, e) => sum + e.file.size, 0);
  if (entries.length > LIMITS.files) {
    return `${entries.length} files chosen: one upload takes at most ${LIMITS.files}. Upload the folder in parts.`;
  }
  if (bytes > LIMITS.bytes) {
    const most = formatBytes(LIMITS.bytes);
    return `${formatBytes(bytes)} chosen: one upload takes at most ${most}. Upload fewer files at a time.`;
  }
  return "";
}

function choose(entries) {
  if (sending) return; // the upload in flight keeps its files; the zone says so while it runs
  chosen = entries;
  picked.textContent = entries.length
    ? `${plural(entries.length, "file")} chosen (${formatBytes(chosenBytes())}).`
    : "Nothing chosen yet.";
  showError(overLimit(entries));
  renderControls();
}

// --- Choosing: the picker, the zone as a button, and drops ------------------------------------------------

for (const input of [filesInput, folderInput]) {
  input.addEventListener("change", () => {
    choose([...input.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
    input.value = ""; // so picking the same files again is a change too
  });
}
chooseFiles.addEventListener("click", () => filesInput.click());
chooseFolder.addEventListener("click", () => folderInput.click());
// The zone is also the button that opens the file picker (click, Enter or Space).
drop.addEventListener("click", () => {
  if (!sending) filesInput.click();
});
drop.addEventListener("keydown", (event) => {
  if (event.key !== "Enter" && event.key !== " ") return;
  event.preventDefault();
  if (!sending) filesInput.click();
});

// Dropped folders are walked with the entries API so every file keeps its path inside the folder.
async function walk(entry, prefix) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, path: prefix + file.name }];
  }
  const reader = entry.createReader();
  const children = [];
  for (;;) {
    // readEntries answers in batches (100 at a time in Chromium) until it answers an empty one.
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    children.push(...batch);
  }
  const nested = await Promise.all(children.map((child) => walk(child, `${prefix}${entry.name}/`)));
  return nested.flat();
}

/** Return the dropped files and folders as entries (folders) or files; read while the drop event lasts. */
function droppedItems(dataTransfer) {
  const items = [...(dataTransfer.items || [])].filter((item) => !item.kind || item.kind === "file");
  if (!items.length) return [...(dataTransfer.files || [])].map((file) => ({ file }));
  return items
    .map((item) => {
      const entry = item.webkitGetAsEntry ? item.webkitGetAsEntry() : null;
      return entry ? { entry } : { file: item.getAsFile ? item.getAsFile() : null };
    })
    .filter((dropped) => dropped.entry || dropped.file);
}

const carriesFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");

for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (event) => {
    if (!carriesFiles(event)) return;
    event.preventDefault(); // accept the drop
    event.dataTransfer.dropEffect = sending ? "none" : "copy";
    drop.classList.toggle("over", !sending);
  });
}
drop.addEventListener("dragleave", (event) => {
  if (!drop.contains(event.relatedTarget)) drop.classList.remove("over");
});
drop.addEventListener("drop", async (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (sending) return;
  const dropped = droppedItems(event.dataTransfer); // the list empties once the event is over
  picked.textContent = "Reading the dropped files…";
  try {
    const files = await Promise.all(
      dropped.map((d) => (d.entry ? walk(d.entry, "") : [{ file: d.file, path: d.file.name }])),
    );
    choose(files.flat());
  } catch (error) {
    choose(chosen);
    showError(`The dropped files could not be read: ${error.message}`);
  }
});
// A file dropped beside the zone would make the browser leave the page to show it.
for (const name of ["dragover", "drop"]) {
  window.addEventListener(name, (event) => {
    if (carriesFiles(event) && !(event.target instanceof HTMLInputElement && event.target.type === "file")) {
      event.preventDefault();
    }
  });
}

// --- Sending ---------------------------------------------------------------------------------------------

// The upload ended without an answer: cancelled by the lead, or the connection broke.
class UploadStopped extends Error {
  constructor(message, { cancelled = false } = {}) {
    super(message);
    this.cancelled = cancelled;
  }
}

let sent = { loaded: 0, total: 0 }; // the upload's bytes, as the browser last reported them

function showSent(loaded, total) {
  sent = { loaded, total };
  uploadBar.value = total ? loaded / total : 0;
  const percent = total ? Math.floor((100 * loaded) / total) : 0;
  uploadText.textContent = `${chosenText()} · ${formatBytes(loaded)} of ${formatBytes(total)} sent (${percent} %)`;
}

function upload(data) {
  // XMLHttpRequest, not fetch: only it reports the upload's progress.
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    sending = request;
    renderControls();
    request.open("POST", section.dataset.importUrl);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) showSent(event.loaded, event.total);
    });
    request.upload.addEventListener("load", () => {
      uploadText.textContent += " — waiting for the server…";
    });
    request.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(request.responseText);
      } catch {
        body = pageText(request.responseText); // an HTML error page: a proxy's, or Django's own 400
      }
      resolve({ status: request.status, statusText: request.statusText, body });
    });
    request.addEventListener("error", () =>
      reject(
        new UploadStopped(
          "The connection broke before the server answered (network failure, or the server closed it).",
        ),
      ),
    );
    request.addEventListener("abort", () => reject(new UploadStopped("Upload cancelled.", { cancelled: true })));
    request.send(data);
  }).finally(() => {
    sending = null;
    renderControls();
  });
}

/** Return the heading (or title) of an HTML error page, as plain text. */
function pageText(html) {
  const page = new DOMParser().parseFromString(html || "", "text/html");
  const heading = page.querySelector("h1") || page.querySelector("title");
  return (heading ? heading.textContent : page.body?.textContent || "").trim().slice(0, 300);
}

/** Return the server's reasons from an error answer (DRF's `detail`, or each field's messages), unpunctuated. */
function reasons(body, statusText) {
  let text;
  if (typeof body === "string") text = body || statusText;
  else if (!body || typeof body !== "object") text = statusText;
  else if (body.detail) text = String(body.detail);
  else text = Object.entries(body).map(([field, messages]) => `${field}: ${[].concat(messages).join(" ")}`).join("; ");
  return (text || "no reason given").replace(/\.+$/, "");
}

function refusal(status, statusText, body) {
  if (status === 413) {
    return `The server refused the upload as too large (413): ${reasons(body, "the request is over its size limit")}.`;
  }
  const why = `The server refused the upload (${status}): ${reasons(body, statusText)}.`;
  if (status !== 401 && status !== 403) return why;
  return `${why} Reload the page: your session may have ended or your role changed.`;
}

// --- Following the import job ------------------------------------------------------------------------------

function addRows(files) {
  const tbody = table.querySelector("tbody");
  for (const file of files) {
    const row = tbody.insertRow();
    row.className = file.outcome;
    row.dataset.position = file.position;
    row.insertCell().textContent = file.name;
    row.insertCell().textContent = file.outcome;
    row.insertCell().textContent = file.message;
  }
  if (files.length) table.hidden = false;
}

function describeJob(job) {
  const d = job.detail || {};
  return `${d.done ?? 0} of ${d.total ?? 0} files · ${d.stored ?? 0} stored · ${d.duplicates ?? 0} duplicate · ${d.rejected ?? 0} rejected`;
}

async function getJson(url) {
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (!response.ok) {
    throw Object.assign(new Error(`the server answered ${response.status}`), { status: response.status });
  }
  return response.json();
}

async function follow(job) {
  const jobUrl = `${section.dataset.importUrl}${job.id}/`;
  let after = -1;
  let failures = 0;
  for (;;) {
    let state;
    let files;
    try {
      // The job first, then its files: rows are written before the job ends, so once it has ended the files
      // fetched after it are complete.
      state = await getJson(jobUrl);
      files = await getJson(`${jobUrl}files/?after=${after}`);
      failures = 0;
    } catch (error) {
      // The job runs on the server whatever happens here: a lost connection is retried, an answer is final.
      if (error.status || ++failures > POLL_RETRIES) {
        showError(`Lost track of import job #${job.id} (${error.message}); reload the page to see its outcome.`);
        return;
      }
      jobText.textContent = `connection lost, retrying (${failures} of ${POLL_RETRIES})…`;
      await new Promise((r) => setTimeout(r, POLL_MS * 2));
      continue;
    }
    addRows(files.files);
    if (files.files.length) after = files.files[files.files.length - 1].position;
    jobBar.value = state.progress;
    jobText.textContent = state.status === "queued" ? "waiting for the import worker…" : describeJob(state);
    if (["succeeded", "failed"].includes(state.status) && files.files.length < 1000) {
      const s = (state.result && state.result.summary) || {};
      summary.textContent =
        `Import job #${job.id} ${state.status}: ${s.stored ?? 0} stored, ${s.duplicates ?? 0} duplicate, ` +
        `${s.rejected ?? 0} rejected, ${s.items_created ?? 0} item(s) created`;
      if (state.error) showError(`Import job #${job.id} failed: ${state.error}`);
      return;
    }
    if (files.files.length < 1000) await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!chosen.length || sending || following) return;
  const tooMuch = overLimit(chosen);
  if (tooMuch) return showError(tooMuch);
  const data = new FormData();
  for (const { file, path } of chosen) {
    data.append("files", file);
    data.append("paths", path);
  }
  table.querySelector("tbody").replaceChildren();
  table.hidden = true;
  progress.hidden = false;
  showError("");
  sent = { loaded: 0, total: 0 };
  uploadBar.value = 0;
  uploadText.textContent = `${chosenText()} · starting…`;
  jobBar.value = 0;
  jobText.textContent = "";
  summary.textContent = `Uploading ${chosenText()}…`;
  let answer;
  try {
    answer = await upload(data);
  } catch (error) {
    if (!(error instanceof UploadStopped)) throw error;
    summary.textContent = error.message;
    uploadText.textContent += " — stopped";
    showError(error.cancelled ? "" : error.message);
    picked.textContent = `${chosenText()} still chosen: press Upload to send them again.`;
    return;
  }
  const { status, statusText, body } = answer;
  showSent(sent.loaded, sent.total); // the server has answered: no longer waiting for it
  if (status !== 202 || !body || !body.id) {
    summary.textContent = `Upload refused (${status}).`;
    showError(refusal(status, statusText, body));
    picked.textContent = `${chosenText()} still chosen: press Upload to send them again.`;
    return;
  }
  summary.textContent = `Uploaded ${chosenText()}; import job #${body.id} is running.`;
  picked.textContent = `Sent ${chosenText()}. Drop or choose more to import another batch.`;
  chosen = [];
  following = true;
  renderControls();
  try {
    await follow(body);
  } finally {
    following = false;
    renderControls();
  }
});

cancel.addEventListener("click", () => {
  if (sending) sending.abort();
});

renderControls();
section.dataset.ready = "true"; // for tests: the listeners above are in place

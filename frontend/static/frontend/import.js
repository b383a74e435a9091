// Upload files or whole folders (picked or dropped) to the project's import endpoint, show the upload's
// progress, then follow the import job: its progress bar and each file's outcome as the worker decides it.
const section = document.getElementById("import");
const form = document.getElementById("import-form");
const drop = document.getElementById("import-drop");
const picked = document.getElementById("import-picked");
const submit = document.getElementById("import-submit");
const summary = document.getElementById("import-summary");
const table = document.getElementById("import-results");
const progress = document.getElementById("import-progress");
const uploadBar = document.getElementById("import-upload-bar");
const uploadText = document.getElementById("import-upload-text");
const jobBar = document.getElementById("import-job-bar");
const jobText = document.getElementById("import-job-text");
const POLL_MS = 700;

let chosen = []; // [{file, path}] — path is the file's place inside a dropped or picked folder

function csrfToken() {
  return form.querySelector("input[name=csrfmiddlewaretoken]").value;
}

function choose(entries) {
  chosen = entries;
  const bytes = entries.reduce((sum, e) => sum + e.file.size, 0);
  picked.textContent = entries.length
    ? `${entries.length} file${entries.length === 1 ? "" : "s"} chosen (${formatBytes(bytes)}).`
    : "Nothing chosen yet.";
  submit.disabled = entries.length === 0;
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KB`;
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MB`;
  return `${(n / 1024 ** 3).toFixed(2)} GB`;
}

for (const input of [document.getElementById("import-files"), document.getElementById("import-folder")]) {
  input.addEventListener("change", () => {
    choose([...input.files].map((file) => ({ file, path: file.webkitRelativePath || file.name })));
  });
}

// Dropped folders are walked with the entries API so every file keeps its path inside the folder.
async function walk(entry, prefix) {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ file, path: prefix + file.name }];
  }
  const reader = entry.createReader();
  const children = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    children.push(...batch);
  }
  const nested = await Promise.all(children.map((child) => walk(child, `${prefix}${entry.name}/`)));
  return nested.flat();
}

for (const name of ["dragenter", "dragover"]) {
  drop.addEventListener(name, (event) => {
    event.preventDefault();
    drop.classList.add("over");
  });
}
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", async (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  const items = [...(event.dataTransfer.items || [])];
  const entries = items.map((item) => item.webkitGetAsEntry && item.webkitGetAsEntry()).filter(Boolean);
  if (entries.length) {
    const files = await Promise.all(entries.map((entry) => walk(entry, "")));
    choose(files.flat());
  } else {
    choose([...event.dataTransfer.files].map((file) => ({ file, path: file.name })));
  }
});

function upload(data) {
  // XMLHttpRequest, not fetch: only it reports the upload's progress.
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", section.dataset.importUrl);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    request.setRequestHeader("Accept", "application/json");
    request.upload.addEventListener("progress", (event) => {
      if (!event.lengthComputable) return;
      uploadBar.value = event.loaded / event.total;
      uploadText.textContent = `${formatBytes(event.loaded)} of ${formatBytes(event.total)}`;
    });
    request.addEventListener("load", () => {
      let body = null;
      try {
        body = JSON.parse(request.responseText);
      } catch {
        body = null; // an HTML error page: reported by status below
      }
      resolve({ status: request.status, body });
    });
    request.addEventListener("error", () => reject(new Error("Could not reach the server.")));
    request.send(data);
  });
}

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

async function follow(job) {
  const jobUrl = `${section.dataset.importUrl}${job.id}/`;
  let after = -1;
  for (;;) {
    // The job first, then its files: rows are written before the job ends, so once it has ended the files
    // fetched after it are complete.
    const state = await fetch(jobUrl, { credentials: "same-origin" }).then((r) => r.json());
    const files = await fetch(`${jobUrl}files/?after=${after}`, { credentials: "same-origin" }).then((r) => r.json());
    addRows(files.files);
    if (files.files.length) after = files.files[files.files.length - 1].position;
    jobBar.value = state.progress;
    jobText.textContent = state.status === "queued" ? "waiting for the import worker…" : describeJob(state);
    if (["succeeded", "failed"].includes(state.status) && files.files.length < 1000) {
      const s = (state.result && state.result.summary) || {};
      summary.textContent =
        `${s.stored ?? 0} stored, ${s.duplicates ?? 0} duplicate, ${s.rejected ?? 0} rejected, ` +
        `${s.items_created ?? 0} item(s) created` + (state.error ? ` — ${state.error}` : "");
      return;
    }
    if (files.files.length < 1000) await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!chosen.length) return;
  const data = new FormData();
  for (const { file, path } of chosen) {
    data.append("files", file);
    data.append("paths", path);
  }
  table.querySelector("tbody").replaceChildren();
  table.hidden = true;
  progress.hidden = false;
  uploadBar.value = 0;
  jobBar.value = 0;
  jobText.textContent = "";
  summary.textContent = "Uploading…";
  submit.disabled = true;
  try {
    const { status, body } = await upload(data);
    if (status !== 202 || !body || !body.id) {
      summary.textContent = (body && (body.detail || JSON.stringify(body))) || `Upload failed (${status})`;
      return;
    }
    uploadBar.value = 1;
    summary.textContent = `Uploaded; import job #${body.id} is running.`;
    await follow(body);
  } catch (error) {
    summary.textContent = error.message;
  } finally {
    submit.disabled = chosen.length === 0;
  }
});

section.dataset.ready = "true"; // for tests: the listeners above are in place

// Upload files to the project's import endpoint and show each file's outcome.
const section = document.getElementById("import");
const form = document.getElementById("import-form");
const summary = document.getElementById("import-summary");
const table = document.getElementById("import-results");

function csrfToken() {
  return form.querySelector("input[name=csrfmiddlewaretoken]").value;
}

function showResults(body) {
  const tbody = table.querySelector("tbody");
  tbody.replaceChildren();
  for (const file of body.files || []) {
    const row = tbody.insertRow();
    row.className = file.outcome;
    row.insertCell().textContent = file.name;
    row.insertCell().textContent = file.outcome;
    row.insertCell().textContent = file.message;
  }
  table.hidden = false;
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData();
  for (const file of document.getElementById("import-files").files) data.append("files", file);
  summary.textContent = "Uploading…";
  const response = await fetch(section.dataset.importUrl, {
    method: "POST",
    body: data,
    headers: { "X-CSRFToken": csrfToken() },
    credentials: "same-origin",
  });
  const body = await response.json();
  if (body.summary) {
    const s = body.summary;
    summary.textContent = `${s.stored} stored, ${s.duplicates} duplicate, ${s.rejected} rejected, ${s.items_created} item(s) created`;
    showResults(body);
  } else {
    summary.textContent = body.detail || `Upload failed (${response.status})`;
  }
});

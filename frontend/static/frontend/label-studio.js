// Label Studio (leads only): the server and its API token (write-only: never shown again), push the items, pull
// the annotations back with what became of each, and the JSON task file out and in.
import { ApiError, makeApi } from "./api.js";
import { el } from "./lib/dom.js";

const card = document.getElementById("label-studio");
const form = document.getElementById("ls-server-form");
const serverStatus = document.getElementById("ls-server-status");
const forget = document.getElementById("ls-forget");
const linked = document.getElementById("ls-linked");
const push = document.getElementById("ls-push");
const pull = document.getElementById("ls-pull");
const status = document.getElementById("ls-status");
const counts = document.getElementById("ls-counts");
const rejected = document.getElementById("ls-rejected");
const fileInput = document.getElementById("ls-import-file");
const importButton = document.getElementById("ls-import");
const csrfToken = form.querySelector("input[name=csrfmiddlewaretoken]").value;
const api = makeApi(csrfToken);

function show(server) {
  form.elements.url.value = server.url;
  form.elements.token.value = "";
  form.elements.token.placeholder = server.has_token ? "stored (leave empty to keep it)" : "a Label Studio API token";
  forget.hidden = !server.url;
  push.disabled = !server.url;
  pull.disabled = server.remote_project === null;
  linked.replaceChildren();
  if (server.url) {
    linked.append(`Connected as ${server.username || "an unnamed account"}. `);
    if (server.remote_url) {
      const text = `Label Studio project ${server.remote_project}`;
      linked.append("Items are in ", el("a", { href: server.remote_url, target: "_blank", rel: "noreferrer", text }), ".");
    } else {
      linked.append("Nothing pushed yet.");
    }
  }
}

function showCounts(facts) {
  counts.replaceChildren(
    ...Object.entries(facts).flatMap(([name, value]) => [
      el("dt", { text: name }),
      el("dd", { "data-count": name, text: String(value) }),
    ]),
  );
  counts.hidden = false;
}

function showReport(report) {
  showCounts({ created: report.created, unchanged: report.unchanged, refused: report.rejected.length });
  rejected.querySelector("tbody").replaceChildren(
    ...report.rejected.map((row) =>
      el(
        "tr",
        {},
        el("td", { class: "num", text: row.task ?? "" }),
        el("td", { class: "num", text: row.annotation ?? "" }),
        el("td", { class: "num", text: row.item ?? "" }),
        el("td", { text: row.email }),
        el("td", { text: row.reason }),
      ),
    ),
  );
  rejected.hidden = report.rejected.length === 0;
}

async function load() {
  show(await api.get(card.dataset.serverUrl));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  serverStatus.textContent = "Checking the server and the token…";
  try {
    const body = { url: form.elements.url.value.trim(), token: form.elements.token.value };
    show(await api.put(card.dataset.serverUrl, body));
    serverStatus.textContent = "Saved: Label Studio answered and accepted the token.";
  } catch (error) {
    serverStatus.textContent = `Not saved: ${error.message}`;
  }
});

forget.addEventListener("click", async () => {
  try {
    await api.del(card.dataset.serverUrl);
    await load();
    serverStatus.textContent = "Removed (the Label Studio project itself stays on its server).";
  } catch (error) {
    serverStatus.textContent = `Not removed: ${error.message}`;
  }
});

async function exchange(url, doing, done) {
  push.disabled = pull.disabled = true;
  status.textContent = doing;
  try {
    done(await api.post(url));
  } catch (error) {
    status.textContent = error instanceof ApiError ? `Failed: ${error.message}` : String(error);
  } finally {
    await load().catch(() => {});
  }
}

push.addEventListener("click", () =>
  exchange(card.dataset.pushUrl, "Pushing the items…", (report) => {
    status.textContent = `Pushed: ${report.tasks_added} new item(s), ${report.tasks_present} already there.`;
    showCounts({
      "items added": report.tasks_added,
      "already there": report.tasks_present,
      "predictions added": report.predictions_added,
      "links renewed": report.links_renewed,
      "left out (excluded or held)": report.items_left_out,
    });
    rejected.hidden = true;
  }),
);

pull.addEventListener("click", () =>
  exchange(card.dataset.pullUrl, "Pulling the annotations…", (report) => {
    const refused = report.rejected.length;
    status.textContent = `Pulled: ${report.created} new label version(s), ${report.unchanged} unchanged, ${refused} refused.`;
    showReport(report);
  }),
);

fileInput.addEventListener("change", () => {
  importButton.disabled = fileInput.files.length === 0;
});

importButton.addEventListener("click", async () => {
  const data = new FormData();
  data.append("file", fileInput.files[0]);
  status.textContent = "Importing the file…";
  let response;
  try {
    response = await fetch(card.dataset.importUrl, {
      method: "POST",
      headers: { Accept: "application/json", "X-CSRFToken": csrfToken },
      credentials: "same-origin",
      body: data,
    });
  } catch {
    status.textContent = "Failed: could not reach the server.";
    return;
  }
  const body = (response.headers.get("Content-Type") || "").includes("json") ? await response.json() : null;
  if (!response.ok) {
    status.textContent = `Failed: ${body?.detail || `the server answered ${response.status}`}`;
    return;
  }
  const refused = body.rejected.length;
  status.textContent = `Imported: ${body.created} new label version(s), ${body.unchanged} unchanged, ${refused} refused.`;
  showReport(body);
});

load().catch((error) => {
  serverStatus.textContent = `The Label Studio settings could not be loaded: ${error.message}`;
});

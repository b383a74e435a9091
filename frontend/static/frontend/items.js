// The lead's item browser: filters and sort kept in the page's address (a reload or a shared link shows the same
// list), one page of rows from the item browser API, and one action at a time on the items ticked.
import { makeApi } from "./api.js";
import { el } from "./lib/dom.js";

const root = document.getElementById("item-browser");
const $ = (id) => document.getElementById(id);
const api = makeApi(root.querySelector("input[name=csrfmiddlewaretoken]").value);
const form = $("item-filters");
const FILTERS = [...form.elements].filter((field) => field.name && field.name !== "limit").map((field) => field.name);
const DEFAULT_LIMIT = "50";

// What each action answers, in words; an outcome not listed is shown by its name.
const ACTIONS = {
  mark_gold: {
    title: "Mark gold",
    outcomes: {
      marked_gold: "marked gold",
      already_gold: "already gold",
      no_lead_label: "not marked: no lead's label",
    },
  },
  unmark_gold: { title: "Unmark gold", outcomes: { unmarked_gold: "unmarked", not_gold: "not gold" } },
  send_to_review: {
    title: "Send to review",
    outcomes: {
      sent_to_review: "sent back to their annotators",
      already_in_review: "already waiting for review",
      no_annotator_label: "no annotator's label to review",
      excluded: "excluded, not sent",
    },
  },
  exclude: { title: "Exclude", outcomes: { excluded: "excluded", already_excluded: "already excluded" } },
  include: { title: "Include", outcomes: { included: "included again", not_excluded: "were not excluded" } },
};

const state = { ordering: "id", offset: 0, selected: new Set(), rows: [], request: 0 };

function readAddress() {
  const query = new URLSearchParams(window.location.search);
  for (const name of [...FILTERS, "limit"]) {
    const value = query.get(name);
    if (value !== null) form.elements[name].value = value;
  }
  state.ordering = query.get("ordering") || "id";
  state.offset = Math.max(Number.parseInt(query.get("offset") || "0", 10) || 0, 0);
}

function query() {
  const out = new URLSearchParams();
  for (const name of FILTERS) {
    const value = form.elements[name].value.trim();
    if (value) out.set(name, value);
  }
  out.set("ordering", state.ordering);
  out.set("limit", form.elements.limit.value || DEFAULT_LIMIT);
  if (state.offset) out.set("offset", String(state.offset));
  return out;
}

async function load() {
  const params = query();
  history.replaceState(null, "", `?${params}`);
  const ticket = ++state.request; // an answer to an older request is dropped
  root.dataset.state = "loading";
  try {
    const body = await api.get(`${root.dataset.itemsUrl}?${params}`);
    if (ticket !== state.request) return;
    render(body);
    $("items-error").hidden = true;
    root.dataset.state = "ready";
  } catch (error) {
    if (ticket !== state.request) return;
    $("items-error").textContent = `Items not loaded: ${error.message}`;
    $("items-error").hidden = false;
    root.dataset.state = "error";
  }
}

// ---------------------------------------------------------------------------------------------- rows
function words(value) {
  return String(value).replaceAll("_", " ");
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function labelsCell(row) {
  if (!row.labels.length) return el("td", { class: "labels muted", text: "none" });
  const people = row.labels.map((label) =>
    el(
      "span",
      { class: `label-by source-${label.source}`, title: `version ${label.version}, ${when(label.created_at)}` },
      el("span", { class: "author", text: label.author }),
      label.classes.length ? el("span", { class: "classes", text: ` ${label.classes.join("+")}` }) : "",
    ),
  );
  return el("td", { class: "labels" }, el("span", { class: "count", text: String(row.labels_count) }), ...people);
}

function statusBadge(name) {
  return el("span", { class: `status status-${name}`, text: words(name) });
}

function itemRow(row) {
  const pick = el("input", {
    type: "checkbox",
    class: "pick",
    "data-item": row.id,
    "aria-label": `Select item ${row.id}`,
    checked: state.selected.has(row.id),
  });
  const prediction = row.prediction;
  const open = [el("a", { href: row.open_url, class: "open-item", text: "Open" })];
  if (row.statuses.includes("disputed")) {
    open.push(el("a", { href: row.adjudicate_url, class: "adjudicate-item", text: "Adjudicate" }));
  }
  const flags = [];
  if (row.is_gold) flags.push(el("span", { class: "flag gold", text: "gold" }));
  if (row.excluded) {
    const by = row.excluded_by ? ` by ${row.excluded_by}` : "";
    const title = `excluded${by}, ${when(row.excluded_at)}`;
    flags.push(el("span", { class: "flag excluded", text: "excluded", title }));
  }
  return el(
    "tr",
    {
      "data-item": row.id,
      "data-statuses": row.statuses.join(" "),
      class: [row.excluded ? "excluded" : "", row.is_gold ? "gold" : ""].join(" ").trim() || null,
    },
    el("td", {}, pick),
    el("td", { class: "num", text: String(row.id) }),
    el("td", { class: "title", text: row.title }),
    el("td", { class: "split", text: row.split }),
    el("td", { class: "statuses" }, ...row.statuses.map((name) => statusBadge(name))),
    labelsCell(row),
    el("td", { class: "when", text: when(row.last_labelled_at) }),
    el("td", { class: "predicted", text: prediction?.classes.length ? prediction.classes.join("+") : "—" }),
    el("td", {
      class: "num uncertainty",
      text: prediction && prediction.uncertainty !== null ? prediction.uncertainty.toFixed(3) : "—",
    }),
    el("td", { class: "flags" }, ...flags),
    ...(root.dataset.lesionsUrl ? [lesionsCell(row)] : []),
    el("td", { class: "open" }, ...open),
  );
}

// ---------------------------------------------------------------------------------------------- lesions (cine runs)
// A run's linked lesions come from its exam's angiography report; read on demand, one run at a time.
function lesionsCell(row) {
  if (row.kind !== "cine_run") return el("td", { class: "lesions muted", text: "—" });
  const attrs = { type: "button", class: "secondary show-lesions", "data-item": row.id, "aria-expanded": "false" };
  const button = el("button", { ...attrs, text: "Lesions" });
  button.addEventListener("click", () => toggleLesions(row.id, button));
  return el("td", { class: "lesions" }, button);
}

function lesionWords(data) {
  const run = data.run;
  const basis = run && run.basis === "model" ? `model ${run.probability.toFixed(2)}` : run?.basis;
  const flags = data.flags.length ? ` Exam flags: ${data.flags.map(words).join(", ")}.` : "";
  if (!data.lesions.length) return `No linked lesion: ${data.explanation}.${flags}`;
  return `Vessel type ${run.vessel} (${basis}). Linked lesions:${flags}`;
}

async function toggleLesions(id, button) {
  const open = $("item-table").querySelector(`tr.lesion-detail[data-detail-of="${id}"]`);
  if (open) {
    open.remove();
    button.setAttribute("aria-expanded", "false");
    return;
  }
  const columns = $("item-table").tHead.rows[0].cells.length;
  const cell = el("td", { colspan: String(columns), class: "muted", text: "Loading lesions…" });
  const detail = el("tr", { class: "lesion-detail", "data-detail-of": id }, cell);
  button.closest("tr").after(detail);
  button.setAttribute("aria-expanded", "true");
  try {
    const data = await api.get(root.dataset.lesionsUrl.replace("/0/", `/${id}/`));
    const list = data.lesions.map((lesion) =>
      el(
        "li",
        { "data-segment": lesion.segment },
        `Segment ${lesion.segment} (${lesion.segment_name}): ${lesion.stenosis_percent} %`,
        lesion.note ? el("span", { class: "muted", text: ` · ${lesion.note}` }) : "",
      ),
    );
    cell.className = "lesion-linkage";
    cell.replaceChildren(el("p", { text: lesionWords(data) }), ...(list.length ? [el("ul", {}, ...list)] : []));
  } catch (error) {
    cell.className = "error";
    cell.textContent = `Lesions not loaded: ${error.message}`;
  }
}

function render(body) {
  state.rows = body.results;
  $("item-table").tBodies[0].replaceChildren(...body.results.map(itemRow));
  $("items-empty").hidden = body.results.length > 0;
  const limit = Number(form.elements.limit.value || DEFAULT_LIMIT);
  const first = body.results.length ? state.offset + 1 : 0;
  const last = state.offset + body.results.length;
  $("page-info").textContent = `${first}–${last} of ${body.count}`;
  $("page-summary").textContent = `${body.count} item${body.count === 1 ? "" : "s"} match`;
  $("page-previous").disabled = !body.previous;
  $("page-next").disabled = !body.next;
  $("page-next").dataset.offset = String(state.offset + limit);
  $("page-previous").dataset.offset = String(Math.max(state.offset - limit, 0));
  for (const header of root.querySelectorAll("button.sort")) {
    const key = header.dataset.sort;
    const sorted = state.ordering === key ? "ascending" : state.ordering === `-${key}` ? "descending" : null;
    header.closest("th").setAttribute("aria-sort", sorted || "none");
  }
  showSelection();
}

// ---------------------------------------------------------------------------------------------- selection
function showSelection() {
  const count = state.selected.size;
  $("selected-count").textContent = count ? `${count} item${count === 1 ? "" : "s"} selected` : "No item selected.";
  for (const button of root.querySelectorAll("#bulk button[data-action]")) button.disabled = count === 0;
  const onPage = state.rows.map((row) => row.id);
  $("select-page").checked = onPage.length > 0 && onPage.every((id) => state.selected.has(id));
}

$("item-table").addEventListener("change", (event) => {
  const box = event.target;
  if (box.id === "select-page") {
    for (const row of state.rows) box.checked ? state.selected.add(row.id) : state.selected.delete(row.id);
    for (const pick of root.querySelectorAll("input.pick")) pick.checked = box.checked;
  } else if (box.classList.contains("pick")) {
    const id = Number(box.dataset.item);
    box.checked ? state.selected.add(id) : state.selected.delete(id);
  }
  showSelection();
});

// ---------------------------------------------------------------------------------------------- bulk actions
function describe(action, body) {
  const known = ACTIONS[action];
  const parts = Object.entries(body.outcomes)
    .filter(([, n]) => n > 0)
    .map(([outcome, n]) => `${n} ${known.outcomes[outcome] || words(outcome)}`);
  return `${known.title}: ${parts.join(" · ") || "nothing to do"} (${body.items} item${body.items === 1 ? "" : "s"}).`;
}

async function runAction(action) {
  const items = [...state.selected];
  const result = $("bulk-result");
  for (const button of root.querySelectorAll("#bulk button[data-action]")) button.disabled = true;
  result.className = "bulk-result";
  result.textContent = `${ACTIONS[action].title}: ${items.length} item${items.length === 1 ? "" : "s"}…`;
  try {
    const body = await api.post(root.dataset.bulkUrl, { action, items });
    result.textContent = describe(action, body);
    result.classList.add("good");
    state.selected.clear();
  } catch (error) {
    result.textContent = `${ACTIONS[action].title} not done: ${error.message}`;
    result.classList.add("error");
  }
  await load();
}

for (const button of root.querySelectorAll("#bulk button[data-action]")) {
  button.addEventListener("click", () => runAction(button.dataset.action));
}

// ---------------------------------------------------------------------------------------------- filters, sort, pages
function refilter() {
  state.offset = 0;
  load();
}

form.addEventListener("change", refilter);
form.addEventListener("submit", (event) => {
  event.preventDefault();
  refilter();
});
form.addEventListener("reset", () => setTimeout(refilter)); // after the browser has emptied the fields

for (const header of root.querySelectorAll("button.sort")) {
  header.addEventListener("click", () => {
    const key = header.dataset.sort;
    state.ordering = state.ordering === key ? `-${key}` : key;
    state.offset = 0;
    load();
  });
}

for (const id of ["page-previous", "page-next"]) {
  $(id).addEventListener("click", () => {
    state.offset = Number($(id).dataset.offset) || 0;
    load();
  });
}

readAddress();
load();

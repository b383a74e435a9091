// The lead's SPECT pairing list: maps waiting for a pair, with Rest / Stress for a map whose file did not say
// its phase (POST /api/polar-maps/<id>/phase/) and Discard for a file that is not a polar map.
import { makeApi } from "./api.js";

const section = document.getElementById("spect-pairing");
const table = document.getElementById("pairing-maps");
const body = table.querySelector("tbody");
const empty = document.getElementById("pairing-empty");
const status = document.getElementById("pairing-status");
const api = makeApi(document.querySelector("input[name=csrfmiddlewaretoken]").value);

function cell(content) {
  const td = document.createElement("td");
  if (content instanceof Node) td.append(content);
  else td.textContent = content;
  return td;
}

function button(label, onClick, secondary = true) {
  const b = document.createElement("button");
  b.type = "button";
  b.textContent = label;
  if (secondary) b.className = "secondary";
  b.addEventListener("click", onClick);
  return b;
}

function row(map) {
  const tr = document.createElement("tr");
  tr.dataset.map = map.id;
  const image = document.createElement("img");
  image.src = map.image_url;
  image.alt = `Polar map ${map.id}`;
  const phase = map.phase || "not stated";
  const actions = cell("");
  actions.className = "actions";
  actions.append(
    button("Rest", () => setPhase(map, "rest"), map.phase === "stress"), // the phase a map has stays highlighted
    button("Stress", () => setPhase(map, "stress"), map.phase === "rest"),
    button("Discard", () => discard(map)),
  );
  tr.append(cell(image), cell(map.patient), cell(map.study ? `#${map.study}` : "–"), cell(String(map.frame_index + 1)),
    cell(map.phase ? `${phase}: waiting for the other phase` : phase), actions);
  return tr;
}

async function setPhase(map, phase) {
  status.textContent = "Saving…";
  try {
    const saved = await api.post(`/api/polar-maps/${map.id}/phase/`, { phase });
    await load();
    status.textContent = saved.item
      ? `Map ${map.id} is ${phase}: paired, item ${saved.item} is ready to label.`
      : `Map ${map.id} is ${phase}: waiting for the other phase.`;
  } catch (error) {
    status.textContent = `Not saved: ${error.message}`;
  }
}

async function discard(map) {
  if (!window.confirm(`Discard map ${map.id}? Its file is deleted when it holds no other map.`)) return;
  try {
    await api.del(`/api/polar-maps/${map.id}/`);
    await load();
    status.textContent = `Map ${map.id} discarded.`;
  } catch (error) {
    status.textContent = `Not discarded: ${error.message}`;
  }
}

async function load() {
  try {
    const page = await api.get(section.dataset.mapsUrl);
    body.replaceChildren(...page.results.map(row));
    table.hidden = page.results.length === 0;
    empty.hidden = page.results.length > 0;
  } catch (error) {
    status.textContent = `Could not load the maps: ${error.message}`;
  }
  section.dataset.ready = "";
}

load();

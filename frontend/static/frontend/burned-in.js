// Files with burned-in text wait for a lead: each shows its first frame with the boxes where text was found,
// the lead may drag more boxes, then masks, excludes or releases the file (POST /api/items/<id>/burned-in/).
import { makeApi } from "./api.js";

const section = document.getElementById("burned-in");
const list = document.getElementById("burned-in-files");
const empty = document.getElementById("burned-in-empty");
const status = document.getElementById("burned-in-status");
const api = makeApi(document.querySelector("input[name=csrfmiddlewaretoken]").value);

function boxesText(boxes) {
  return boxes.length ? `${boxes.length} box${boxes.length === 1 ? "" : "es"} to mask` : "no box yet: drag on the frame";
}

function draw(canvas, image, boxes) {
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0, canvas.width, canvas.height);
  context.lineWidth = 2;
  context.strokeStyle = "#ff5a5a";
  for (const [x, y, w, h] of boxes) context.strokeRect(x, y, w, h);
}

function framePoint(canvas, event) {
  const rect = canvas.getBoundingClientRect();
  const x = Math.round(((event.clientX - rect.left) / rect.width) * canvas.width);
  const y = Math.round(((event.clientY - rect.top) / rect.height) * canvas.height);
  return [Math.min(Math.max(x, 0), canvas.width), Math.min(Math.max(y, 0), canvas.height)];
}

function fileCard(item) {
  const { burned_in: file, media } = item;
  const boxes = (file.text_regions || []).map((box) => [...box]);
  const card = document.createElement("article");
  card.className = "burned-in-file";
  card.dataset.instance = file.instance;
  const title = document.createElement("h3");
  title.textContent = item.title;
  const facts = document.createElement("p");
  facts.className = "muted";
  const found = file.text_regions === null ? "text check not run" : `text found in ${file.text_regions.length} place(s)`;
  facts.textContent = `Header BurnedInAnnotation: ${file.annotation || "not stated"} · ${found}`;
  const canvas = document.createElement("canvas");
  canvas.width = media.columns;
  canvas.height = media.rows;
  const count = document.createElement("p");
  count.className = "box-count";
  count.textContent = boxesText(boxes);
  const image = new Image();
  image.addEventListener("load", () => draw(canvas, image, boxes));
  image.src = media.frame_url_template.replace("{n}", "0");
  let start = null;
  canvas.addEventListener("pointerdown", (event) => {
    start = framePoint(canvas, event);
    canvas.setPointerCapture(event.pointerId);
  });
  canvas.addEventListener("pointerup", (event) => {
    if (!start) return;
    const [x2, y2] = framePoint(canvas, event);
    const [x1, y1] = start;
    start = null;
    const box = [Math.min(x1, x2), Math.min(y1, y2), Math.abs(x2 - x1), Math.abs(y2 - y1)];
    if (box[2] < 2 || box[3] < 2) return;
    boxes.push(box);
    count.textContent = boxesText(boxes);
    draw(canvas, image, boxes);
  });
  const actions = document.createElement("div");
  actions.className = "actions";
  for (const [decision, label] of [["mask", "Mask"], ["exclude", "Exclude"], ["release", "Release"]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = label;
    button.dataset.decision = decision;
    if (decision !== "mask") button.className = "secondary";
    button.addEventListener("click", () => decide(item, card, decision, boxes));
    actions.append(button);
  }
  card.append(title, facts, canvas, count, actions);
  return card;
}

async function decide(item, card, decision, boxes) {
  const body = decision === "mask" ? { decision, regions: boxes } : { decision };
  for (const button of card.querySelectorAll("button")) button.disabled = true;
  status.textContent = decision === "mask" ? "Masking the file's frames…" : "Saving…";
  try {
    const file = await api.post(`/api/items/${item.id}/burned-in/`, body);
    card.remove();
    status.textContent = `${item.title}: ${file.review}.`;
    empty.hidden = list.children.length > 0;
  } catch (error) {
    status.textContent = `Not done: ${error.message}`;
    for (const button of card.querySelectorAll("button")) button.disabled = false;
  }
}

async function load() {
  try {
    const page = await api.get(section.dataset.itemsUrl);
    const seen = new Set();
    for (const item of page.results) {
      if (!item.burned_in || seen.has(item.burned_in.instance)) continue; // one card per file (a pullback's frames)
      seen.add(item.burned_in.instance);
      list.append(fileCard(item));
    }
    empty.hidden = seen.size > 0;
  } catch (error) {
    status.textContent = `Could not load the files waiting for a decision: ${error.message}`;
  }
  section.dataset.ready = "";
}

load();

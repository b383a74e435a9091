// The annotator workspace shell: next item from the queue, the task's tool, drafts, timing, submit/skip/back.
import { ApiError, makeApi } from "./api.js";
import { DraftStore } from "./drafts.js";
import { comboOf, isTyping, renderShortcuts } from "./keys.js";
import { startWorkspaceLive } from "./workspace-live.js";

const root = document.getElementById("workspace");
const $ = (id) => document.getElementById(id);
const api = makeApi(root.querySelector("input[name=csrfmiddlewaretoken]").value);
const username = (document.querySelector(".topbar .who") || {}).textContent || "anonymous";
const drafts = new DraftStore({ api, user: username, onState: (text) => ($("draft-state").textContent = text) });

const SHELL_SHORTCUTS = [
  { key: "Enter", label: "Submit and go to the next item", run: () => submit() },
  { key: "S", label: "Skip (asks for a reason)", run: () => openSkip() },
  { key: "B", label: "Back to the previous item", run: () => back() },
  { key: "?", label: "Show / hide shortcuts", run: () => root.classList.toggle("hide-shortcuts") },
];

const current = {
  data: null, // body of GET /api/items/<id>/workspace/
  tool: null,
  baseVersion: null,
  elapsedMs: 0,
  visibleSince: null,
  busy: false,
  dirty: false, // edited since it was opened: only then is there a draft to save
  ahead: null, // { after: item id, answer: promise of `next?after=` } — the following item, leased ahead
};
// Loaded while the first item is asked for, not before.
const toolModule = import(root.dataset.toolUrl);
toolModule.catch(() => {}); // a failed load is reported when the first item mounts

function setState(state) {
  root.dataset.state = state;
}

function status(text, kind = "") {
  const line = $("status");
  line.textContent = text || "";
  line.className = `ws-status ${kind}`;
}

function workspaceUrl(itemId) {
  return root.dataset.workspaceUrlTemplate.replace("/0/", `/${itemId}/`);
}

function showProgress(progress) {
  if (!progress) return;
  for (const span of $("progress").querySelectorAll("[data-count]")) {
    span.textContent = progress[span.dataset.count] ?? 0;
  }
  $("review-count").hidden = !progress.to_review;
}

// A lead sent this label back: say who asked and why (their note), never anyone else's label.
function showReview(review) {
  $("review").hidden = !review;
  if (!review) return;
  const note = review.note ? `“${review.note}”` : "No note.";
  $("review-text").textContent = `${review.requested_by}: ${note}`;
}

// Time on the item counts only while the page is visible.
function elapsed() {
  return current.elapsedMs + (current.visibleSince === null ? 0 : performance.now() - current.visibleSince);
}

function startClock(fromMs) {
  current.elapsedMs = fromMs || 0;
  current.visibleSince = document.visibilityState === "visible" ? performance.now() : null;
}

function pauseClock() {
  if (current.visibleSince !== null) {
    current.elapsedMs += performance.now() - current.visibleSince;
    current.visibleSince = null;
  }
}

setInterval(() => {
  const seconds = Math.floor(elapsed() / 1000);
  $("timer").textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
}, 500);

function draftOf(tool) {
  if (tool.getDraft) return tool.getDraft();
  const result = tool.getPayload();
  return result.payload ?? null;
}

function saveDraft() {
  if (!current.tool || !current.dirty) return;
  const payload = draftOf(current.tool);
  if (payload === null || payload === undefined) return;
  drafts.save(current.data.item.id, current.data.draft_url, {
    payload,
    base_version: current.baseVersion,
    time_spent_ms: Math.round(elapsed()),
  });
}

function unmount() {
  const mounted = current.tool !== null;
  if (mounted) current.tool.destroy();
  current.tool = null;
  // The label page's own image of the first run's frame 0 stays on screen until the tool replaces it.
  if (mounted || !$("first-frame")) $("tool").replaceChildren();
}

async function mount(data) {
  unmount();
  current.dirty = false;
  current.data = data;
  const item = data.item;
  root.dataset.itemId = item.id;
  $("item-title").textContent = item.title;
  $("item-patient").textContent = `patient ${item.patient}`;
  $("conflict").hidden = true;
  showReview(data.review);
  const restored = drafts.restore(item.id, data.draft);
  current.baseVersion = restored ? restored.base_version ?? null : data.label ? data.label.version : null;
  const ctx = {
    item: data,
    api,
    isLead: data.role === "lead",
    changed: () => {
      current.dirty = true;
      saveDraft();
    },
    status: (text) => status(text),
  };
  current.tool = await (await toolModule).mountTool($("tool"), ctx);
  if (restored) {
    current.tool.setPayload(restored.payload);
    status("Your unsubmitted draft was restored.");
  } else if (data.label) {
    current.tool.setPayload(data.label.payload);
    status(`You labelled this item before (version ${data.label.version}); a submit stores a new version.`);
  }
  startClock(restored ? restored.time_spent_ms : 0);
  $("draft-state").textContent = restored ? "restored" : "–";
  renderShortcuts($("shortcuts"), [...SHELL_SHORTCUTS, ...current.tool.shortcuts]);
  // Keys go to the new item, not to a shell button that kept the focus after a click.
  const focused = document.activeElement;
  if (focused && focused !== document.body && !$("tool").contains(focused)) focused.blur();
  setState("ready");
}

async function openItem(itemId) {
  setState("loading");
  await showItem(await api.get(workspaceUrl(itemId)));
}

async function showItem(data) {
  await mount(data);
  const url = new URL(window.location.href);
  url.searchParams.set("item", data.item.id);
  history.replaceState(null, "", url);
}

// While an item is labelled, the one after it is leased, its workspace fetched and its first image warmed, so
// Submit → next item on screen waits for the label's POST only.
function fetchAhead(itemId) {
  const answer = api.post(`${root.dataset.nextUrl}?after=${itemId}`).then((body) => {
    if (body.workspace) window.lumenWarm?.(body.workspace);
    return body;
  });
  answer.catch(() => {}); // used only if it arrives; otherwise `next` is asked again
  current.ahead = { after: itemId, answer };
}

// The item after `finished`, if that is what was fetched ahead while it was labelled.
async function takeAhead(finished) {
  const ahead = current.ahead;
  current.ahead = null;
  if (!ahead || ahead.after !== finished) return null;
  try {
    return await ahead.answer;
  } catch {
    return null;
  }
}

// The first item, asked for by first-item.js while the page loaded.
async function takeFirst() {
  const first = window.lumenFirstNext;
  window.lumenFirstNext = null;
  return first ? await first : null;
}

async function loadNext(finished = null) {
  setState("loading");
  let ahead = finished === null ? null : await takeAhead(finished);
  if (ahead && ahead.item === null) ahead = null; // "nothing left" was said before this item was done: ask now
  const next = ahead || (finished === null ? await takeFirst() : null) || (await api.post(root.dataset.nextUrl));
  showProgress(next.progress);
  if (ahead) refreshProgress().catch(() => {}); // counted before the item just finished: count again
  if (next.item === null) {
    unmount();
    $("done-text").textContent = next.detail;
    $("done").hidden = false;
    root.dataset.itemId = "";
    setState("done");
    return;
  }
  $("done").hidden = true;
  if (next.workspace) await showItem(next.workspace); // one round trip: `next` carries the workspace
  else await openItem(next.item);
  fetchAhead(next.item);
}

async function refreshProgress() {
  const body = await api.get(root.dataset.progressUrl);
  showProgress(body.progress);
  return body.recent;
}

// The queue's size and each new ranking, pushed live; a new ranking also changes this annotator's counts.
// Connected once the first item is on screen, so the socket's handshake does not compete with it.
function goLive() {
  startWorkspaceLive({ root, api, onRanked: () => refreshProgress() }).refreshQueue();
}

async function run(action) {
  if (current.busy) return;
  current.busy = true;
  try {
    await action();
  } catch (error) {
    if (error instanceof ApiError && error.status === 0) {
      status("Could not reach the server. Your work is kept as a draft in this browser; try again.", "bad");
    } else {
      status(error.message, "bad");
    }
    if (root.dataset.state === "loading") setState("error");
  } finally {
    current.busy = false;
  }
}

function submit() {
  return run(async () => {
    if (!current.tool) return;
    const result = current.tool.getPayload();
    if (result.error) {
      status(result.error, "bad");
      return;
    }
    const itemId = current.data.item.id;
    await drafts.settle(itemId);
    let label;
    try {
      label = await api.post(root.dataset.labelsUrl, {
        item: itemId,
        payload: result.payload,
        base_version: current.baseVersion,
        time_spent_ms: Math.round(elapsed()),
      });
    } catch (error) {
      if (error.status === 409) {
        showConflict(error.body);
        return;
      }
      if (error.status === 0) saveDraft();
      throw error;
    }
    drafts.clear(itemId);
    current.dirty = false;
    root.dataset.lastLabelId = label.id;
    status(`Saved version ${label.version} of your label.`, "good");
    await loadNext(itemId);
  });
}

function showConflict(body) {
  $("conflict-text").textContent =
    `This label was changed elsewhere (now at version ${body.current_version}); your edit was based on ` +
    `version ${current.baseVersion}. Your work is kept as a draft.`;
  $("conflict").hidden = false;
  saveDraft();
}

$("conflict-load").addEventListener("click", () =>
  run(async () => {
    const itemId = current.data.item.id;
    await drafts.settle(itemId);
    drafts.clear(itemId);
    await api.del(current.data.draft_url);
    await openItem(itemId);
  }),
);

function openSkip() {
  if (!current.tool) return;
  $("skip-reason").value = "";
  $("skip-dialog").showModal();
  $("skip-reason").focus();
}

$("skip-cancel").addEventListener("click", () => $("skip-dialog").close());
$("skip-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const reason = $("skip-reason").value.trim();
  if (!reason) return;
  $("skip-dialog").close();
  run(async () => {
    const itemId = current.data.item.id;
    await drafts.settle(itemId);
    await api.post(current.data.skip_url, { reason });
    drafts.clear(itemId);
    await api.del(current.data.draft_url);
    status("Skipped.");
    await loadNext(itemId);
  });
});

// Back walks the annotator's own labels, newest first; the current lease is kept for when they return.
function back() {
  return run(async () => {
    await drafts.flush();
    const recent = await refreshProgress();
    const here = current.data ? current.data.item.id : null;
    const position = recent.findIndex((row) => row.item === here);
    const previous = recent[position + 1];
    if (!previous) {
      status("There is no earlier item of yours to go back to.");
      return;
    }
    await openItem(previous.item);
  });
}

document.addEventListener("keydown", (event) => {
  if ($("skip-dialog").open) return; // the dialog handles Enter and Escape itself
  if (isTyping(event.target) && event.key !== "Escape") return;
  if (event.target.tagName === "BUTTON" && (event.key === "Enter" || event.key === " ")) return;
  const combo = comboOf(event);
  const shortcut = [...SHELL_SHORTCUTS, ...(current.tool ? current.tool.shortcuts : [])].find((s) => s.key === combo);
  if (!shortcut || (root.dataset.state !== "ready" && shortcut.key !== "?")) return;
  event.preventDefault();
  shortcut.run(event);
});

$("submit").addEventListener("click", () => submit());
$("skip").addEventListener("click", () => openSkip());
$("back").addEventListener("click", () => back());

document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") {
    if (current.tool && current.visibleSince === null) current.visibleSince = performance.now();
  } else {
    pauseClock();
    if (current.tool) saveDraft();
    drafts.flush({ keepalive: true });
  }
});
window.addEventListener("pagehide", () => drafts.flush({ keepalive: true }));
window.addEventListener("online", () => drafts.flush());

async function start() {
  const requested = new URL(window.location.href).searchParams.get("item");
  if (requested) {
    await openItem(requested);
    refreshProgress();
  } else {
    await loadNext();
  }
}

run(start).then(goLive);

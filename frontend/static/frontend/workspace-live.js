// The workspace's live line: how many items wait in the queue, and a notice when the queue is re-ranked.
import { connectLive, describeRerank, items } from "./live.js";

const STATES = { open: "live", closed: "reconnecting…", gone: "no live updates" };

/**
 * Show the queue size and listen to the project's websocket.
 * `onRanked()` runs after a new ranking (and after a reconnect) to refresh the annotator's own counts.
 */
export function startWorkspaceLive({ root, api, onRanked }) {
  const $ = (id) => document.getElementById(id);
  let rankedBy; // model version of the last ranking heard of (undefined: none yet)

  function showQueue(open) {
    $("queue-size").dataset.open = open;
    $("queue-size").textContent = `${items(open)} waiting in the queue`;
  }

  async function refreshQueue() {
    try {
      showQueue((await api.get(root.dataset.queueUrl)).open);
    } catch {
      // the count stays as it was; the next queue event or reconnect corrects it
    }
  }

  function refreshCounts() {
    Promise.resolve(onRanked()).catch(() => {});
  }

  function onEvent(event) {
    if (event.event === "queue") {
      showQueue(event.open);
    } else if (event.event === "reranked") {
      $("live-notice-text").textContent = `${describeRerank(event, { newModel: event.model_version !== rankedBy })}.`;
      $("live-notice").hidden = false;
      rankedBy = event.model_version;
      refreshCounts();
    }
  }

  function onState(state, { reconnected = false } = {}) {
    root.dataset.live = state;
    $("live-state").textContent = STATES[state] || "";
    $("live-state").title = `Live updates: ${STATES[state] || state}`;
    if (state === "open" && reconnected) {
      // Events sent while the socket was down are lost: read the counts again.
      refreshQueue();
      refreshCounts();
    }
  }

  $("live-notice-close").addEventListener("click", () => ($("live-notice").hidden = true));
  connectLive(root.dataset.liveUrl, { onEvent, onState });
  return { refreshQueue };
}

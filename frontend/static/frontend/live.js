// A project's live events (ws/projects/<slug>/): one JSON object per message, reconnecting with backoff.

const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 30000;
// The server closes with these when the user is logged out or not a member: retrying cannot help.
const FINAL_CODES = new Set([4401, 4403, 4404]);

function socketUrl(path, after) {
  const url = new URL(path, window.location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  if (after !== null) url.searchParams.set("after", String(after));
  return url.href;
}

/**
 * Open the project's event socket and keep it open.
 * `onEvent(event)` gets every event; `onState(state, {reconnected})` gets "open", "closed" and "gone"
 * ("gone": the server refused us for good, or the user may no longer hear this project's events). A
 * reconnect resumes after the last event received (the server keeps an hour of them), so events sent while
 * the socket was down still arrive; the caller may also reload what it shows.
 */
export function connectLive(path, { onEvent, onState = () => {} }) {
  let socket = null;
  let delay = FIRST_DELAY_MS;
  let timer = null;
  let opened = false;
  let stopped = false;
  let lastId = null; // the newest event received: a reconnect resumes after it

  function open() {
    timer = null;
    socket = new WebSocket(socketUrl(path, lastId));
    socket.addEventListener("open", () => {
      delay = FIRST_DELAY_MS;
      onState("open", { reconnected: opened });
      opened = true;
    });
    socket.addEventListener("message", (message) => {
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return; // not one of ours
      }
      if (event && typeof event.event === "string") {
        if (Number.isInteger(event.id)) lastId = event.id;
        onEvent(event);
      }
    });
    socket.addEventListener("close", (closed) => {
      if (stopped) return;
      if (FINAL_CODES.has(closed.code)) {
        onState("gone", { code: closed.code });
        return;
      }
      onState("closed", {});
      // Jitter spreads the reconnects of many browsers after a server restart.
      timer = setTimeout(open, delay * (0.75 + Math.random() * 0.5));
      delay = Math.min(delay * 2, MAX_DELAY_MS);
    });
  }

  // A page coming back online or into view should not wait out a long backoff.
  function hurry() {
    if (timer !== null && !stopped) {
      clearTimeout(timer);
      delay = FIRST_DELAY_MS;
      open();
    }
  }
  window.addEventListener("online", hurry);
  document.addEventListener("visibilitychange", () => document.visibilityState === "visible" && hurry());
  window.addEventListener("pagehide", () => {
    stopped = true;
    if (timer !== null) clearTimeout(timer);
    if (socket) socket.close(1000);
  });
  window.addEventListener("pageshow", (shown) => {
    if (!shown.persisted) return; // back from the back/forward cache: the socket was closed on the way out
    stopped = false;
    delay = FIRST_DELAY_MS;
    open();
  });

  open();
  return {
    close() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      socket.close(1000);
    },
  };
}

/** Describe a `reranked` event for people: which model and strategy ordered the queue. */
export function describeRerank(event, { newModel = true } = {}) {
  const strategy = String(event.strategy || "").replaceAll("_", " ");
  if (event.model_version === null || event.model_version === undefined) {
    return `The queue was re-ordered (${strategy || "cold start"})`;
  }
  if (event.provisional) {
    return `The newest model (v${event.model_version}, not promoted yet) re-ranked the queue by ${strategy}`;
  }
  const model = newModel ? `A new model (v${event.model_version})` : `Model v${event.model_version}`;
  return `${model} re-ranked the queue by ${strategy}`;
}

/** Return "1 item" / "N items". */
export function items(count) {
  return `${count} item${count === 1 ? "" : "s"}`;
}

// Drafts: every change goes to localStorage at once and to the server shortly after, so neither a closed
// tab nor a lost connection loses work. The newer of the two copies wins when an item is reopened.

const SERVER_DELAY_MS = 800;
const RETRY_MS = 10000;

export class DraftStore {
  constructor({ api, user, onState }) {
    this.api = api;
    this.user = user;
    this.onState = onState; // (text) => void
    this.pending = null; // {url, key, body}
    this.timer = null;
    this.inFlight = null; // the PUT on the wire, if any
  }

  key(itemId) {
    return `lumen-draft:${this.user}:${itemId}`;
  }

  // Return the newer of the server draft and the local copy: {payload, base_version, time_spent_ms} or null.
  restore(itemId, serverDraft) {
    let local = null;
    try {
      local = JSON.parse(localStorage.getItem(this.key(itemId)) || "null");
    } catch {
      local = null;
    }
    const serverTime = serverDraft ? Date.parse(serverDraft.updated_at) : -1;
    if (local && (!serverDraft || local.saved_at > serverTime)) return local;
    return serverDraft;
  }

  save(itemId, draftUrl, draft) {
    const body = { ...draft, saved_at: Date.now() };
    try {
      localStorage.setItem(this.key(itemId), JSON.stringify(body));
    } catch {
      // Storage full or disabled: the server copy still goes out.
    }
    this.pending = { url: draftUrl, key: this.key(itemId), body: draft };
    this.onState("saving…");
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.flush(), SERVER_DELAY_MS);
  }

  async flush({ keepalive = false } = {}) {
    clearTimeout(this.timer);
    const pending = this.pending;
    if (!pending) return true;
    const request = this.api.put(pending.url, pending.body, { keepalive });
    this.inFlight = request.catch(() => null);
    try {
      await request;
      if (this.pending === pending) {
        this.pending = null;
        this.onState("saved");
      }
      return true;
    } catch (error) {
      if (error.status === 0) {
        this.onState("saved in this browser only (offline); retrying");
        this.timer = setTimeout(() => this.flush(), RETRY_MS);
      } else {
        if (this.pending === pending) this.pending = null;
        this.onState(`kept in this browser only: ${error.message}`);
      }
      return false;
    }
  }

  // Stop autosaving the item and wait for a save already on the wire, so it cannot land after a submit.
  async settle(itemId) {
    clearTimeout(this.timer);
    if (this.pending && this.pending.key === this.key(itemId)) this.pending = null;
    if (this.inFlight) await this.inFlight;
  }

  // Forget an item's drafts once its label is stored (the server deletes its copy in the same transaction).
  clear(itemId) {
    if (this.pending && this.pending.key === this.key(itemId)) this.pending = null;
    clearTimeout(this.timer);
    localStorage.removeItem(this.key(itemId));
  }
}

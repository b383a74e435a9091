// Vessel-type tool: a cine player for one XA run and the four labels (LCA, RCA, neither, unusable).
//
// Loading: frame 0 is fetched (or taken over from the label page's <img> of it) and drawn first, and mountTool
// resolves then; the other frames follow in one packed response (frames/pack/), each decoded into an ImageBitmap
// as its bytes arrive, so playback never waits on decoding; frames the pack did not deliver are fetched one by one.
// Timings for the cine_open benchmark land in performance marks ("cine-first-frame", "cine-all-frames")
// and in window.lumenCine.
//
// Smooth 2× (only where the project has a frame-interpolation model): the frames half-way between acquired ones,
// computed by the server, are fetched once the acquired frames are in and shown between them at twice the frame
// rate (the run lasts as long). Each is marked synthetic on screen while it is shown; a paused or stepped picture is
// always an acquired frame, and an in-between frame not loaded yet is simply skipped.

import { el } from "../lib/dom.js";
import { clamp } from "../lib/math.js";

const VESSELS = [
  { value: "LCA", key: "1", text: "LCA", title: "Left coronary artery" },
  { value: "RCA", key: "2", text: "RCA", title: "Right coronary artery" },
  { value: "neither", key: "3", text: "Neither", title: "No coronary artery is injected" },
  { value: "unusable", key: "4", text: "Unusable", title: "The run cannot be judged (give a reason)" },
];
const REASONS = ["poor opacification", "motion blur", "vessel outside the field", "truncated run", "not a coronary run"];
const SPEEDS = [0.25, 0.5, 1, 1.5, 2, 3, 4];
const FETCH_CONCURRENCY = 6;
const ZOOM_MAX = 8;
const ZOOM_STEP = 1.25;
const LEVEL_MIN = 0.2;
const LEVEL_MAX = 3;
const LEVEL_STEP = 0.1;
const FALLBACK_FPS = 15;
// The server computes in-between frames on demand: ask for a few at a time, after the acquired frames.
const SMOOTH_CONCURRENCY = 2;
const SMOOTH_KEY = "lumen.cine.smooth";



// Fetches and decodes every frame; frame n is ready once `bitmaps[n]` is set (or `failed[n]`).
class FrameStore {
  constructor(template, count) {
    this.template = template;
    this.count = count;
    this.bitmaps = new Array(count).fill(null);
    this.failed = new Array(count).fill(false);
    this.ready = 0;
    this.bytes = 0;
    this.closed = false;
    this.abort = new AbortController();
    this.onready = () => {};
  }

  url(n) {
    return this.template.replace("{n}", String(n));
  }

  available(n) {
    return this.bitmaps[n] !== null || this.failed[n];
  }

  // Decode a frame (its bytes, or an <img> showing it) and keep the bitmap (unless the store was closed
  // meanwhile); throws if undecodable.
  async keep(n, source, size) {
    const bitmap = await createImageBitmap(source);
    if (this.closed) {
      bitmap.close();
      return;
    }
    this.bitmaps[n] = bitmap;
    this.bytes += size;
    this.ready += 1;
    this.onready(n, null);
  }

  // Frame n as the page already shows it in `img` (the first item's frame 0, in the page before any script):
  // decoded from that element, not asked for again. Returns whether it could be.
  async adopt(n, img) {
    try {
      await img.decode();
      // Its bytes came in the page (data-bytes) or in a request of their own.
      const entry = performance.getEntriesByName(img.currentSrc)[0];
      await this.keep(n, img, img.dataset.bytes ? Number(img.dataset.bytes) : entry ? entry.encodedBodySize : 0);
      return true;
    } catch {
      return false;
    }
  }

  async load(n, attempts = 2) {
    for (let attempt = 1; ; attempt += 1) {
      try {
        // "include" (same cookies as "same-origin" here) so frame 0 takes the page's <link rel="preload">.
        const response = await fetch(this.url(n), { credentials: "include", signal: this.abort.signal });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const blob = await response.blob();
        await this.keep(n, blob, blob.size);
        return;
      } catch (error) {
        if (this.closed) return;
        if (attempt >= attempts) {
          this.failed[n] = true;
          this.onready(n, error);
          return;
        }
      }
    }
  }

  // Frames start… in one response (X-Frame-Sizes gives each length); each is decoded as soon as its bytes
  // are in, so playback can start while the rest still arrives. Returns the frames it could not deliver.
  async loadPack(url, start) {
    const pending = [];
    try {
      const response = await fetch(`${url}?start=${start}`, { credentials: "same-origin", signal: this.abort.signal });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const sizes = (response.headers.get("X-Frame-Sizes") || "").split(",").map(Number);
      const type = `image/${response.headers.get("X-Frame-Format") || "jpeg"}`;
      const reader = response.body.getReader();
      let chunks = [];
      let held = 0;
      let n = start;
      const take = (size) => {
        // Cut `size` bytes off the front of the received chunks.
        const parts = [];
        let need = size;
        while (need > 0) {
          const chunk = chunks[0];
          if (chunk.byteLength <= need) {
            parts.push(chunk);
            chunks.shift();
            need -= chunk.byteLength;
          } else {
            parts.push(chunk.subarray(0, need));
            chunks[0] = chunk.subarray(need);
            need = 0;
          }
        }
        held -= size;
        return new Blob(parts, { type });
      };
      for (;;) {
        const { done, value } = await reader.read();
        if (value) {
          chunks.push(value);
          held += value.byteLength;
        }
        while (n - start < sizes.length && held >= sizes[n - start]) {
          const index = n;
          const blob = take(sizes[n - start]);
          n += 1;
          // A frame that does not decode stays unavailable; the caller fetches it on its own.
          pending.push(this.keep(index, blob, blob.size).catch(() => {}));
        }
        if (done) break;
      }
      chunks = [];
    } catch {
      // Fall back to single frames for whatever did not arrive.
    }
    await Promise.all(pending);
    return Array.from({ length: this.count - start }, (_, i) => start + i).filter((i) => !this.available(i));
  }

  async loadAll(indices, concurrency) {
    let next = 0;
    const worker = async () => {
      while (next < indices.length && !this.closed) await this.load(indices[next++]);
    };
    await Promise.all(Array.from({ length: Math.min(concurrency, indices.length) }, worker));
  }

  close() {
    this.closed = true;
    this.abort.abort();
    for (const bitmap of this.bitmaps) bitmap?.close();
    this.bitmaps.fill(null);
  }
}

// Draws frames on a canvas and plays them at frame_rate × speed, timed from requestAnimationFrame's clock.
class CinePlayer {
  constructor(canvas, store, fps, onframe) {
    this.canvas = canvas;
    this.context = canvas.getContext("2d");
    this.store = store;
    this.fps = fps;
    this.onframe = onframe;
    this.current = 0;
    this.playing = false;
    this.loop = true;
    this.speed = 1;
    this.zoom = 1;
    this.panX = 0;
    this.panY = 0;
    this.raf = 0;
    this.anchorFrame = 0;
    this.anchorTime = 0;
    // Smooth playback: `between` holds the in-between frames (frame n sits between n and n + 1); `synthetic`
    // says the picture on the canvas is the one after `current`, not an acquired frame.
    this.between = null;
    this.smooth = false;
    this.synthetic = false;
    this.tick = this.tick.bind(this);
  }

  hasBetween(n) {
    return this.smooth && this.between !== null && n < this.store.count - 1 && this.between.bitmaps[n] !== null;
  }

  draw() {
    const bitmap = this.synthetic ? this.between.bitmaps[this.current] : this.store.bitmaps[this.current];
    if (!bitmap) return; // a frame that failed to load keeps the previous picture
    const { width, height } = this.canvas;
    this.context.setTransform(1, 0, 0, 1, 0, 0);
    this.context.fillStyle = "#000";
    this.context.fillRect(0, 0, width, height);
    this.context.setTransform(this.zoom, 0, 0, this.zoom, this.panX, this.panY);
    this.context.drawImage(bitmap, 0, 0, width, height);
  }

  show(n, synthetic = false) {
    this.current = clamp(n, 0, this.store.count - 1);
    this.synthetic = synthetic && this.hasBetween(this.current);
    this.draw();
    this.onframe(this.current);
  }

  play() {
    if (this.playing) return;
    if (!this.loop && this.current >= this.store.count - 1) this.current = 0;
    this.playing = true;
    this.anchorFrame = this.current;
    this.anchorTime = performance.now();
    this.raf = requestAnimationFrame(this.tick);
    this.onframe(this.current);
  }

  pause() {
    this.playing = false;
    cancelAnimationFrame(this.raf);
    // Stopped on an in-between frame: show the acquired one before it (nothing synthetic stays on screen).
    if (this.synthetic) this.show(this.current);
    else this.onframe(this.current);
  }

  toggle() {
    if (this.playing) this.pause();
    else this.play();
  }

  step(delta) {
    this.pause();
    const count = this.store.count;
    this.show(this.loop ? (this.current + delta + count) % count : this.current + delta);
  }

  setSmooth(on) {
    this.smooth = on;
    if (!on && this.synthetic) this.show(this.current);
  }

  setSpeed(speed) {
    this.speed = speed;
    this.anchorFrame = this.current;
    this.anchorTime = performance.now();
  }

  tick(now) {
    if (!this.playing) return;
    const count = this.store.count;
    const framesPerMs = (this.fps * this.speed) / 1000;
    // Frames are picked by elapsed time, so a lagging tab skips ahead instead of slowing down.
    // (A frame's timestamp can precede the moment play was pressed: never go back before the anchor.)
    let position = this.anchorFrame + Math.max(0, now - this.anchorTime) * framesPerMs;
    if (position >= count) {
      if (this.loop) {
        const laps = Math.floor(position / count);
        this.anchorTime += (laps * count) / framesPerMs;
        position -= laps * count;
      } else {
        this.show(count - 1);
        this.pause();
        return;
      }
    }
    let target = Math.floor(position);
    // Smooth: the second half of each frame's time shows the in-between frame after it (when it is loaded).
    let synthetic = position - target >= 0.5;
    if (!this.store.available(target)) {
      // Still loading: hold the last decoded frame and go on from it once the next one arrives.
      target = this.lastAvailableBefore(target);
      synthetic = false;
      this.anchorFrame = target;
      this.anchorTime = now;
    }
    synthetic = synthetic && this.hasBetween(target);
    if (target !== this.current || synthetic !== this.synthetic) this.show(target, synthetic);
    this.raf = requestAnimationFrame(this.tick);
  }

  lastAvailableBefore(target) {
    let n = target;
    while (n !== this.current && !this.store.available(n)) n = (n - 1 + this.store.count) % this.store.count;
    return n;
  }

  setZoom(zoom, x = this.canvas.width / 2, y = this.canvas.height / 2) {
    const next = clamp(zoom, 1, ZOOM_MAX);
    // Keep the image point under (x, y) where it is.
    this.panX = x - ((x - this.panX) * next) / this.zoom;
    this.panY = y - ((y - this.panY) * next) / this.zoom;
    this.zoom = next;
    this.pan(0, 0);
  }

  pan(dx, dy) {
    const { width, height } = this.canvas;
    this.panX = clamp(this.panX + dx, width * (1 - this.zoom), 0);
    this.panY = clamp(this.panY + dy, height * (1 - this.zoom), 0);
    this.draw();
  }

  destroy() {
    this.pause();
    this.store.close();
  }
}

function predictionText(prediction) {
  const output = prediction.output ?? {};
  const probabilities = output.probabilities ?? output;
  const known = VESSELS.filter((v) => typeof probabilities[v.value] === "number");
  const version = prediction.model_version ? ` (model v${prediction.model_version})` : "";
  if (known.length) {
    const parts = known
      .sort((a, b) => probabilities[b.value] - probabilities[a.value])
      .map((v) => `${v.text} ${Math.round(probabilities[v.value] * 100)}%`);
    return `Model suggestion${version}: ${parts.join(" · ")}`;
  }
  const vessel = output.vessel ?? output.label ?? output.class;
  return `Model suggestion${version}: ${vessel ?? JSON.stringify(output)}`;
}

// Whether the annotator last left smooth playback on (kept across items and page loads).
function smoothRemembered() {
  try {
    return window.localStorage.getItem(SMOOTH_KEY) === "on";
  } catch {
    return false;
  }
}

function rememberSmooth(on) {
  try {
    window.localStorage.setItem(SMOOTH_KEY, on ? "on" : "off");
  } catch {
    // Storage refused (private mode): the choice lasts for this item only.
  }
}

function markTime(name) {
  performance.mark(name);
  return Math.round(performance.now());
}

export async function mountTool(root, ctx) {
  const media = ctx.item.item.media;
  const count = media.frames || 1;
  const fps = media.frame_rate || (media.frame_time_ms ? 1000 / media.frame_time_ms : FALLBACK_FPS);
  const smooth = media.interpolation ?? null; // present only where the project has a frame-interpolation model
  const stats = { itemId: ctx.item.item.id, frames: count, ready: 0, bytes: 0, firstFrameMs: null, allFramesMs: null };
  if (smooth) Object.assign(stats, { smoothFrames: Math.max(count - 1, 0), smoothReady: 0, syntheticShown: 0 });
  window.lumenCine = stats;
  performance.clearMarks("cine-first-frame");
  performance.clearMarks("cine-all-frames");

  let vessel = null;
  let brightness = 1;
  let contrast = 1;
  const listeners = [];

  const canvas = el("canvas", { id: "cine-canvas", width: media.columns, height: media.rows, tabindex: "-1" });
  // As large as fits: the full width, or 68 % of the window's height, whichever is smaller.
  canvas.style.width = `min(100%, calc(68vh * ${media.columns / media.rows}))`;
  const viewLabel = el("span", { id: "cine-view", class: "cine-view", text: media.geometry?.view ?? "view unknown" });
  const frameLabel = el("span", { id: "cine-frame", class: "cine-frame" });
  const loadLabel = el("span", { id: "cine-loaded", class: "muted" });
  const scrub = el("input", { id: "cine-scrub", type: "range", min: 0, max: count - 1, step: 1, value: 0 });
  const playButton = el("button", { id: "cine-play", type: "button", class: "cine-button" });
  const loopButton = el("button", { id: "cine-loop", type: "button", class: "cine-button" });
  const speedLabel = el("span", { id: "cine-speed", class: "cine-readout" });
  const zoomLabel = el("span", { id: "cine-zoom", class: "cine-readout" });
  const levelLabel = el("span", { id: "cine-levels", class: "cine-readout" });
  const smoothButton = smooth
    ? el(
        "button",
        {
          id: "cine-smooth",
          type: "button",
          class: "cine-button",
          "aria-pressed": "false",
          title: "Smooth 2×: show interpolated frames between the acquired ones, each marked synthetic (i)",
        },
        "Smooth 2×",
      )
    : "";
  const smoothLabel = el("span", { id: "cine-smooth-state", class: "cine-readout" });
  // On the picture while an interpolated frame is shown, so nobody takes it for acquired data.
  const syntheticBadge = el("span", {
    id: "cine-synthetic",
    class: "cine-synthetic",
    hidden: true,
    text: "Synthetic · interpolated frame",
  });
  const reason = el("input", {
    id: "unusable-reason",
    type: "text",
    list: "unusable-reasons",
    maxlength: 200,
    placeholder: "Why is the run unusable?",
    autocomplete: "off",
  });
  const reasonBox = el(
    "label",
    { id: "unusable-box", class: "unusable-box", hidden: true },
    "Reason ",
    reason,
    el("datalist", { id: "unusable-reasons" }, ...REASONS.map((r) => el("option", { value: r }))),
  );
  const choiceButtons = VESSELS.map((v) =>
    el(
      "button",
      { type: "button", class: "vessel-option", "data-vessel": v.value, title: v.title, "aria-pressed": "false" },
      el("kbd", { text: v.key }),
      ` ${v.text}`,
    ),
  );
  const choice = el("div", { id: "vessel-choice", class: "vessel-choice", role: "group", "aria-label": "Vessel" });
  choice.append(...choiceButtons);
  const prediction = ctx.item.prediction
    ? el("p", { id: "vessel-prediction", class: "vessel-prediction", text: predictionText(ctx.item.prediction) })
    : "";

  const stage = el("div", { class: "cine-stage" }, canvas, syntheticBadge);
  const scrubWrap = el("div", { class: "cine-scrub" }, scrub);
  const controls = el(
    "div",
    { class: "cine-controls" },
    playButton,
    el("button", { type: "button", class: "cine-button", title: "Previous frame (←)", onclick: () => player.step(-1) }, "◀"),
    el("button", { type: "button", class: "cine-button", title: "Next frame (→)", onclick: () => player.step(1) }, "▶"),
    loopButton,
    smoothButton,
    speedLabel,
    zoomLabel,
    levelLabel,
    smooth ? smoothLabel : "",
    loadLabel,
  );
  const header = el("div", { class: "cine-header" }, viewLabel, frameLabel);
  const wrapper = el(
    "div",
    { class: "vessel-tool" },
    header,
    stage,
    scrubWrap,
    controls,
    prediction,
    choice,
    reasonBox,
  );
  const store = new FrameStore(media.frame_url_template, count);
  // The label page shows the first item's frame 0 as an <img> before any script runs: take that image over.
  const shown = root.querySelector("img#first-frame");
  const here = (url) => new URL(url, window.location.href).href;
  const fromPage = shown && here(shown.dataset.frameUrl) === here(store.url(0)) ? store.adopt(0, shown) : null;
  if (fromPage && shown.dataset.bytes) stats.inPage = Number(shown.dataset.bytes); // no request carried them
  root.replaceChildren(wrapper);
  const player = new CinePlayer(canvas, store, fps, renderFrame);
  // The in-between frames: n is half-way between acquired frames n and n + 1.
  const between = smooth ? new FrameStore(smooth.frame_url_template, Math.max(count - 1, 0)) : null;
  player.between = between;
  let smoothLoading = null;
  let acquiredIn; // resolves `acquiredLoaded` once every acquired frame is in (or failed)
  const acquiredLoaded = new Promise((resolve) => {
    acquiredIn = resolve;
  });

  function renderFrame(n) {
    const synthetic = player.synthetic;
    frameLabel.textContent = synthetic ? `Frame ${n + 1}½ / ${count} (synthetic)` : `Frame ${n + 1} / ${count}`;
    frameLabel.classList.toggle("synthetic", synthetic);
    syntheticBadge.hidden = !synthetic;
    stage.classList.toggle("synthetic", synthetic);
    if (synthetic) stats.syntheticShown += 1;
    wrapper.dataset.synthetic = String(synthetic);
    wrapper.dataset.frame = String(n);
    wrapper.dataset.playing = String(player.playing);
    scrub.value = String(n);
    playButton.textContent = player.playing ? "❚❚ Pause" : "▶ Play";
  }

  function renderControls() {
    loopButton.textContent = player.loop ? "Loop on" : "Loop off";
    loopButton.setAttribute("aria-pressed", String(player.loop));
    const rate = player.smooth ? 2 * fps * player.speed : fps * player.speed;
    speedLabel.textContent = `${player.speed}× · ${Math.round(rate * 10) / 10} fps${player.smooth ? " (smooth)" : ""}`;
    if (smooth) {
      smoothButton.setAttribute("aria-pressed", String(player.smooth));
      renderSmoothLoading();
    }
    zoomLabel.textContent = `zoom ${Math.round(player.zoom * 100)}%`;
    levelLabel.textContent = `brightness ${Math.round(brightness * 100)}% · contrast ${Math.round(contrast * 100)}%`;
    // A CSS filter on the canvas costs nothing per frame drawn (the compositor applies it).
    canvas.style.filter = `brightness(${brightness}) contrast(${contrast})`;
    renderFrame(player.current);
  }

  function renderLoading() {
    const percent = (100 * store.ready) / count;
    scrubWrap.style.setProperty("--loaded", `${percent}%`);
    loadLabel.textContent = store.ready < count ? `loading ${store.ready} / ${count}` : "";
    const failed = store.failed.filter(Boolean).length;
    if (failed) loadLabel.textContent = `${failed} frame(s) failed to load`;
  }

  function renderSmoothLoading() {
    const failed = between.failed.filter(Boolean).length;
    if (!player.smooth) smoothLabel.textContent = "";
    else if (!smoothLoading || between.ready + failed < between.count)
      smoothLabel.textContent = `interpolated ${between.ready} / ${between.count}`;
    else smoothLabel.textContent = failed ? `${failed} interpolated frame(s) failed: shown without them` : "";
  }

  // Fetch the in-between frames once, after the acquired ones (the server computes them on demand).
  function loadSmooth() {
    smoothLoading ??= acquiredLoaded.then(() =>
      between.loadAll(
        Array.from({ length: between.count }, (_, i) => i),
        SMOOTH_CONCURRENCY,
      ),
    );
  }

  function setSmooth(on) {
    player.setSmooth(on);
    rememberSmooth(on);
    if (on) loadSmooth();
    renderControls();
  }

  function renderChoice() {
    for (const button of choiceButtons) button.setAttribute("aria-pressed", String(button.dataset.vessel === vessel));
    reasonBox.hidden = vessel !== "unusable";
  }

  function choose(value, { focusReason = true } = {}) {
    vessel = value;
    renderChoice();
    if (value === "unusable" && focusReason) reason.focus();
    ctx.changed();
  }

  function speedBy(direction) {
    const index = SPEEDS.indexOf(player.speed);
    player.setSpeed(SPEEDS[clamp(index + direction, 0, SPEEDS.length - 1)]);
    renderControls();
  }

  function zoomBy(factor) {
    player.setZoom(player.zoom * factor);
    renderControls();
  }

  function levels(db, dc) {
    brightness = clamp(Math.round((brightness + db) * 10) / 10, LEVEL_MIN, LEVEL_MAX);
    contrast = clamp(Math.round((contrast + dc) * 10) / 10, LEVEL_MIN, LEVEL_MAX);
    renderControls();
  }

  function resetView() {
    brightness = 1;
    contrast = 1;
    player.setZoom(1);
    renderControls();
  }

  function on(target, type, handler, options) {
    target.addEventListener(type, handler, options);
    listeners.push(() => target.removeEventListener(type, handler, options));
  }

  // Mouse: buttons give focus back to the page so the next key press reaches the shortcuts.
  for (const button of choiceButtons) {
    on(button, "click", () => {
      choose(button.dataset.vessel);
      if (button.dataset.vessel !== "unusable") button.blur();
    });
  }
  on(playButton, "click", () => {
    player.toggle();
    playButton.blur();
  });
  on(loopButton, "click", () => {
    player.loop = !player.loop;
    renderControls();
    loopButton.blur();
  });
  if (smooth) {
    on(smoothButton, "click", () => {
      setSmooth(!player.smooth);
      smoothButton.blur();
    });
    between.onready = () => {
      stats.smoothReady = between.ready;
      renderSmoothLoading();
    };
  }
  on(reason, "input", () => ctx.changed());
  on(reason, "keydown", (event) => {
    // The shell ignores keys typed in inputs; Enter here submits like anywhere else (focus stays, so a
    // refused submit can be fixed by typing on).
    if (event.key !== "Enter") return;
    event.preventDefault();
    wrapper.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
  });
  on(scrub, "input", () => {
    const n = Number(scrub.value); // read before pause() redraws the bar
    player.pause();
    player.show(n);
  });
  on(scrub, "change", () => scrub.blur());
  on(
    canvas,
    "wheel",
    (event) => {
      event.preventDefault();
      const rect = canvas.getBoundingClientRect();
      const x = ((event.clientX - rect.left) * canvas.width) / rect.width;
      const y = ((event.clientY - rect.top) * canvas.height) / rect.height;
      player.setZoom(player.zoom * (event.deltaY < 0 ? ZOOM_STEP : 1 / ZOOM_STEP), x, y);
      renderControls();
    },
    { passive: false },
  );
  let drag = null;
  on(canvas, "pointerdown", (event) => {
    if (player.zoom <= 1) return;
    drag = { x: event.clientX, y: event.clientY };
    canvas.setPointerCapture(event.pointerId);
    canvas.classList.add("dragging");
  });
  on(canvas, "pointermove", (event) => {
    if (!drag) return;
    const scale = canvas.width / canvas.getBoundingClientRect().width;
    player.pan((event.clientX - drag.x) * scale, (event.clientY - drag.y) * scale);
    drag = { x: event.clientX, y: event.clientY };
  });
  const endDrag = () => {
    drag = null;
    canvas.classList.remove("dragging");
  };
  on(canvas, "pointerup", endDrag);
  on(canvas, "pointercancel", endDrag);
  on(canvas, "dblclick", resetView);

  store.onready = (n, error) => {
    stats.ready = store.ready;
    stats.bytes = store.bytes;
    renderLoading();
    if (error) ctx.status(`Frame ${n + 1} could not be loaded (${error.message}).`);
    if (n === player.current && !player.playing) player.draw();
    if (store.ready + store.failed.filter(Boolean).length === count && stats.allFramesMs === null) {
      stats.allFramesMs = markTime("cine-all-frames");
    }
  };

  renderControls();
  renderChoice();
  renderLoading();

  // First frame first: the tool is usable as soon as it is on screen.
  if (!(fromPage && (await fromPage))) await store.load(0);
  if (!store.bitmaps[0]) throw new Error("The first frame of this run could not be loaded.");
  player.show(0);
  stats.firstFrameMs = markTime("cine-first-frame");
  if (count > 1) {
    const rest = media.frames_pack_url
      ? store.loadPack(media.frames_pack_url, 1)
      : Promise.resolve(Array.from({ length: count - 1 }, (_, i) => i + 1));
    rest.then((missing) => store.loadAll(missing, FETCH_CONCURRENCY)).then(acquiredIn);
  } else acquiredIn();
  if (smooth && smoothRemembered()) setSmooth(true);

  const shortcuts = [
    ...VESSELS.map((v) => ({ key: v.key, label: `Vessel: ${v.text}`, run: () => choose(v.value) })),
    { key: "Space", label: "Play / pause", run: () => player.toggle() },
    { key: "ArrowLeft", label: "Previous frame", run: () => player.step(-1) },
    { key: "ArrowRight", label: "Next frame", run: () => player.step(1) },
    { key: "Home", label: "First frame", run: () => player.step(-player.current) },
    { key: "End", label: "Last frame", run: () => player.step(count - 1 - player.current) },
    { key: "+", label: "Faster", run: () => speedBy(1) },
    { key: "-", label: "Slower", run: () => speedBy(-1) },
    {
      key: "l",
      label: "Loop on/off",
      run: () => {
        player.loop = !player.loop;
        renderControls();
      },
    },
    { key: "z", label: "Zoom in", run: () => zoomBy(ZOOM_STEP) },
    { key: "Z", label: "Zoom out", run: () => zoomBy(1 / ZOOM_STEP) },
    { key: "]", label: "Brighter", run: () => levels(LEVEL_STEP, 0) },
    { key: "[", label: "Darker", run: () => levels(-LEVEL_STEP, 0) },
    { key: "}", label: "More contrast", run: () => levels(0, LEVEL_STEP) },
    { key: "{", label: "Less contrast", run: () => levels(0, -LEVEL_STEP) },
    { key: "0", label: "Reset zoom, brightness and contrast", run: resetView },
  ];
  if (smooth) {
    shortcuts.push({
      key: "i",
      label: "Smooth 2× on/off (interpolated frames, marked synthetic)",
      run: () => setSmooth(!player.smooth),
    });
  }

  return {
    shortcuts,
    getPayload() {
      if (!vessel) return { error: "Choose the vessel: LCA (1), RCA (2), neither (3) or unusable (4)." };
      if (vessel === "unusable") {
        const text = reason.value.trim();
        if (!text) return { error: "Say why the run is unusable." };
        return { payload: { vessel, unusable_reason: text } };
      }
      return { payload: { vessel } };
    },
    getDraft() {
      // Also an unfinished choice (unusable without a reason yet) survives a reload.
      return vessel ? { vessel, unusable_reason: reason.value } : null;
    },
    setPayload(payload) {
      vessel = VESSELS.some((v) => v.value === payload?.vessel) ? payload.vessel : null;
      reason.value = payload?.unusable_reason ?? "";
      renderChoice();
    },
    destroy() {
      player.destroy();
      between?.close();
      for (const remove of listeners) remove();
      listeners.length = 0;
    },
  };
}

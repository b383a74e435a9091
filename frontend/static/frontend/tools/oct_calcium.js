// OCT calcium tool: paint the calcium mask of one pullback frame, or exclude the frame with a reason.
//
// The item is ONE frame of a pullback (`ctx.item.item.frame_index`). The navigator (slider, `,`/`.`, arrows,
// the L-mode strip) shows neighbouring frames for context; the mask always belongs to the labelled frame and
// can only be edited while that frame is on screen (`l` returns to it). The mask is a Uint8Array of rows × columns
// (image pixels), stored with the lossless RLE of mask-rle.js.
//
// Zoom and pan: the canvas is a viewport whose backing store follows its size on screen (× devicePixelRatio), and
// one view — the zoom (1 = the whole frame fits) and the image point at the viewport's centre — draws the frame,
// the mask and the outlines and maps the pointer back to image pixels, so a stroke lands on the pixels under the
// pointer at any zoom and the mask never drifts from the frame. The view stays while frames of the pullback are
// browsed, and carries over to the next item of the same pullback.
// Measurements come from oct-measure.js, the same definitions as learning/oct_measure.py.
// `window.lumenOct` exposes the mask and measurements to tests and scripts.

import { decodeMask, encodeMask } from "../lib/mask-rle.js";
import {
  clamp,
  drawArcRing,
  drawBrushCursor,
  drawPolygonOutline,
  fillPolygon,
  FrameCache,
  MaskOverlay,
  stamp,
  stampLine,
  UndoHistory,
} from "../lib/mask-paint.js";
import { calciumBins, calciumMeasurements, defaultCentre } from "../lib/oct-measure.js";
import { el } from "../lib/dom.js";

const REASONS = [
  { value: "poor_blood_clearance", key: "1", text: "Poor blood clearance" },
  { value: "in_guide_catheter", key: "2", text: "In guide catheter" },
  { value: "artifact", key: "3", text: "Artifact" },
];
const SIZES = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64];
const OPACITIES = [0.25, 0.5, 0.75, 1];
const UNDO_LIMIT = 50;
const PREFETCH = 2;
const MASK_RGB = [255, 176, 32];
const ZOOM_MAX = 16;
const ZOOM_STEP = 1.25;
const WHEEL_ZOOM = 0.002; // zoom factor e^(−0.002·Δ) per wheel delta in pixels: a notch (100 px) is ×1.22
const WHEEL_LINE = 16; // pixels per line, for wheels that report lines

// The last view, so the next frame of the same pullback opens where the annotator was looking.
let lastView = null;


export async function mountTool(root, ctx) {
  const item = ctx.item.item;
  const media = item.media;
  const rows = media.rows;
  const cols = media.columns;
  const frameCount = media.frames || 1;
  const labelledFrame = item.frame_index ?? 0;
  const pullback = ctx.item.pullback || null;
  const spacing = pullback?.pixel_spacing_mm || null;
  const [cy, cx] = defaultCentre(rows, cols);
  const listeners = [];

  const state = {
    mask: new Uint8Array(rows * cols),
    excluded: false,
    reason: "",
    mode: "brush",
    sizeIndex: SIZES.indexOf(4),
    opacity: 0.5,
    visible: true,
    viewing: labelledFrame,
    polygon: [],
    pointer: null,
    stroke: null,
    source: "empty",
    measurements: null,
    bins: null,
    view: { zoom: 1, cx: cols / 2, cy: rows / 2 }, // cx, cy: the image point at the viewport's centre
    panMode: false,
    spaceHeld: false,
    panning: null,
  };
  const viewKey = `${pullback?.instance ?? item.id}:${rows}x${cols}`;
  if (lastView?.key === viewKey) state.view = { ...lastView.view };

  // --- DOM -----------------------------------------------------------------------------------------------
  const canvas = el("canvas", { id: "oct-canvas", width: cols, height: rows, tabindex: "-1" });
  canvas.style.aspectRatio = `${cols} / ${rows}`;
  const banner = el("p", { id: "oct-banner", class: "oct-banner", role: "status" });
  const frameSlider = el("input", {
    id: "oct-frame",
    type: "range",
    min: 0,
    max: frameCount - 1,
    step: 1,
    value: labelledFrame,
    "aria-label": "Frame",
  });
  const frameText = el("span", { id: "oct-frame-text", class: "oct-readout" });
  const zoomText = el("output", { id: "oct-zoom", class: "oct-readout", "aria-live": "polite" });
  const lmodeImage = el("img", { id: "oct-lmode-image", alt: "Longitudinal view of the pullback", draggable: "false" });
  const lmodeCursor = el("div", { id: "oct-lmode-cursor", class: "oct-lmode-cursor" });
  const lmodeItem = el("div", { id: "oct-lmode-item", class: "oct-lmode-item", title: "The frame you are labelling" });
  const lmodeMarks = el("div", { class: "oct-lmode-marks" });
  const lmode = el("div", { id: "oct-lmode", class: "oct-lmode" }, lmodeImage, lmodeMarks, lmodeItem, lmodeCursor);

  const button = (id, text, title, run) =>
    el("button", {
      id,
      type: "button",
      class: "oct-button",
      title,
      text,
      onmousedown: (event) => event.preventDefault(), // keep focus on the page so keys reach the shortcuts
      onclick: run,
    });
  const brushButton = button("oct-brush", "Brush", "Brush (d)", () => setMode("brush"));
  const eraserButton = button("oct-eraser", "Eraser", "Eraser (e)", () => setMode("eraser"));
  const polygonButton = button("oct-polygon", "Polygon", "Polygon fill (p; f or double-click closes)", () =>
    setMode("polygon"),
  );
  const sizeText = el("span", { id: "oct-size", class: "oct-readout" });
  const opacityInput = el("input", {
    id: "oct-opacity",
    type: "range",
    min: 0.1,
    max: 1,
    step: 0.05,
    value: state.opacity,
    "aria-label": "Mask opacity",
  });
  const visibleButton = button("oct-visible", "Hide mask", "Show/hide the mask (h)", () => toggleVisible());
  const panButton = button(
    "oct-pan",
    "Pan",
    "Pan: drag the frame (m; or hold Space, or drag with the middle button)",
    () => togglePan(),
  );
  const zoomControls = el(
    "div",
    { class: "oct-zoom", role: "group", "aria-label": "Zoom" },
    button("oct-zoom-out", "−", "Zoom out (-)", () => zoomBy(1 / ZOOM_STEP)),
    zoomText,
    button("oct-zoom-in", "+", "Zoom in (+; or the wheel over the frame)", () => zoomBy(ZOOM_STEP)),
    button("oct-fit", "Fit", "Fit the whole frame (0)", () => fitView()),
    panButton,
  );
  const tools = el(
    "div",
    { class: "oct-controls", role: "toolbar", "aria-label": "Mask tools" },
    brushButton,
    eraserButton,
    polygonButton,
    button("oct-smaller", "−", "Smaller brush ([)", () => resize(-1)),
    sizeText,
    button("oct-larger", "+", "Larger brush (])", () => resize(1)),
    button("oct-undo", "Undo", "Undo (Ctrl+z)", () => undo()),
    button("oct-redo", "Redo", "Redo (Ctrl+y)", () => redo()),
    visibleButton,
    el("label", { class: "oct-inline" }, "Opacity ", opacityInput),
    button("oct-copy-prev", "Copy previous frame", "Copy your mask of the previous frame (c)", () => copyPrevious()),
    button("oct-clear", "Clear", "Clear the mask (x)", () => clearMask()),
  );
  const excludeBox = el("input", { id: "oct-exclude", type: "checkbox" });
  const reasonSelect = el(
    "select",
    { id: "oct-exclude-reason", "aria-label": "Why the frame is excluded" },
    el("option", { value: "", text: "choose a reason…" }),
    ...REASONS.map((r) => el("option", { value: r.value, text: `${r.key} · ${r.text}` })),
  );
  const exclusion = el(
    "div",
    { id: "oct-exclusion", class: "oct-exclusion" },
    el("label", { class: "oct-inline" }, excludeBox, " Exclude frame"),
    reasonSelect,
  );
  const arcValue = el("dd", { id: "oct-arc" });
  const areaValue = el("dd", { id: "oct-area" });
  const thicknessValue = el("dd", { id: "oct-thickness" });
  const measurements = el(
    "dl",
    { id: "oct-measurements", class: "oct-measurements" },
    el("div", {}, el("dt", { text: "Calcium arc" }), arcValue),
    el("div", {}, el("dt", { text: "Area" }), areaValue),
    el("div", {}, el("dt", { text: "Max thickness" }), thicknessValue),
  );
  const modeText = el("span", { id: "oct-mode", class: "oct-readout" });
  const sourceText = el("span", { id: "oct-source", class: "oct-readout" });

  const wrapper = el(
    "div",
    { class: "oct-tool", id: "oct-tool" },
    banner,
    el(
      "div",
      { class: "oct-main" },
      el("div", { class: "oct-stage" }, canvas),
      el("aside", { class: "oct-side" }, measurements, exclusion, modeText, sourceText),
    ),
    el(
      "div",
      { class: "oct-nav" },
      el("label", { class: "oct-inline oct-slider" }, frameSlider),
      frameText,
      zoomControls,
    ),
    lmode,
    tools,
  );
  root.replaceChildren(wrapper);

  const overlay = new MaskOverlay(rows, cols, MASK_RGB);
  const undoHistory = new UndoHistory(UNDO_LIMIT);
  const context = canvas.getContext("2d");
  const frames = new FrameCache(media.frame_url_template, frameCount, PREFETCH);
  let frameBitmap = null;
  let frameToken = 0;
  let renderRequest = 0;
  let measureStale = true;
  const maskChanged = () => {
    measureStale = true;
    overlay.stale = true;
  };

  // --- State changes ---------------------------------------------------------------------------------------
  function snapshot() {
    return { mask: state.mask.slice(), excluded: state.excluded, reason: state.reason };
  }

  function restore(snap) {
    state.mask = snap.mask;
    state.excluded = snap.excluded;
    state.reason = snap.reason;
  }

  function edited() {
    maskChanged();
    updateMeasurements(); // at once, so the numbers on screen never lag behind a finished edit
    renderControls();
    requestRender();
    ctx.changed();
  }

  function canEdit() {
    if (state.viewing !== labelledFrame) {
      ctx.status(`Frame ${state.viewing + 1} is for context only; press l to edit frame ${labelledFrame + 1}`);
      return false;
    }
    if (state.excluded) {
      ctx.status("The frame is excluded; press i to include it and edit the mask");
      return false;
    }
    return true;
  }

  function undo() {
    if (!undoHistory.undoCount) return ctx.status("Nothing to undo");
    restore(undoHistory.undo(snapshot()));
    edited();
  }

  function redo() {
    if (!undoHistory.redoCount) return ctx.status("Nothing to redo");
    restore(undoHistory.redo(snapshot()));
    edited();
  }

  function clearMask() {
    if (!canEdit()) return;
    undoHistory.remember(snapshot());
    state.mask = new Uint8Array(rows * cols);
    state.polygon = [];
    edited();
  }

  function setMode(mode) {
    state.mode = mode;
    if (mode !== "polygon") state.polygon = [];
    renderControls();
    requestRender();
  }

  function resize(direction) {
    state.sizeIndex = clamp(state.sizeIndex + direction, 0, SIZES.length - 1);
    renderControls();
    requestRender();
  }

  function toggleVisible() {
    state.visible = !state.visible;
    renderControls();
    requestRender();
  }

  function cycleOpacity() {
    const next = OPACITIES.find((o) => o > state.opacity + 1e-6);
    state.opacity = next ?? OPACITIES[0];
    opacityInput.value = String(state.opacity);
    requestRender();
  }

  function setExcluded(excluded, reason = state.reason) {
    if (excluded === state.excluded && reason === state.reason) return;
    undoHistory.remember(snapshot());
    state.excluded = excluded;
    state.reason = excluded ? reason : "";
    if (excluded) state.polygon = [];
    edited();
  }

  function closePolygon() {
    if (state.mode !== "polygon" || !canEdit()) return;
    if (state.polygon.length < 3) return ctx.status("A polygon needs at least 3 points");
    undoHistory.remember(snapshot());
    fillPolygon(state.mask, rows, cols, state.polygon, 1);
    state.polygon = [];
    edited();
  }

  function dropPolygonPoint() {
    if (state.polygon.length) {
      state.polygon.pop();
      requestRender();
    }
  }

  function loadMask(encoded, source) {
    const decoded = decodeMask(encoded);
    if (decoded.rows !== rows || decoded.cols !== cols) {
      throw new Error(`mask is ${decoded.rows}×${decoded.cols}, the frame is ${rows}×${cols}`);
    }
    state.mask = decoded.data;
    state.source = source;
  }

  async function copyPrevious() {
    if (!canEdit()) return;
    const previous = pullback?.frame_items?.find((f) => f.frame_index === labelledFrame - 1);
    if (!previous) return ctx.status("There is no previous frame in this project");
    if (!previous.mine) return ctx.status(`You have not labelled frame ${labelledFrame} yet`);
    try {
      const body = await ctx.api.get(`${ctx.item.labels_url}?item=${previous.item}&current=1&mine=1`);
      const label = (body.results || body)[0];
      if (!label) return ctx.status(`You have not labelled frame ${labelledFrame} yet`);
      if (label.payload.excluded) return ctx.status(`Frame ${labelledFrame} is excluded: it has no mask to copy`);
      const before = snapshot();
      loadMask(label.payload.mask, `copied from frame ${labelledFrame}`);
      undoHistory.remember(before);
      edited();
      ctx.status(`Copied your mask of frame ${labelledFrame}`);
    } catch (error) {
      ctx.status(`Could not copy the previous frame's mask: ${error.message}`);
    }
  }

  // --- Frames ----------------------------------------------------------------------------------------------
  async function showFrame(n) {
    n = clamp(n, 0, frameCount - 1);
    state.viewing = n;
    const token = ++frameToken;
    renderControls();
    frames.prefetch(n);
    try {
      const bitmap = await frames.get(n);
      if (token !== frameToken) return;
      frameBitmap = bitmap;
      wrapper.dataset.shownFrame = String(n);
    } catch (error) {
      if (token === frameToken) ctx.status(error.message);
    }
    requestRender();
  }

  // --- View: zoom and pan ---------------------------------------------------------------------------------
  // Image pixels per CSS pixel of the canvas at zoom 1; the canvas keeps the frame's aspect ratio.
  const fitScale = () => cols / Math.max(1, canvas.getBoundingClientRect().width || cols);

  function setView(zoom, cx, cy) {
    const z = clamp(zoom, 1, ZOOM_MAX);
    // Never past the frame's edges: at zoom 1 the whole frame is centred.
    const halfWidth = cols / (2 * z);
    const halfHeight = rows / (2 * z);
    state.view = { zoom: z, cx: clamp(cx, halfWidth, cols - halfWidth), cy: clamp(cy, halfHeight, rows - halfHeight) };
    lastView = { key: viewKey, view: { ...state.view } };
    renderControls();
    requestRender();
  }

  /** Zoom by `factor`, keeping the image point under (fx, fy) — fractions of the viewport — where it is. */
  function zoomBy(factor, fx = 0.5, fy = 0.5) {
    const { zoom, cx, cy } = state.view;
    const next = clamp(zoom * factor, 1, ZOOM_MAX);
    const x = cx + ((fx - 0.5) * cols) / zoom;
    const y = cy + ((fy - 0.5) * rows) / zoom;
    setView(next, x - ((fx - 0.5) * cols) / next, y - ((fy - 0.5) * rows) / next);
  }

  function fitView() {
    setView(1, cols / 2, rows / 2);
  }

  /** Move the image with the pointer by (dx, dy) CSS pixels. */
  function panBy(dx, dy) {
    const { zoom, cx, cy } = state.view;
    const scale = fitScale() / zoom;
    setView(zoom, cx - dx * scale, cy - dy * scale);
  }

  function togglePan() {
    state.panMode = !state.panMode;
    renderControls();
  }

  // --- Pointer ---------------------------------------------------------------------------------------------
  /** Map a pointer event to image pixels through the view (never screen pixels: the mask is in image pixels). */
  function toPixels(event) {
    const rect = canvas.getBoundingClientRect();
    const { zoom, cx, cy } = state.view;
    return {
      x: cx + (((event.clientX - rect.left) / rect.width - 0.5) * cols) / zoom,
      y: cy + (((event.clientY - rect.top) / rect.height - 0.5) * rows) / zoom,
    };
  }

  function radius() {
    return SIZES[state.sizeIndex] / 2;
  }

  function on(target, type, handler, options) {
    target.addEventListener(type, handler, options);
    listeners.push(() => target.removeEventListener(type, handler, options));
  }

  // The backing store follows the canvas's size on screen, so outlines stay sharp at any zoom.
  const resizer = new ResizeObserver(() => {
    const rect = canvas.getBoundingClientRect();
    const width = Math.max(1, Math.round(rect.width * devicePixelRatio));
    const height = Math.max(1, Math.round(rect.height * devicePixelRatio));
    if (canvas.width === width && canvas.height === height) return;
    canvas.width = width;
    canvas.height = height;
    render(); // at once: resizing cleared the canvas
  });
  resizer.observe(canvas);
  listeners.push(() => resizer.disconnect());

  on(canvas, "pointerdown", (event) => {
    // Pan: the middle button, or the left one in pan mode or while Space is held. Works on any frame.
    if (event.button === 1 || (event.button === 0 && (state.panMode || state.spaceHeld))) {
      event.preventDefault();
      state.panning = { x: event.clientX, y: event.clientY };
      canvas.setPointerCapture(event.pointerId);
      renderControls();
      return;
    }
    if (event.button !== 0) return;
    event.preventDefault();
    const point = toPixels(event);
    state.pointer = point;
    if (!canEdit()) return;
    if (state.mode === "polygon") {
      const last = state.polygon.at(-1);
      if (!last || Math.hypot(last.x - point.x, last.y - point.y) >= 0.5) state.polygon.push(point);
      requestRender();
      return;
    }
    undoHistory.remember(snapshot());
    canvas.setPointerCapture(event.pointerId);
    state.stroke = { last: point, value: state.mode === "eraser" ? 0 : 1 };
    stamp(state.mask, rows, cols, point.x, point.y, radius(), state.stroke.value);
    maskChanged();
    requestRender();
  });
  on(canvas, "mousedown", (event) => {
    if (event.button === 1) event.preventDefault(); // no autoscroll (or paste) from the middle button
  });
  on(canvas, "auxclick", (event) => event.preventDefault());
  on(canvas, "pointermove", (event) => {
    if (state.panning) {
      panBy(event.clientX - state.panning.x, event.clientY - state.panning.y);
      state.panning = { x: event.clientX, y: event.clientY };
    }
    const point = toPixels(event);
    state.pointer = point;
    if (state.stroke) {
      stampLine(state.mask, rows, cols, state.stroke.last, point, radius(), state.stroke.value);
      state.stroke.last = point;
      maskChanged();
    }
    requestRender();
  });
  const endStroke = () => {
    if (state.panning) {
      state.panning = null;
      renderControls();
    }
    if (!state.stroke) return;
    state.stroke = null;
    edited();
  };
  on(canvas, "pointerup", endStroke);
  on(canvas, "pointercancel", endStroke);
  on(canvas, "pointerleave", () => {
    state.pointer = null;
    requestRender();
  });
  on(
    canvas,
    "wheel",
    (event) => {
      event.preventDefault(); // the page neither scrolls nor (Ctrl+wheel, a pinch) zooms
      const rect = canvas.getBoundingClientRect();
      const delta = event.deltaY * (event.deltaMode === WheelEvent.DOM_DELTA_LINE ? WHEEL_LINE : 1);
      zoomBy(
        Math.exp(-delta * WHEEL_ZOOM),
        (event.clientX - rect.left) / rect.width,
        (event.clientY - rect.top) / rect.height,
      );
      state.pointer = toPixels(event);
    },
    { passive: false },
  );
  // Space held pans (the shortcut below sets it); it ends with the key or when the window loses focus.
  const releaseSpace = (event) => {
    if (event.type === "keyup" && event.key !== " ") return;
    if (!state.spaceHeld) return;
    state.spaceHeld = false;
    renderControls();
  };
  on(document, "keyup", releaseSpace);
  on(window, "blur", releaseSpace);
  on(canvas, "dblclick", (event) => {
    event.preventDefault();
    closePolygon();
  });
  on(frameSlider, "input", () => showFrame(Number(frameSlider.value)));
  on(opacityInput, "input", () => {
    state.opacity = Number(opacityInput.value);
    requestRender();
  });
  on(excludeBox, "change", () => {
    setExcluded(excludeBox.checked, state.reason);
    if (excludeBox.checked && !state.reason) reasonSelect.focus();
  });
  on(reasonSelect, "change", () => setExcluded(Boolean(reasonSelect.value) || state.excluded, reasonSelect.value));
  on(lmode, "click", (event) => {
    const rect = lmode.getBoundingClientRect();
    showFrame(Math.floor(((event.clientX - rect.left) / rect.width) * frameCount));
  });

  // --- Rendering -------------------------------------------------------------------------------------------
  function requestRender() {
    if (!renderRequest) renderRequest = requestAnimationFrame(render);
  }

  function updateMeasurements() {
    if (!measureStale) return;
    measureStale = false;
    const m = calciumMeasurements(state.mask, rows, cols, { pixelSpacingMm: spacing });
    state.measurements = m;
    state.bins = calciumBins(state.mask, rows, cols).counts;
    const [arc, area, thickness] = [arcValue, areaValue, thicknessValue];
    arc.textContent = `${m.arcDegrees}°`;
    arc.dataset.value = String(m.arcDegrees);
    area.textContent = m.areaMm2 === null ? `${m.areaPx} px` : `${m.areaMm2.toFixed(3)} mm²`;
    area.title = `${m.areaPx} pixels`;
    area.dataset.value = String(m.areaPx);
    thickness.textContent =
      m.maxThicknessMm === null ? `${m.maxThicknessPx.toFixed(1)} px` : `${m.maxThicknessMm.toFixed(3)} mm`;
    thickness.title = `${m.maxThicknessPx.toFixed(2)} pixels`;
    thickness.dataset.value = String(m.maxThicknessPx);
    measurements.classList.toggle("oct-muted", state.excluded);
  }

  function drawMask() {
    const onLabelledFrame = state.viewing === labelledFrame;
    const alpha = state.excluded ? state.opacity * 0.3 : onLabelledFrame ? state.opacity : state.opacity * 0.5;
    overlay.draw(context, state.mask, alpha);
  }

  function drawCursor(unit) {
    if (!state.pointer || state.mode === "polygon") return;
    const colour = state.mode === "eraser" ? "#ff6b6b" : "#ffffff";
    drawBrushCursor(context, state.pointer, Math.max(radius(), unit), colour, unit);
  }

  function render() {
    if (renderRequest) cancelAnimationFrame(renderRequest);
    renderRequest = 0;
    updateMeasurements();
    const { zoom, cx, cy } = state.view;
    const { width, height } = canvas;
    context.setTransform(1, 0, 0, 1, 0, 0);
    context.fillStyle = "#000";
    context.fillRect(0, 0, width, height);
    // From here on everything is drawn in image pixels: the frame, the mask and the outlines share one transform.
    const sx = (width / cols) * zoom;
    const sy = (height / rows) * zoom;
    context.setTransform(sx, 0, 0, sy, width / 2 - cx * sx, height / 2 - cy * sy);
    // One CSS pixel in image pixels, so outlines stay thin whatever the zoom.
    const unit = fitScale() / zoom;
    context.imageSmoothingEnabled = sx < 1; // shrunk frames are smoothed; enlarged pixels stay square
    if (frameBitmap) context.drawImage(frameBitmap, 0, 0, cols, rows);
    context.imageSmoothingEnabled = false;
    if (state.visible) {
      drawMask();
      // The measured arc as a ring just inside the frame edge.
      if (state.bins) drawArcRing(context, state.bins, [cy, cx], Math.min(rows, cols) / 2 - 3 * unit, unit);
    }
    drawPolygonOutline(context, state.polygon, state.pointer, unit);
    drawCursor(unit);
  }

  function renderControls() {
    const onLabelledFrame = state.viewing === labelledFrame;
    wrapper.dataset.viewing = String(state.viewing);
    wrapper.dataset.labelledFrame = String(labelledFrame);
    wrapper.classList.toggle("oct-context", !onLabelledFrame);
    wrapper.classList.toggle("oct-excluded", state.excluded);
    banner.textContent = onLabelledFrame
      ? `Labelling frame ${labelledFrame + 1} of ${frameCount}`
      : `Viewing frame ${state.viewing + 1} for context — the mask belongs to frame ${labelledFrame + 1} ` +
        "(press l to return)";
    if (document.activeElement !== frameSlider) frameSlider.value = String(state.viewing);
    frameText.textContent = `Frame ${state.viewing + 1} / ${frameCount}`;
    const percent = (index) => `${((index + 0.5) / frameCount) * 100}%`;
    lmodeCursor.style.left = percent(state.viewing);
    lmodeItem.style.left = percent(labelledFrame);
    for (const [b, mode] of [
      [brushButton, "brush"],
      [eraserButton, "eraser"],
      [polygonButton, "polygon"],
    ]) {
      b.setAttribute("aria-pressed", String(state.mode === mode));
    }
    sizeText.textContent = `${SIZES[state.sizeIndex]} px`;
    zoomText.textContent = `${Math.round(state.view.zoom * 100)} %`;
    zoomText.dataset.zoom = String(state.view.zoom);
    panButton.setAttribute("aria-pressed", String(state.panMode));
    wrapper.classList.toggle("oct-pan-ready", state.panMode || state.spaceHeld);
    wrapper.classList.toggle("oct-panning", Boolean(state.panning));
    visibleButton.textContent = state.visible ? "Hide mask" : "Show mask";
    visibleButton.setAttribute("aria-pressed", String(!state.visible));
    excludeBox.checked = state.excluded;
    reasonSelect.value = state.reason;
    exclusion.classList.toggle("oct-active", state.excluded);
    const modeName = { brush: "Brush", eraser: "Eraser", polygon: "Polygon (click points, f closes)" }[state.mode];
    modeText.textContent = `${modeName} · ${SIZES[state.sizeIndex]} px`;
    sourceText.textContent = `Started from: ${state.source}`;
  }

  function renderLmodeMarks() {
    if (!pullback) {
      lmode.hidden = true;
      return;
    }
    if (pullback.lmode_url) lmodeImage.src = pullback.lmode_url;
    const marks = (pullback.frame_items || [])
      .filter((f) => f.mine)
      .map((f) => {
        const mark = el("div", {
          class: `oct-lmode-mark oct-lmode-${f.mine}`,
          title: `Frame ${f.frame_index + 1}: ${f.mine === "mask" ? "labelled" : "excluded"}`,
        });
        mark.style.left = `${((f.frame_index + 0.5) / frameCount) * 100}%`; // CSSOM: the CSP refuses style attributes
        return mark;
      });
    lmodeMarks.replaceChildren(...marks);
  }

  function holdSpace() {
    if (state.spaceHeld) return; // the key repeats while held
    state.spaceHeld = true;
    renderControls();
  }

  // --- Shortcuts -------------------------------------------------------------------------------------------
  const step = (delta) => () => showFrame(state.viewing + delta);
  const shortcuts = [
    { key: "d", label: "Brush", run: () => setMode("brush") },
    { key: "e", label: "Eraser", run: () => setMode("eraser") },
    { key: "p", label: "Polygon fill (click points)", run: () => setMode("polygon") },
    { key: "f", label: "Close and fill the polygon", run: closePolygon },
    { key: "Backspace", label: "Remove the last polygon point", run: dropPolygonPoint },
    { key: "[", label: "Smaller brush", run: () => resize(-1) },
    { key: "]", label: "Larger brush", run: () => resize(1) },
    { key: "Ctrl+z", label: "Undo", run: undo },
    { key: "Ctrl+y", label: "Redo", run: redo },
    { key: "h", label: "Show/hide the mask", run: toggleVisible },
    { key: "o", label: "Mask opacity (cycle)", run: cycleOpacity },
    { key: "c", label: "Copy your mask of the previous frame", run: copyPrevious },
    { key: "x", label: "Clear the mask", run: clearMask },
    ...REASONS.map((r) => ({
      key: r.key,
      label: `Exclude frame: ${r.text.toLowerCase()}`,
      run: () => setExcluded(true, r.value),
    })),
    { key: "i", label: "Include the frame again (edit the mask)", run: () => setExcluded(false) },
    { key: ",", label: "Previous frame", run: step(-1) },
    { key: ".", label: "Next frame", run: step(1) },
    { key: "ArrowLeft", label: "Previous frame", run: step(-1) },
    { key: "ArrowRight", label: "Next frame", run: step(1) },
    { key: "l", label: "Back to the labelled frame", run: () => showFrame(labelledFrame) },
    {
      key: "+",
      label: "Zoom in (or the wheel / a pinch over the frame, around the pointer)",
      run: () => zoomBy(ZOOM_STEP),
    },
    { key: "=", label: "Zoom in", run: () => zoomBy(ZOOM_STEP) },
    { key: "-", label: "Zoom out", run: () => zoomBy(1 / ZOOM_STEP) },
    { key: "0", label: "Fit the whole frame (reset zoom and pan)", run: fitView },
    { key: "m", label: "Pan mode on/off (drag moves the frame)", run: togglePan },
    { key: "Space", label: "Hold and drag to pan (or drag with the middle button)", run: holdSpace },
  ];

  // --- Start -----------------------------------------------------------------------------------------------
  const prediction = ctx.item.prediction;
  if (!ctx.item.label && prediction?.output?.mask) {
    try {
      loadMask(prediction.output.mask, `model v${prediction.model_version} prediction`);
      ctx.status(`Starting from model v${prediction.model_version}'s prediction: edit it to match the calcium`);
    } catch (error) {
      ctx.status(`The model's prediction could not be used: ${error.message}`);
    }
  }
  renderLmodeMarks();
  updateMeasurements();
  renderControls();
  await showFrame(labelledFrame);

  const tool = {
    shortcuts,
    getPayload() {
      if (state.excluded) {
        if (!state.reason) return { error: "Choose why the frame is excluded (1, 2 or 3)" };
        return { payload: { excluded: true, exclusion_reason: state.reason } };
      }
      return { payload: { excluded: false, mask: encodeMask(state.mask, rows, cols) } };
    },
    setPayload(payload) {
      undoHistory.clear();
      state.polygon = [];
      if (payload?.excluded) {
        state.excluded = true;
        state.reason = payload.exclusion_reason || "";
        state.source = "saved exclusion";
      } else if (payload?.mask) {
        state.excluded = false;
        try {
          const isLabel = JSON.stringify(payload) === JSON.stringify(ctx.item.label?.payload);
          loadMask(payload.mask, isLabel ? `your label v${ctx.item.label.version}` : "your draft");
        } catch (error) {
          ctx.status(`The saved mask could not be shown: ${error.message}`);
        }
      }
      maskChanged();
      updateMeasurements();
      renderControls();
      requestRender();
    },
    destroy() {
      if (renderRequest) cancelAnimationFrame(renderRequest);
      renderRequest = 0;
      frameToken++;
      frames.close();
      for (const off of listeners) off();
      if (window.lumenOct === debug) delete window.lumenOct;
    },
  };
  const debug = {
    mask: () => encodeMask(state.mask, rows, cols),
    measurements: () => calciumMeasurements(state.mask, rows, cols, { pixelSpacingMm: spacing }),
    state: () => ({
      mode: state.mode,
      size: SIZES[state.sizeIndex],
      viewing: state.viewing,
      excluded: state.excluded,
      reason: state.reason,
      undo: undoHistory.undoCount,
      redo: undoHistory.redoCount,
      polygon: state.polygon.length,
      zoom: state.view.zoom,
      centre: [state.view.cy, state.view.cx],
      panMode: state.panMode,
    }),
  };
  window.lumenOct = debug;
  return tool;
}

// Small DOM builders shared by the tool modules that import them.

const SVG_NS = "http://www.w3.org/2000/svg";

/** Create an HTML element: `text` sets its text, `on<event>` adds a listener, true/false/null toggle attributes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (key === "text") node.textContent = value;
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(key, value === true ? "" : value);
  }
  node.append(...children);
  return node;
}

/** Create an SVG element with the given attributes. */
export function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
  return node;
}

/** Return a value with its unit, or a dash when there is none. */
export function formatNumber(value, unit = "") {
  return value === null || value === undefined || value === "" ? "—" : `${value}${unit}`;
}

// Keyboard shortcuts: one combo string per key press ("Ctrl+z", "ArrowLeft", "S"), shown on screen.

const TYPING = new Set(["INPUT", "TEXTAREA", "SELECT"]);

export function comboOf(event) {
  let prefix = "";
  if (event.ctrlKey || event.metaKey) prefix += "Ctrl+";
  if (event.altKey) prefix += "Alt+";
  const key = event.key === " " ? "Space" : event.key;
  return prefix + key;
}

export function isTyping(target) {
  return !!target && (TYPING.has(target.tagName) || target.isContentEditable);
}

export function renderShortcuts(list, shortcuts) {
  list.replaceChildren();
  for (const { key, label } of shortcuts) {
    const term = document.createElement("dt");
    const kbd = document.createElement("kbd");
    kbd.textContent = key;
    term.append(kbd);
    const description = document.createElement("dd");
    description.textContent = label;
    list.append(term, description);
  }
}

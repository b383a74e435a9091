// Small numeric helpers shared by the tools (kept apart so a tool loads only what it uses).

export function clamp(value, low, high) {
  return Math.min(high, Math.max(low, value));
}

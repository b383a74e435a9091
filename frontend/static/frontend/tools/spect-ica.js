// ICA reference panel of the SPECT tool: the stored stenoses with the territories they make obstructive,
// and for a lead the entry form with a live preview of what saving would make obstructive.
import { el, formatNumber } from "../lib/dom.js";
import { TERRITORIES, icaObstructive } from "../lib/territories.js";

const VESSELS = [
  ["stenosis_lm", "LM"],
  ["stenosis_lad", "LAD"],
  ["stenosis_lcx", "LCX"],
  ["stenosis_rca", "RCA"],
];

function obstructiveNames(obstructive) {
  return TERRITORIES.filter((t) => obstructive[t]).join(", ") || "none";
}

/** Fill `values` with the item's ICA reference, or say there is none. */
function renderValues(values, ica) {
  if (!ica) {
    values.replaceChildren(el("p", { class: "muted", text: "No ICA reference for this patient." }));
    return;
  }
  const obstructive = ica.obstructive || icaObstructive(ica);
  values.replaceChildren(
    el(
      "table",
      { class: "grid" },
      el(
        "tbody",
        {},
        ...VESSELS.map(([field, name]) =>
          el(
            "tr",
            { "data-vessel": name },
            el("th", { text: name }),
            el("td", { class: "num", text: formatNumber(ica[field], "%") }),
          ),
        ),
      ),
    ),
    el(
      "p",
      { class: "spect-ica-obstructive" },
      "Obstructive: ",
      el("strong", { text: obstructiveNames(obstructive) }),
    ),
    el("p", {
      class: "muted",
      text: `Entered by ${ica.entered_by ?? "—"}${ica.created_at ? ` on ${new Date(ica.created_at).toLocaleString()}` : ""}`,
    }),
  );
}

/** Build the lead's entry form; a successful save stores the reply on `item.ica` and calls `onSaved`. */
function icaForm(item, ctx, onSaved) {
  const inputs = {};
  const preview = el("p", { class: "muted", id: "spect-ica-preview" });
  const error = el("p", { class: "error", id: "spect-ica-error", role: "alert" });
  const form = el("form", { id: "spect-ica-form", class: "spect-ica-form" });
  for (const [field, name] of VESSELS) {
    inputs[field] = el("input", {
      type: "number",
      name: field,
      min: 0,
      max: 100,
      step: "any",
      value: item.ica?.[field] ?? "",
    });
    form.append(el("label", {}, `${name} %`, inputs[field]));
  }
  const values = () =>
    Object.fromEntries(
      VESSELS.map(([field]) => [field, inputs[field].value === "" ? null : Number(inputs[field].value)]),
    );
  const showPreview = () => {
    preview.textContent = `Obstructive if saved: ${obstructiveNames(icaObstructive(values()))}`;
  };
  form.addEventListener("input", showPreview);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    try {
      item.ica = await ctx.api.post(item.ica_url, values());
      onSaved();
      ctx.status("ICA reference saved");
    } catch (failure) {
      const body = failure.body && typeof failure.body === "object" ? failure.body : null;
      error.textContent = body
        ? Object.entries(body)
            .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(" ") : v}`)
            .join("; ")
        : failure.message;
      ctx.status("ICA reference not saved");
    }
  });
  form.append(preview, error, el("button", { type: "submit", text: "Save ICA reference" }));
  showPreview();
  return form;
}

/**
 * Build the ICA reference panel for an item: the read-only values, plus the entry form when
 * `item.can_edit_ica`. Return the section and the form (null for readers who may not edit).
 */
export function icaPanel(item, ctx) {
  const section = el("section", { id: "spect-ica", class: "spect-ica" }, el("h3", { text: "ICA reference" }));
  const values = el("div", { id: "spect-ica-values" });
  section.append(values);
  const form = item.can_edit_ica ? icaForm(item, ctx, () => renderValues(values, item.ica)) : null;
  if (form) section.append(form);
  renderValues(values, item.ica);
  return { section, form };
}

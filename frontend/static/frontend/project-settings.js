// Save the project's labelling settings (leads only) through PATCH /api/projects/<slug>/.
import { makeApi } from "./api.js";

const section = document.getElementById("labelling-settings");
const form = document.getElementById("settings-form");
const status = document.getElementById("settings-status");
const api = makeApi(document.querySelector("input[name=csrfmiddlewaretoken]").value);

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const settings = {
    show_predictions_to_annotators: form.elements.show_predictions_to_annotators.checked,
    lease_minutes: Number(form.elements.lease_minutes.value),
    training_workers: Number(form.elements.training_workers.value),
  };
  if (form.elements.ocr_burned_in_text) settings.ocr_burned_in_text = form.elements.ocr_burned_in_text.checked;
  if (form.elements.lesion_link_confidence) {
    settings.lesion_link_confidence = Number(form.elements.lesion_link_confidence.value);
  }
  status.textContent = "Saving…";
  try {
    await api.patch(section.dataset.projectUrl, { settings, instructions: form.elements.instructions.value });
    status.textContent = "Saved.";
  } catch (error) {
    status.textContent = `Not saved: ${error.message}`;
  }
});

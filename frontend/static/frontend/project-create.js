// Create a project from the home page (users allowed to): POST /api/projects/, then open the new project's page.
import { makeApi } from "./api.js";

const section = document.getElementById("new-project");
const form = document.getElementById("new-project-form");
const status = document.getElementById("new-project-status");
const api = makeApi(form.elements.csrfmiddlewaretoken.value);

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const body = {
    name: form.elements.name.value.trim(),
    slug: form.elements.slug.value.trim(),
    task_type: form.elements.task_type.value,
    instructions: form.elements.instructions.value,
  };
  status.textContent = "Creating…";
  try {
    const project = await api.post(section.dataset.projectsUrl, body);
    status.textContent = "Created.";
    window.location.assign(section.dataset.projectPage.replace("new-project-slug", encodeURIComponent(project.slug)));
  } catch (error) {
    status.textContent = `Not created: ${error.message}`;
  }
});

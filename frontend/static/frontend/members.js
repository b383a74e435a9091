// The project's members (leads only): list them, add one or change a role, remove one; the last lead stays.
import { makeApi } from "./api.js";
import { el } from "./lib/dom.js";

const section = document.getElementById("members");
const form = document.getElementById("member-form");
const status = document.getElementById("member-status");
const body = document.querySelector("#member-table tbody");
const api = makeApi(document.querySelector("input[name=csrfmiddlewaretoken]").value);
const listUrl = section.dataset.membersUrl;

function memberUrl(username) {
  return `${listUrl}${encodeURIComponent(username)}/`;
}

async function remove(username) {
  status.textContent = `Removing ${username}…`;
  try {
    await api.del(memberUrl(username));
    status.textContent = `${username} removed.`;
    await load();
  } catch (error) {
    status.textContent = `Not removed: ${error.message}`;
  }
}

function row(member) {
  const button = el("button", { type: "button", class: "secondary remove", text: "Remove" });
  button.addEventListener("click", () => remove(member.username));
  return el(
    "tr",
    { "data-username": member.username },
    el("td", { text: member.username }),
    el("td", { class: "role", text: member.role }),
    el("td", {}, button),
  );
}

async function load() {
  const members = [];
  for (let url = listUrl; url; ) {
    const page = await api.get(url);
    members.push(...page.results);
    url = page.next;
  }
  body.replaceChildren(...members.map(row));
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const username = form.elements.username.value.trim();
  status.textContent = "Saving…";
  try {
    await api.post(listUrl, { username, role: form.elements.role.value });
    status.textContent = `${username} is ${form.elements.role.value === "lead" ? "a lead" : "an annotator"}.`;
    form.reset();
    await load();
  } catch (error) {
    status.textContent = `Not saved: ${error.message}`;
  }
});

load().catch((error) => {
  status.textContent = `Members could not be loaded: ${error.message}`;
});

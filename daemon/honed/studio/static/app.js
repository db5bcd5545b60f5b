// The studio's shell: hash routes to pages, the API key dialog. Each page is a module with
// render(main, route) where route = {id, params, signal}; `signal` aborts when the page is left, which ends its
// streams, timers and charts.

import { apiKey } from "./api.js";
import { errorBox, fill, h } from "./dom.js";
import * as experiments from "./pages/experiments.js";
import * as job from "./pages/job.js";
import * as compare from "./pages/compare.js";
import * as datasets from "./pages/datasets.js";
import * as models from "./pages/models.js";

const PAGES = { experiments, jobs: job, compare, datasets, models };
const NAV_OF = { jobs: "experiments" };
let leave = null;

/** "#/jobs/ftjob-1?x=2" -> {page: "jobs", id: "ftjob-1", params: URLSearchParams("x=2")} */
function parse(hash) {
  const [path, query = ""] = hash.replace(/^#\/?/, "").split("?");
  const [page, ...rest] = path.split("/").map(decodeURIComponent);
  return { page: PAGES[page] ? page : "experiments", id: rest.join("/") || null, params: new URLSearchParams(query) };
}

async function show() {
  leave?.abort();
  leave = new AbortController();
  const route = { ...parse(location.hash), signal: leave.signal };
  const main = document.getElementById("main");
  for (const link of document.querySelectorAll("nav a")) {
    const current = link.dataset.page === (NAV_OF[route.page] || route.page);
    current ? link.setAttribute("aria-current", "page") : link.removeAttribute("aria-current");
  }
  fill(main, h("p", { class: "muted" }, "Loading…"));
  try {
    await PAGES[route.page].render(main, route);
  } catch (error) {
    if (error.name === "AbortError") return;
    const needsKey = error.status === 401;
    fill(main, h("h1", { tabindex: "-1" }, needsKey ? "This daemon needs an API key" : "Something went wrong"), errorBox(error),
      needsKey ? h("button", { type: "button", class: "primary", onClick: openSettings }, "Enter the API key") : null);
  }
  if (!route.signal.aborted) {
    const heading = main.querySelector("h1");
    document.title = heading ? `${heading.textContent} · honed studio` : "honed studio";
  }
}

function openSettings() {
  const dialog = document.getElementById("settings");
  dialog.returnValue = ""; // Escape closes without setting it: don't act on the previous close's value
  document.getElementById("settings-key").value = apiKey.get();
  dialog.showModal();
}

function settings() {
  const dialog = document.getElementById("settings");
  const input = document.getElementById("settings-key");
  document.getElementById("settings-open").addEventListener("click", openSettings);
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "save") apiKey.set(input.value.trim());
    if (dialog.returnValue === "clear") apiKey.set("");
    if (dialog.returnValue === "save" || dialog.returnValue === "clear") show();
  });
}

settings();
window.addEventListener("hashchange", () => {
  show();
  document.getElementById("main").focus({ preventScroll: true });
});
show();

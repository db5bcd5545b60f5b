// Experiments: every fine-tuning job with its status, base model, method, data, duration and score; filters;
// the new fine-tune form; pause/resume/cancel; runs picked here are compared on the Compare page.

import { get, listAll } from "../api.js";
import { duration, errorBox, field, fill, h, labelCells, statusBadge } from "../dom.js";
import { UNFINISHED, jobControls, jobTitle, method, scoreCell, shortModel } from "../jobs.js";
import { go, href } from "../nav.js";
import { newJobForm } from "./new_job.js";

const REFRESH_MS = 2000;

export async function render(main, { params, signal }) {
  const selected = new Set();
  let jobs = [];
  let fileNames = new Map();

  const formSlot = h("div", { id: "new-job" });
  const toggle = h("button", { type: "button", class: "primary", "aria-expanded": "false", "aria-controls": "new-job" },
    "New fine-tune");
  const status = h("select", { id: "filter-status" }, ["all", "running", "queued", "paused", "succeeded", "failed",
    "cancelled"].map((s) => h("option", { value: s }, s === "all" ? "All statuses" : s)));
  const methodFilter = h("select", { id: "filter-method" },
    h("option", { value: "all" }, "All methods"), h("option", { value: "LoRA" }, "LoRA"),
    h("option", { value: "QLoRA" }, "QLoRA"), h("option", { value: "Full" }, "Full"));
  const search = h("input", { type: "search", id: "filter-text", placeholder: "model, suffix, id, file" });
  const compare = h("button", { type: "button", disabled: true }, "Compare selected");
  const count = h("p", { class: "muted", "aria-live": "polite" });
  const rows = h("tbody");
  const problem = h("div");

  fill(main,
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Experiments"), toggle),
    formSlot,
    h("div", { class: "row filters", role: "search", "aria-label": "Filter jobs" },
      field("Status", status), field("Method", methodFilter), field("Search", search), compare),
    problem, count,
    h("div", { class: "table-wrap", id: "jobs-wrap" }, h("table", { id: "jobs", class: "cards" },
      h("thead", {}, h("tr", {}, ["Select", "Job", "Status", "Base model", "Method", "Dataset", "Duration", "Score", ""].map(
        (text, i) => h("th", { scope: "col" }, i === 0 ? h("span", { class: "sr-only" }, text) : text)))),
      rows)));

  async function openForm(file) {
    toggle.setAttribute("aria-expanded", "true");
    fill(formSlot, h("p", { class: "muted" }, "Loading the form…"));
    try {
      fill(formSlot, await newJobForm({ signal, file }));
      formSlot.querySelector("select, input")?.focus();
    } catch (error) {
      if (error.name !== "AbortError") fill(formSlot, errorBox(error));
    }
  }
  toggle.addEventListener("click", () => {
    if (toggle.getAttribute("aria-expanded") === "true") {
      toggle.setAttribute("aria-expanded", "false");
      fill(formSlot);
    } else {
      openForm(null);
    }
  });
  if (params.get("new")) openForm(params.get("file"));

  compare.addEventListener("click", () => go(href("compare", { jobs: [...selected].join(",") })));
  for (const control of [status, methodFilter, search]) control.addEventListener("input", draw);

  function visible(job) {
    const text = search.value.trim().toLowerCase();
    const haystack = [job.id, job.model, job.user_provided_suffix, job.fine_tuned_model, fileNames.get(job.training_file)]
      .join(" ").toLowerCase();
    return (status.value === "all" || job.status === status.value)
      && (methodFilter.value === "all" || method(job).startsWith(methodFilter.value))
      && (!text || haystack.includes(text));
  }

  function row(job) {
    const end = job.finished_at || (UNFINISHED.has(job.status) ? Date.now() / 1000 : null);
    const check = h("input", { type: "checkbox", checked: selected.has(job.id), "aria-label": `Select ${jobTitle(job)} to compare` });
    check.addEventListener("change", () => {
      check.checked ? selected.add(job.id) : selected.delete(job.id);
      compare.disabled = selected.size === 0;
      compare.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
    });
    return h("tr", { dataset: { job: job.id } },
      h("td", {}, check),
      h("td", {}, h("a", { href: href(`jobs/${encodeURIComponent(job.id)}`) }, jobTitle(job)),
        job.user_provided_suffix ? h("div", { class: "muted small" }, job.id) : null),
      h("td", {}, statusBadge(job.status), job.error ? h("div", { class: "small error-text" }, job.error.message) : null),
      h("td", { title: job.model }, shortModel(job.model)),
      h("td", { class: "nowrap" }, method(job)),
      h("td", { title: job.training_file }, fileNames.get(job.training_file) || job.training_file),
      h("td", { class: "num" }, end ? duration(end - job.created_at) : "—"),
      h("td", {}, scoreCell(job)),
      h("td", {}, jobControls(job, refresh)));
  }

  function draw() {
    const shown = jobs.filter(visible);
    fill(count, jobs.length ? `${shown.length} of ${jobs.length} jobs` : "No fine-tuning jobs yet: start one with “New fine-tune”.");
    const focused = document.activeElement?.closest?.("tr")?.dataset.job;
    fill(rows, shown.map(row));
    labelCells(rows.parentElement);
    main.querySelector("#jobs-wrap").hidden = !jobs.length;
    if (focused) rows.querySelector(`tr[data-job="${CSS.escape(focused)}"] input, tr[data-job="${CSS.escape(focused)}"] a`)?.focus();
  }

  async function refresh() {
    try {
      const [list, files] = await Promise.all([listAll("v1/fine_tuning/jobs", signal), get("v1/files", {}, signal)]);
      jobs = list;
      fileNames = new Map(files.data.map((f) => [f.id, f.filename]));
      fill(problem);
      draw();
    } catch (error) {
      if (error.name !== "AbortError") fill(problem, errorBox(error));
    }
  }

  await refresh();
  const timer = setInterval(() => {
    if (!document.hidden && !rows.contains(document.activeElement)) refresh();
  }, REFRESH_MS);
  signal.addEventListener("abort", () => clearInterval(timer));
}

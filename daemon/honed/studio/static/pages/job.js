// One job, live: curves (train/validation loss, learning rate, tokens/s) drawn from its event stream as steps
// land, sample answers, eval results before/during/after, warnings, checkpoints (compare, deploy), the report.

import { apiKey, followJob, get, openFile } from "../api.js";
import { LineChart } from "../chart.js";
import { bytes, code, duration, errorBox, fill, h, number, showError, signed, statusBadge, table, when } from "../dom.js";
import { UNFINISHED, changeClass, jobControls, jobTitle, method, shortModel } from "../jobs.js";
import { href } from "../nav.js";

const MAX_SAMPLES = 12;
const MAX_LOG = 300;

export async function render(main, { id, signal }) {
  const base = `v1/fine_tuning/jobs/${encodeURIComponent(id)}`;
  let job = await get(base, {}, signal);
  const files = new Map((await get("v1/files", {}, signal)).data.map((f) => [f.id, f]));

  const heading = h("h1", { tabindex: "-1" });
  const statusSlot = h("span", { "aria-live": "polite" });
  const controls = h("span");
  const links = h("div", { class: "row" });
  const facts = h("dl", { class: "facts" });
  const progressBar = h("progress", { max: "1", value: "0", "aria-label": "Training progress" });
  const progressText = h("p", { class: "muted", id: "progress-text" }, "Waiting for the first step…");
  const warnings = h("section", { class: "warnings", hidden: true, "aria-label": "Warnings" });
  const samples = h("ol", { class: "samples", reversed: true });
  const evaluation = h("div", {}, h("p", { class: "muted" }, "No evaluation yet. Give the job an eval suite to measure the base and the tuned model."));
  const checkpoints = h("div", {}, h("p", { class: "muted" }, "No checkpoint yet."));
  const log = h("ol", { class: "log" });
  const loss = new LineChart("Loss", [{ label: "train loss" }, { label: "validation loss", points: true }], { id: "loss", signal });
  const learningRate = new LineChart("Learning rate", [{ label: "learning rate" }], { id: "lr", signal,
    yFormat: (v) => (v === 0 ? "0" : v.toExponential(2)) });
  const speed = new LineChart("Tokens per second", [{ label: "tokens/s" }], { id: "tokens", signal, yFormat: (v) => number(v, 0) });

  fill(main,
    h("p", { class: "crumbs" }, h("a", { href: "#/experiments" }, "Experiments"), " / ", id),
    h("div", { class: "page-head" }, heading, statusSlot, controls),
    links, facts,
    h("section", { "aria-labelledby": "progress-title" }, h("h2", { id: "progress-title", class: "sr-only" }, "Progress"),
      progressBar, progressText),
    warnings,
    h("section", { class: "charts", "aria-label": "Training curves" }, loss.element, learningRate.element, speed.element),
    h("div", { class: "columns" },
      h("section", { "aria-labelledby": "samples-title" }, h("h2", { id: "samples-title" }, "Sample answers"),
        h("p", { class: "muted small" }, "The model's answer to one fixed prompt at each validation point."), samples),
      h("section", { "aria-labelledby": "eval-title" }, h("h2", { id: "eval-title" }, "Evaluation"), evaluation)),
    h("section", { "aria-labelledby": "ckpt-title" }, h("h2", { id: "ckpt-title" }, "Checkpoints"), checkpoints),
    h("details", { class: "card" }, h("summary", {}, "Event log"), log));

  function showJob() {
    heading.textContent = jobTitle(job);
    fill(statusSlot, statusBadge(job.status));
    fill(controls, jobControls(job, (updated) => { job = updated; showJob(); }));
    const end = job.finished_at || (UNFINISHED.has(job.status) ? Date.now() / 1000 : null);
    const training = files.get(job.training_file);
    const hyper = job.hyperparameters;
    fill(facts,
      fact("Base model", h("span", { title: job.model }, shortModel(job.model))),
      fact("Method", method(job)),
      fact("Training data", training ? `${training.filename} (${training.examples ?? "?"} examples)` : job.training_file),
      job.validation_file ? fact("Validation data", files.get(job.validation_file)?.filename || job.validation_file) : null,
      fact("Hyperparameters", `${hyper.n_epochs} epochs · batch ${hyper.batch_size} · lr ${job.honed?.learning_rate}`),
      fact("Created", when(job.created_at)),
      fact("Duration", end ? duration(end - job.created_at) : "—"),
      job.trained_tokens ? fact("Trained tokens", number(job.trained_tokens)) : null,
      job.fine_tuned_model ? fact("Fine-tuned model", code(job.fine_tuned_model)) : null,
      job.error ? fact("Error", h("span", { class: "error-text" }, job.error.message)) : null);
    fill(links,
      reportLink(`v1/reports/${encodeURIComponent(job.id)}.html`, "Report (HTML)"),
      reportLink(`v1/reports/${encodeURIComponent(job.id)}.pdf`, "Report (PDF)"),
      job.fine_tuned_model
        ? h("a", { class: "button", href: href("compare", { jobs: job.id, a: job.model, b: job.fine_tuned_model }) },
          "Compare with the base model")
        : null,
      job.fine_tuned_model
        ? h("a", { class: "button", href: href("models", { deploy: job.fine_tuned_model }) }, "Deploy")
        : null);
    if (lastMetrics) progress(lastMetrics);
  }

  async function refreshJob() {
    job = await get(base, {}, signal);
    showJob();
  }

  let lastMetrics = null;
  function progress(data) {
    lastMetrics = data;
    progressBar.max = data.total_steps || 1;
    progressBar.value = data.step;
    const parts = [`Step ${data.step} of ${data.total_steps}`, `epoch ${number(data.epoch, 2)}`,
      `${number(data.tokens_per_second, 0)} tokens/s`];
    if (job.status === "running" && data.eta_s !== undefined) parts.push(`about ${duration(data.eta_s)} left`);
    if (data.memory_rss) parts.push(`${bytes(data.memory_rss)} resident`);
    progressText.textContent = parts.join(" · ");
  }

  function addSample(data) {
    samples.prepend(h("li", {},
      h("p", { class: "muted small" }, `Step ${data.step} · prompt: `, h("q", {}, data.prompt || "")),
      h("p", { class: "answer" }, data.output || h("em", { class: "muted" }, "(empty answer)"))));
    while (samples.children.length > MAX_SAMPLES) samples.lastElementChild.remove();
  }

  function addWarning(event) {
    const regression = event.data?.kind === "regression";
    warnings.hidden = false;
    warnings.append(h("p", { class: regression ? "error" : "warning", role: regression ? "alert" : null },
      h("strong", {}, regression ? "Regression: " : "Warning: "), event.message));
  }

  const comparisons = new Map();
  let evalTimer = null;
  function scheduleEval() {
    clearTimeout(evalTimer);
    evalTimer = setTimeout(() => showEvaluation().catch(showProblem), 300);
  }
  async function showEvaluation() {
    const rows = (await get(`${base}/eval_results`, {}, signal)).data;
    const suites = new Map();
    for (const r of rows) {
      const suite = r.phase === "validation" ? "validation" : r.suite;
      const metrics = suites.get(suite) || new Map();
      suites.set(suite, metrics);
      const entry = metrics.get(r.metric) || {};
      metrics.set(r.metric, { ...entry, [r.phase]: r });
    }
    const validation = suites.get("validation") || new Map();
    suites.delete("validation");
    const tables = [...suites].map(([suite, metrics]) => table(`Suite “${suite}”`,
      ["Metric", "Baseline", "During training", "Final", "Gain (95% CI)"],
      [...metrics].map(([metric, phases]) => {
        const during = validation.get(metric)?.validation;
        const comparison = comparisons.get(suite)?.[metric];
        return h("tr", {}, h("th", { scope: "row" }, metric), valueCell(phases.baseline),
          h("td", { class: "num" }, during ? `${number(during.value, 3)} (step ${during.step})` : "—"),
          valueCell(phases.final), gainCell(metric, comparison));
      })));
    const losses = ["valid_loss", "valid_mean_token_accuracy"].filter((m) => validation.has(m));
    if (losses.length) {
      tables.push(table("Validation (latest)", ["Metric", "Value", "Step"], losses.map((m) => {
        const r = validation.get(m).validation;
        return h("tr", {}, h("th", { scope: "row" }, m), h("td", { class: "num" }, number(r.value, 4)), h("td", { class: "num" }, r.step));
      })));
    }
    if (tables.length) fill(evaluation, tables);
  }

  let checkpointTimer = null;
  function scheduleCheckpoints() {
    clearTimeout(checkpointTimer);
    checkpointTimer = setTimeout(() => showCheckpoints().catch(showProblem), 200);
  }
  async function showCheckpoints() {
    const list = (await get(`${base}/checkpoints`, { limit: 100 }, signal)).data;
    if (!list.length) return;
    fill(checkpoints, table(null, ["Step", "Train loss", "Validation loss", "Model name", ""], list.map((c) =>
      h("tr", {}, h("td", { class: "num" }, c.step_number), h("td", { class: "num" }, number(c.metrics.train_loss, 4)),
        h("td", { class: "num" }, number(c.metrics.valid_loss, 4)), h("td", {}, code(c.fine_tuned_model_checkpoint)),
        h("td", {}, h("span", { class: "row tight" },
          h("a", { class: "button small", href: href("compare", { jobs: job.id, a: job.model, b: c.fine_tuned_model_checkpoint }),
            "aria-label": `Compare the checkpoint at step ${c.step_number} with the base model` }, "Compare"),
          h("a", { class: "button small", href: href("models", { deploy: c.fine_tuned_model_checkpoint }),
            "aria-label": `Deploy the checkpoint at step ${c.step_number}` }, "Deploy this one")))))));
  }

  function addLog(event) {
    const time = new Date((event.timestamp || event.created_at) * 1000).toLocaleTimeString();
    log.prepend(h("li", { class: `level-${event.level}` }, h("time", {}, time), " ", h("span", { class: "kind" }, event.kind), " ", event.message));
    while (log.children.length > MAX_LOG) log.lastElementChild.remove();
  }

  function onEvent(event) {
    const data = event.data || {};
    if (event.kind === "metrics") {
      loss.add(0, data.step, data.train_loss);
      learningRate.add(0, data.step, data.learning_rate);
      speed.add(0, data.step, data.tokens_per_second);
      progress(data);
      return; // one per step: too many for the log
    }
    if (event.kind === "eval" && data.phase === "validation") loss.add(1, data.step, data.valid_loss);
    if (event.kind === "eval" && data.phase === "comparison") comparisons.set(data.suite, data.comparison);
    if (event.kind === "eval") scheduleEval();
    if (event.kind === "sample") addSample(data);
    if (event.kind === "checkpoint") scheduleCheckpoints();
    if (event.kind === "warning") addWarning(event);
    if (event.kind === "status") {
      job = { ...job, status: data.status ?? job.status };
      showJob();
      refreshJob().catch(showProblem);
    }
    addLog(event);
  }

  const problem = h("div");
  main.insertBefore(problem, links);
  function showProblem(error) {
    if (error.name !== "AbortError") fill(problem, errorBox(error));
  }

  showJob();
  scheduleCheckpoints();
  scheduleEval();
  const ticker = setInterval(() => { if (UNFINISHED.has(job.status)) showJob(); }, 5000);
  signal.addEventListener("abort", () => { clearInterval(ticker); clearTimeout(evalTimer); clearTimeout(checkpointTimer); });
  followJob(id, onEvent, signal)
    .then(() => Promise.all([refreshJob(), showCheckpoints(), showEvaluation()]))
    .catch(showProblem);
}

function fact(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}

function valueCell(row) {
  if (!row) return h("td", { class: "num" }, "—");
  const ci = row.low !== null && row.low !== undefined ? ` [${number(row.low, 2)}, ${number(row.high, 2)}]` : "";
  return h("td", { class: "num" }, number(row.value, 3), h("span", { class: "muted small" }, ci));
}

function gainCell(metric, comparison) {
  if (!comparison) return h("td", { class: "num" }, "—");
  const kind = changeClass(metric, comparison.difference);
  const ci = comparison.low !== null ? ` [${signed(comparison.low, 2)}, ${signed(comparison.high, 2)}]` : "";
  return h("td", { class: "num" }, h("span", { class: `delta ${kind}` }, signed(comparison.difference, 3)),
    h("span", { class: "muted small" }, ci), comparison.significant === false ? h("span", { class: "muted small" }, " not significant") : null);
}

/** A link to the report; with an API key set, the file is fetched with it (a plain link cannot send it). */
function reportLink(path, label) {
  const link = h("a", { class: "button", href: path, target: "_blank", rel: "noopener" }, label);
  link.addEventListener("click", (event) => {
    if (!apiKey.get()) return;
    event.preventDefault();
    openFile(path).catch(showError);
  });
  return link;
}

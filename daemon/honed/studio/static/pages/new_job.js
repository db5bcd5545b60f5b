// The "new fine-tune" form: POST /v1/fine_tuning/jobs, and POST /v1/estimate for the time and memory the job
// would take here before it starts. Empty fields are left out of the request, so the daemon chooses them for
// this machine (the estimate shows each choice and why); the placeholders say what they default to.
// Picking a recipe (POST /v1/recipes/{name}/prepare) stores its data and fills the form with its settings; the
// recipe's other options and its eval suite ride along unless the form changes them.

import { get, post, upload } from "../api.js";
import { bytes, duration, errorBox, field, fill, h, table } from "../dom.js";
import { go } from "../nav.js";

// honed's defaults, for display only (hone.types.HonedOptions and honed.jobs.spec are the truth).
const DEFAULTS = { n_epochs: 3, lora_rank: 16, max_seq_len: "auto (the longest example)", checkpoint_interval: 50, lora_dropout: 0.05,
  warmup_ratio: 0.05, learning_rate: { lora: "2e-4", full: "2e-5" } };
export const MODEL_STORAGE = "honed.baseModel";

const input = (name, props = {}) => h("input", { name, id: `new-${name}`, ...props });
const numberInput = (name, placeholder, props = {}) =>
  input(name, { type: "number", min: "0", step: "any", inputmode: "decimal", placeholder, ...props });

/** A datalist of the base models honed has ready (ids that are not ft:...). */
export async function baseModelList(id, signal) {
  const models = (await get("v1/models", {}, signal)).data.filter((m) => !m.id.startsWith("ft:"));
  return { list: h("datalist", { id }, models.map((m) => h("option", { value: m.id }))), models };
}

export async function newJobForm({ signal, file }) {
  const [files, { list, models }, recipes] = await Promise.all([
    get("v1/files", { purpose: "fine-tune" }, signal), baseModelList("new-models", signal),
    get("v1/recipes", {}, signal).catch(() => ({ data: [] }))]);
  const fileOptions = (none, chosen) => [h("option", { value: "" }, none),
    files.data.map((f) => h("option", { value: f.id, selected: f.id === chosen, title: f.id },
      `${f.filename} · ${f.examples ?? "?"} examples`))];

  const training = h("select", { name: "training_file", id: "new-training_file" }, fileOptions("— choose an uploaded file —", file));
  const trainingUpload = input("training_upload", { type: "file", accept: ".jsonl,.json,.csv,.tsv,.txt,.md" });
  const validation = h("select", { name: "validation_file", id: "new-validation_file" }, fileOptions("none", null));
  const model = input("model", { required: true, list: "new-models", autocomplete: "off", spellcheck: "false",
    value: localStorage.getItem(MODEL_STORAGE) || models[0]?.id || "" });
  const auto = input("adapter", { type: "radio", value: "", checked: true, id: "new-adapter-auto" });
  const lora = input("adapter", { type: "radio", value: "lora", id: "new-adapter-lora" });
  const qlora = input("adapter", { type: "radio", value: "qlora", id: "new-adapter-qlora" });
  const full = input("adapter", { type: "radio", value: "full", id: "new-adapter-full" });
  const rank = numberInput("lora_rank", `${DEFAULTS.lora_rank}`, { step: "1", min: "1", inputmode: "numeric" });
  const learningRate = numberInput("learning_rate", `${DEFAULTS.learning_rate.lora} (LoRA)`);
  const syncMethod = () => {
    rank.disabled = full.checked;
    learningRate.placeholder = full.checked ? `${DEFAULTS.learning_rate.full} (full)` : `${DEFAULTS.learning_rate.lora} (LoRA)`;
  };
  for (const radio of [auto, lora, qlora, full]) radio.addEventListener("change", syncMethod);
  const suite = h("textarea", { name: "eval", id: "new-eval", rows: "4", spellcheck: "false",
    placeholder: '{"name": "support", "metrics": ["contains_all"], "cases": [{"prompt": "…", "keywords": ["…"]}]}' });
  const recipe = h("select", { name: "recipe", id: "new-recipe" }, h("option", { value: "" }, "— none: my own data —"),
    recipes.data.map((r) => h("option", { value: r.name, title: r.description },
      `${r.name} · ${r.train_examples} examples, ${r.test_cases} test cases`)));
  const subset = numberInput("subset", "all", { step: "1", min: "2", inputmode: "numeric", id: "new-subset" });
  const recipeNote = h("p", { class: "muted", "aria-live": "polite", id: "new-recipe-note" });
  const recipeJob = { current: null };  // the prepared job body: what the form has no field for comes from here
  const message = h("div", { "aria-live": "polite" });
  const estimateBox = h("div", { "aria-live": "polite", class: "estimate" });
  const submit = h("button", { class: "primary" }, "Start fine-tune");
  const estimateButton = h("button", { type: "button" }, "Estimate time and memory");
  const machine = h("p", { class: "muted", id: "new-machine" });
  get("v1/hardware", {}, signal).then((hw) => fill(machine, describeMachine(hw))).catch(() => {});

  const form = h("form", { class: "stack card", "aria-labelledby": "new-job-title", novalidate: true },
    h("h2", { id: "new-job-title" }, "New fine-tune"),
    h("p", { class: "muted" }, "Empty fields are chosen by honed for this machine; defaults are shown in grey."),
    machine,
    h("div", { class: "grid" },
      field("Start from a recipe", recipe, "Ready-made data, settings and eval suite (recipes/)"),
      field("Recipe subset", subset, "First N training examples, N/2 test cases: a quick try"),
      h("div", { class: "span2" }, recipeNote)),
    h("div", { class: "grid" },
      field("Training data", training, "A file uploaded on the Datasets page…"),
      field("…or upload one now", trainingUpload),
      field("Validation data (optional)", validation),
      h("div", { class: "span2" }, field("Base model", model, "A bundled id or a local model directory")),
      h("fieldset", { class: "field span2" }, h("legend", {}, "Method"),
        h("label", { class: "inline" }, auto, " Chosen for this machine"),
        h("label", { class: "inline" }, lora, " LoRA adapter"),
        h("label", { class: "inline" }, qlora, " QLoRA (4-bit base, MLX engine)"),
        h("label", { class: "inline" }, full, " Full fine-tune"))),
    h("div", { class: "grid" },
      field("Epochs", numberInput("n_epochs", `auto (${DEFAULTS.n_epochs})`, { step: "1", min: "1", inputmode: "numeric" })),
      field("Batch size", numberInput("batch_size", "auto (≤ 8)", { step: "1", min: "1", inputmode: "numeric" })),
      field("Learning-rate multiplier", numberInput("learning_rate_multiplier", "auto (1)")),
      field("Learning rate", learningRate, "Absolute; overrides the multiplier"),
      field("LoRA rank", rank),
      field("Suffix", input("suffix", { placeholder: "my-model", pattern: "[A-Za-z0-9_-]{1,40}", maxlength: "40" }),
        "Part of the model's name")),
    h("details", {},
      h("summary", {}, "More options"),
      h("div", { class: "grid" },
        field("Max steps", numberInput("max_steps", "all epochs", { step: "1", min: "1", inputmode: "numeric" })),
        field("Max sequence length", numberInput("max_seq_len", `${DEFAULTS.max_seq_len}`, { step: "1", min: "16", inputmode: "numeric" })),
        field("Checkpoint every (steps)", numberInput("checkpoint_interval", `${DEFAULTS.checkpoint_interval}`, { step: "1", min: "1", inputmode: "numeric" })),
        field("Validate every (steps)", numberInput("eval_interval", "at checkpoints", { step: "1", min: "1", inputmode: "numeric" })),
        field("LoRA dropout", numberInput("lora_dropout", `${DEFAULTS.lora_dropout}`)),
        field("Warm-up ratio", numberInput("warmup_ratio", `${DEFAULTS.warmup_ratio}`)),
        h("label", { class: "inline" }, input("packing", { type: "checkbox" }), " Pack short examples together")),
      field("Eval suite (JSON, optional)", suite, "Measured on the base model before training and on the tuned model after")),
    estimateBox,
    message,
    h("div", { class: "row" }, estimateButton, submit));
  syncMethod();

  let prepared = { key: "", seq: 0 };  // the last recipe and subset asked for; only its answer fills the form
  async function pickRecipe() {
    const key = `${recipe.value}|${subset.value}`;
    if (key === prepared.key) return;
    const seq = prepared.seq + 1;
    prepared = { key, seq };
    recipeJob.current = null;
    if (!recipe.value) {
      fill(recipeNote);
      return;
    }
    fill(recipeNote, "Preparing the recipe's data…");
    try {
      const body = subset.value ? { subset: Number(subset.value) } : {};
      const answer = await post(`v1/recipes/${encodeURIComponent(recipe.value)}/prepare`, body, signal);
      if (seq !== prepared.seq) return;  // a later choice is on its way
      recipeJob.current = answer.job;
      fillFromRecipe(form, answer, { training, validation, suite });
      syncMethod();
      const cases = answer.job.honed.eval?.cases?.length ?? 0;
      fill(recipeNote, `${answer.recipe.description} Primary metric: ${answer.recipe.primary_metric}; ` +
        `${answer.training_file.examples} training examples, ${cases} test cases (the recipe's eval suite, ` +
        "unless you give one below).");
    } catch (error) {
      if (error.name !== "AbortError" && seq === prepared.seq) fill(recipeNote, errorBox(error));
    }
  }
  recipe.addEventListener("change", pickRecipe);
  subset.addEventListener("change", () => { if (recipe.value) pickRecipe(); });

  estimateButton.addEventListener("click", async () => {
    estimateButton.disabled = true;
    fill(estimateBox, h("p", { class: "muted" }, "Estimating… the first job of a kind measures a few real steps."));
    try {
      const body = await request(form, training, trainingUpload, recipeJob.current, signal);
      fill(estimateBox, estimateCard(await post("v1/estimate", body, signal)));
    } catch (error) {
      if (error.name !== "AbortError") fill(estimateBox, errorBox(error));
    } finally {
      estimateButton.disabled = false;
    }
  });

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    fill(message, h("p", { class: "muted" }, "Starting…"));
    try {
      const body = await request(form, training, trainingUpload, recipeJob.current, signal);
      const job = await post("v1/fine_tuning/jobs", body, signal);
      localStorage.setItem(MODEL_STORAGE, body.model);
      go(`#/jobs/${encodeURIComponent(job.id)}`);
    } catch (error) {
      if (error.name !== "AbortError") fill(message, errorBox(error));
    } finally {
      submit.disabled = false;
    }
  });
  return h("div", {}, list, form);
}

/** A prepared recipe's file choices and settings, written into the form's fields. */
function fillFromRecipe(form, prepared, { training, validation, suite }) {
  const choose = (select, file) => {
    if (!file) { select.value = ""; return; }
    if (![...select.options].some((o) => o.value === file.id)) {
      select.append(h("option", { value: file.id, title: file.id }, `${file.filename} · ${file.examples ?? "?"} examples`));
    }
    select.value = file.id;
  };
  choose(training, prepared.training_file);
  choose(validation, prepared.validation_file);
  const { job } = prepared;
  const set = (name, value) => { const control = form.elements.namedItem(name); if (control) control.value = value ?? ""; };
  set("model", job.model);
  set("suffix", job.suffix);
  for (const radio of form.querySelectorAll('input[name="adapter"]')) radio.checked = radio.value === (job.honed.adapter ?? "");
  for (const name of ["n_epochs", "batch_size", "learning_rate_multiplier"]) set(name, job.hyperparameters?.[name]);
  for (const name of ["learning_rate", "lora_rank", "max_steps", "max_seq_len", "checkpoint_interval", "eval_interval",
    "lora_dropout", "warmup_ratio"]) set(name, job.honed[name]);
  form.elements.namedItem("packing").checked = Boolean(job.honed.packing);
  suite.value = "";
}

/** The create request from the form; uploads the chosen file first when there is one. A prepared recipe's job
 * supplies what the form has no field for (its seed, its other options, its eval suite). */
async function request(form, training, trainingUpload, recipeJob, signal) {
  const values = new FormData(form);
  const text = (name) => String(values.get(name) ?? "").trim();
  const numeric = (name) => (text(name) === "" ? undefined : Number(text(name)));
  let trainingFile = training.value;
  if (trainingUpload.files.length) {
    const data = new FormData();
    data.append("file", trainingUpload.files[0]);
    data.append("purpose", "fine-tune");
    const uploaded = await upload("v1/files", data, signal);
    trainingFile = uploaded.id;
    // chosen from now on: estimating and then starting must not upload the file twice
    training.append(h("option", { value: uploaded.id, title: uploaded.id }, `${uploaded.filename} · ${uploaded.examples ?? "?"} examples`));
    training.value = uploaded.id;
    trainingUpload.value = "";
  }
  if (!trainingFile) throw new Error("Choose the training data: an uploaded file, or a file to upload.");
  if (!text("model")) throw new Error("Name the base model to fine-tune.");
  const adapter = text("adapter");  // "": honed chooses
  const { adapter: _, ...fromRecipe } = recipeJob?.honed ?? {};
  for (const name of ["learning_rate", "lora_rank", "max_steps", "max_seq_len", "checkpoint_interval", "eval_interval",
    "lora_dropout", "warmup_ratio", "packing"]) delete fromRecipe[name];  // the form's fields say these
  const honed = adapter ? { ...fromRecipe, adapter } : fromRecipe;
  for (const name of ["learning_rate", "max_steps", "max_seq_len", "checkpoint_interval", "eval_interval",
    "lora_dropout", "warmup_ratio"]) {
    if (numeric(name) !== undefined) honed[name] = numeric(name);
  }
  if (adapter !== "full" && numeric("lora_rank") !== undefined) honed.lora_rank = numeric("lora_rank");
  if (values.get("packing")) honed.packing = true;
  if (text("eval")) {
    try {
      honed.eval = JSON.parse(text("eval"));
    } catch (error) {
      throw new Error(`The eval suite is not valid JSON: ${error.message}`);
    }
  }
  const hyperparameters = {};
  for (const name of ["n_epochs", "batch_size", "learning_rate_multiplier"]) {
    if (numeric(name) !== undefined) hyperparameters[name] = numeric(name);
  }
  return { model: text("model"), training_file: trainingFile, validation_file: text("validation_file") || undefined,
    suffix: text("suffix") || undefined, seed: recipeJob?.seed, hyperparameters, honed };
}

function describeMachine(hw) {
  const memory = hw.unified_memory ? `${bytes(hw.memory_bytes)} unified` : `${bytes(hw.memory_bytes)} RAM`;
  const gpu = hw.accelerator_memory_bytes ? `, ${bytes(hw.accelerator_memory_bytes)} GPU` : "";
  return `This machine: ${hw.device} (${hw.device_name}), ${hw.cpu_cores} cores, ${memory}${gpu}` +
    `${hw.bf16 ? ", bf16" : ""}; engine ${hw.default_engine}.`;
}

function estimateCard(found) {
  return h("section", { class: "card stack", "aria-label": "Estimate" },
    h("h3", {}, `About ${duration(found.total_seconds)} and ${bytes(found.peak_memory_bytes)} peak memory`),
    h("p", { class: "muted" },
      `${found.steps} steps (${found.trained_tokens.toLocaleString()} tokens) on ${found.device} with ${found.engine}: ` +
      `training ${duration(found.train_seconds)}, evaluation ${duration(found.eval_seconds)}.`),
    found.choices.length ? table("Chosen for this machine", ["setting", "value", "why"], found.choices.map((c) =>
      h("tr", {}, h("td", {}, c.field), h("td", {}, String(c.value)), h("td", {}, c.reason)))) : null,
    found.warnings.map((w) => h("p", { class: "muted" }, w)));
}

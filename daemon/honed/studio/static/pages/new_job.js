// The "new fine-tune" form: POST /v1/fine_tuning/jobs. Empty fields are left out of the request, so the
// daemon's own defaults apply; the placeholders show what those are.

import { get, post, upload } from "../api.js";
import { errorBox, field, fill, h } from "../dom.js";
import { go } from "../nav.js";

// honed's defaults, for display only (hone.types.HonedOptions and honed.jobs.spec are the truth).
const DEFAULTS = { n_epochs: 3, lora_rank: 16, max_seq_len: 512, checkpoint_interval: 50, lora_dropout: 0.05,
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
  const [files, { list, models }] = await Promise.all([
    get("v1/files", { purpose: "fine-tune" }, signal), baseModelList("new-models", signal)]);
  const fileOptions = (none, chosen) => [h("option", { value: "" }, none),
    files.data.map((f) => h("option", { value: f.id, selected: f.id === chosen, title: f.id },
      `${f.filename} · ${f.examples ?? "?"} examples`))];

  const training = h("select", { name: "training_file", id: "new-training_file" }, fileOptions("— choose an uploaded file —", file));
  const trainingUpload = input("training_upload", { type: "file", accept: ".jsonl,.json,.csv,.tsv,.txt,.md" });
  const validation = h("select", { name: "validation_file", id: "new-validation_file" }, fileOptions("none", null));
  const model = input("model", { required: true, list: "new-models", autocomplete: "off", spellcheck: "false",
    value: localStorage.getItem(MODEL_STORAGE) || models[0]?.id || "" });
  const lora = input("adapter", { type: "radio", value: "lora", checked: true });
  const full = input("adapter", { type: "radio", value: "full", id: "new-adapter-full" });
  const rank = numberInput("lora_rank", `${DEFAULTS.lora_rank}`, { step: "1", min: "1", inputmode: "numeric" });
  const learningRate = numberInput("learning_rate", `${DEFAULTS.learning_rate.lora} (LoRA)`);
  const syncMethod = () => {
    rank.disabled = full.checked;
    learningRate.placeholder = full.checked ? `${DEFAULTS.learning_rate.full} (full)` : `${DEFAULTS.learning_rate.lora} (LoRA)`;
  };
  lora.addEventListener("change", syncMethod);
  full.addEventListener("change", syncMethod);
  const suite = h("textarea", { name: "eval", id: "new-eval", rows: "4", spellcheck: "false",
    placeholder: '{"name": "support", "metrics": ["contains_all"], "cases": [{"prompt": "…", "keywords": ["…"]}]}' });
  const message = h("div", { "aria-live": "polite" });
  const submit = h("button", { class: "primary" }, "Start fine-tune");

  const form = h("form", { class: "stack card", "aria-labelledby": "new-job-title", novalidate: true },
    h("h2", { id: "new-job-title" }, "New fine-tune"),
    h("p", { class: "muted" }, "Empty fields use honed's defaults, shown in grey."),
    h("div", { class: "grid" },
      field("Training data", training, "A file uploaded on the Datasets page…"),
      field("…or upload one now", trainingUpload),
      field("Validation data (optional)", validation),
      h("div", { class: "span2" }, field("Base model", model, "A bundled id or a local model directory")),
      h("fieldset", { class: "field" }, h("legend", {}, "Method"),
        h("label", { class: "inline" }, lora, " LoRA adapter"),
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
    message,
    h("div", { class: "row" }, submit));
  syncMethod();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    submit.disabled = true;
    fill(message, h("p", { class: "muted" }, "Starting…"));
    try {
      const body = await request(form, training, trainingUpload, signal);
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

/** The create request from the form; uploads the chosen file first when there is one. */
async function request(form, training, trainingUpload, signal) {
  const values = new FormData(form);
  const text = (name) => String(values.get(name) ?? "").trim();
  const numeric = (name) => (text(name) === "" ? undefined : Number(text(name)));
  let trainingFile = training.value;
  if (trainingUpload.files.length) {
    const data = new FormData();
    data.append("file", trainingUpload.files[0]);
    data.append("purpose", "fine-tune");
    trainingFile = (await upload("v1/files", data, signal)).id;
  }
  if (!trainingFile) throw new Error("Choose the training data: an uploaded file, or a file to upload.");
  if (!text("model")) throw new Error("Name the base model to fine-tune.");
  const adapter = text("adapter") || "lora";
  const honed = { adapter };
  for (const name of ["learning_rate", "max_steps", "max_seq_len", "checkpoint_interval", "eval_interval",
    "lora_dropout", "warmup_ratio"]) {
    if (numeric(name) !== undefined) honed[name] = numeric(name);
  }
  if (adapter === "lora" && numeric("lora_rank") !== undefined) honed.lora_rank = numeric("lora_rank");
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
    suffix: text("suffix") || undefined, hyperparameters, honed };
}

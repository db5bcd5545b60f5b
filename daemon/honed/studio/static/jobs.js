// What several pages say about a fine-tuning job: its method, its score, its controls.

import { post } from "./api.js";
import { actionButton, h, number, signed } from "./dom.js";

export const UNFINISHED = new Set(["validating_files", "queued", "running", "paused"]);

// Metrics that improve by falling (honed.evaluation.suite.higher_is_better); every other score rises.
const LOWER_IS_BETTER = new Set(["perplexity", "valid_loss", "train_loss"]);

/** "gain", "loss" or "" — the CSS class of a change in `metric` by `difference`. */
export function changeClass(metric, difference) {
  if (!difference) return "";
  return (difference > 0) !== LOWER_IS_BETTER.has(metric) ? "gain" : "loss";
}

export function method(job) {
  const options = job.honed || {};
  if (options.adapter === "full") return "Full";
  if (!options.adapter) return "auto";  // chosen by honed when the job starts
  return `${options.adapter === "qlora" ? "QLoRA" : "LoRA"} r${options.lora_rank ?? 16}`;
}

/** The last path component of a local model directory; other names as they are. */
export function shortModel(name) {
  return name && name.startsWith("/") ? name.split("/").filter(Boolean).pop() : name;
}

export function jobTitle(job) {
  return job.user_provided_suffix || job.id;
}

/** The eval suite's headline: the first metric before -> after (gain), as the job's result records it. */
export function scoreOf(job) {
  const evaluation = job.honed?.result?.eval;
  const [name, comparison] = Object.entries(evaluation?.comparison || {})[0] || [];
  if (!comparison) return null;
  return { name, before: comparison.before, after: comparison.after, gain: comparison.difference,
    significant: comparison.significant };
}

export function scoreCell(job) {
  const score = scoreOf(job);
  const loss = job.honed?.result?.final_loss;
  if (!score) return loss === undefined || loss === null ? "—" : h("span", { class: "muted" }, `final loss ${number(loss, 3)}`);
  return h("span", {}, `${score.name} ${number(score.before, 2)} → ${number(score.after, 2)} `,
    h("span", { class: `delta ${changeClass(score.name, score.gain)}` }, `(${signed(score.gain, 2)})`));
}

/** Pause / Resume / Cancel for the states that allow them; `changed(job)` gets the updated job. */
export function jobControls(job, changed) {
  const act = (verb) => async () => {
    if (verb === "cancel" && !confirm(`Cancel ${jobTitle(job)}? Its last checkpoint is kept.`)) return;
    changed(await post(`v1/fine_tuning/jobs/${job.id}/${verb}`));
  };
  const label = (verb) => `${verb} job ${jobTitle(job)}`;
  return h("span", { class: "row tight" },
    ["queued", "running"].includes(job.status)
      ? actionButton("Pause", act("pause"), { class: "small", "aria-label": label("Pause") }) : null,
    job.status === "paused" ? actionButton("Resume", act("resume"), { class: "small", "aria-label": label("Resume") }) : null,
    UNFINISHED.has(job.status)
      ? actionButton("Cancel", act("cancel"), { class: "small danger", "aria-label": label("Cancel") }) : null);
}

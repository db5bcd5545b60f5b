// Datasets: upload, list, and one file's explorer — the quality report (POST /v1/datasets/analyze) with its
// token-length histogram, and its examples as honed reads them, paged and searchable (GET .../preview).

import { get, post, upload } from "../api.js";
import { bytes, errorBox, field, fill, h, number, table, when } from "../dom.js";
import { go, href } from "../nav.js";
import { MODEL_STORAGE, baseModelList } from "./new_job.js";

const PAGE = 20;
const FORMATS = ["auto", "chat", "prompt_completion", "alpaca", "sharegpt", "csv", "tsv", "text", "markdown", "chatml",
  "transcript"];

export async function render(main, route) {
  return route.id ? explore(main, route) : overview(main, route);
}

async function overview(main, { signal }) {
  const files = (await get("v1/files", {}, signal)).data;
  const chooser = h("input", { type: "file", name: "file", id: "upload-file", required: true,
    accept: ".jsonl,.json,.csv,.tsv,.txt,.md" });
  const format = h("select", { name: "format", id: "upload-format" }, FORMATS.map((f) => h("option", { value: f }, f === "auto" ? "detect" : f)));
  const purpose = h("select", { name: "purpose", id: "upload-purpose" },
    h("option", { value: "fine-tune" }, "training / validation data"), h("option", { value: "evals" }, "eval cases"));
  const message = h("div", { "aria-live": "polite" });
  const submit = h("button", { class: "primary" }, "Upload");
  const form = h("form", { class: "card stack", "aria-labelledby": "upload-title" },
    h("h2", { id: "upload-title" }, "Upload data"),
    h("p", { class: "muted" }, "Chat JSONL, prompt/completion, Alpaca, ShareGPT, CSV/TSV, plain text, Markdown, ChatML or transcripts. A file honed cannot train on is refused with the line to fix."),
    h("div", { class: "row" }, field("File", chooser), field("Format", format), field("Used as", purpose), submit),
    message);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!chooser.files.length) { fill(message, errorBox(new Error("Choose a file to upload."))); return; }
    submit.disabled = true;
    fill(message, h("p", { class: "muted" }, "Uploading and checking…"));
    try {
      const data = new FormData();
      data.append("file", chooser.files[0]);
      data.append("purpose", purpose.value);
      if (format.value !== "auto") data.append("format", format.value);
      const stored = await upload("v1/files", data, signal);
      go(href(`datasets/${encodeURIComponent(stored.id)}`));
    } catch (error) {
      if (error.name !== "AbortError") fill(message, errorBox(error));
    } finally {
      submit.disabled = false;
    }
  });
  fill(main, h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Datasets")), form,
    files.length
      ? table("Uploaded files", ["File", "Used as", "Format", "Examples", "Size", "Uploaded"], files.map((f) => h("tr", {},
        h("th", { scope: "row" }, h("a", { href: href(`datasets/${encodeURIComponent(f.id)}`) }, f.filename),
          h("div", { class: "muted small" }, f.id)),
        h("td", {}, f.purpose), h("td", {}, f.format || "—"), h("td", { class: "num" }, number(f.examples)),
        h("td", { class: "num" }, bytes(f.bytes)), h("td", {}, when(f.created_at)))), { id: "files" })
      : h("p", { class: "muted" }, "No files uploaded yet."));
}

async function explore(main, { id, signal }) {
  const file = await get(`v1/files/${encodeURIComponent(id)}`, {}, signal);
  const { list } = await baseModelList("dataset-models", signal);
  const model = h("input", { id: "analyze-model", list: "dataset-models", required: true, autocomplete: "off",
    spellcheck: "false", value: localStorage.getItem(MODEL_STORAGE) || "" });
  const maxLen = h("input", { id: "analyze-max-len", type: "number", min: "16", max: "32768", value: "512", inputmode: "numeric" });
  const analyzeButton = h("button", { class: "primary" }, "Check quality");
  const report = h("div", { id: "report", "aria-live": "polite" });
  const analyzeForm = h("form", { class: "stack" }, list,
    h("p", { class: "muted" }, "Token lengths are counted under the chat template of the model you will fine-tune."),
    h("div", { class: "row" }, h("div", { class: "wide" }, field("Tokenizer of model", model)),
      field("Max sequence length", maxLen), analyzeButton));

  analyzeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!model.value.trim()) { fill(report, errorBox(new Error("Name the model whose tokenizer counts the tokens."))); return; }
    analyzeButton.disabled = true;
    fill(report, h("p", { class: "muted" }, "Checking the data…"));
    try {
      const result = await post("v1/datasets/analyze", { file: id, model: model.value.trim(),
        max_seq_len: Number(maxLen.value) || 512 }, signal);
      localStorage.setItem(MODEL_STORAGE, model.value.trim());
      fill(report, qualityReport(result));
    } catch (error) {
      if (error.name !== "AbortError") fill(report, errorBox(error));
    } finally {
      analyzeButton.disabled = false;
    }
  });

  const browser = examples(id, signal);
  fill(main,
    h("p", { class: "crumbs" }, h("a", { href: "#/datasets" }, "Datasets"), " / ", file.filename),
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, file.filename),
      file.purpose === "fine-tune"
        ? h("a", { class: "button primary", href: href("experiments", { new: "1", file: file.id }) }, "Fine-tune on this file")
        : null),
    h("p", { class: "muted" }, `${file.id} · ${file.format || "?"} · ${number(file.examples)} examples · ${bytes(file.bytes)} · uploaded ${when(file.created_at)}`),
    file.purpose === "fine-tune"
      ? h("section", { "aria-labelledby": "quality-title" }, h("h2", { id: "quality-title" }, "Quality report"), analyzeForm, report)
      : null,
    h("section", { "aria-labelledby": "examples-title" }, h("h2", { id: "examples-title" }, "Examples"), browser));
  if (file.purpose === "fine-tune" && model.value) analyzeForm.requestSubmit();
}

function qualityReport(result) {
  const tokens = result.tokens;
  const severityOrder = { error: 0, warning: 1, info: 2 };
  const findings = [...result.findings].sort((a, b) => severityOrder[a.severity] - severityOrder[b.severity]);
  return h("div", { class: "stack" },
    h("dl", { class: "facts" },
      stat("Examples", number(result.examples)),
      stat("Records with problems", number(result.records_with_problems)),
      stat("With a system prompt", number(result.conversations_with_system)),
      stat("Mean turns", number(result.mean_turns, 2)),
      result.validation_examples !== null ? stat("Validation examples", number(result.validation_examples)) : null,
      tokens ? stat("Tokens (min / median / p90 / max)", `${tokens.min} / ${tokens.p50} / ${tokens.p90} / ${tokens.max}`) : null,
      tokens ? stat(`Longer than ${tokens.max_seq_len}`, number(tokens.over_max)) : null),
    tokens ? histogram(tokens) : null,
    result.recommendations.length
      ? h("div", {}, h("h3", {}, "Recommendations"), h("ol", {}, result.recommendations.map((r) => h("li", {}, r))))
      : null,
    h("h3", {}, "Findings"),
    findings.length
      ? h("ul", { class: "findings" }, findings.map((f) => h("li", { class: `finding finding-${f.severity}` },
        h("span", { class: `badge severity-${f.severity}` }, f.severity), " ", h("strong", {}, f.message),
        h("div", { class: "small" }, `${number(f.count)} found`, f.lines.length ? ` · lines ${f.lines.join(", ")}` : ""),
        h("div", { class: "small muted" }, f.suggestion))))
      : h("p", { class: "muted" }, "Nothing to report."),
    result.labels ? table("Labels", ["Label", "Examples"], Object.entries(result.labels).map(([label, n]) =>
      h("tr", {}, h("th", { scope: "row" }, label), h("td", { class: "num" }, number(n))))) : null);
}

function stat(label, value) {
  return h("div", {}, h("dt", {}, label), h("dd", {}, value));
}

/** Token lengths as bars; each bar is labelled for screen readers, the cut-off length is marked. */
function histogram(tokens) {
  const most = Math.max(1, ...tokens.histogram);
  const bars = tokens.histogram.map((count, i) => {
    const low = tokens.bin_edges[i];
    const high = tokens.bin_edges[i + 1];
    const label = `${low}–${high} tokens: ${count} example${count === 1 ? "" : "s"}`;
    return h("li", { class: low >= tokens.max_seq_len ? "over" : "", title: label, "aria-label": label },
      h("span", { class: "bar", style: `height: ${(count / most) * 100}%` }));
  });
  return h("figure", { class: "histogram", id: "token-histogram" },
    h("figcaption", {}, "Tokens per example"),
    h("ol", { class: "bars" }, bars),
    h("div", { class: "axis muted small" }, h("span", {}, tokens.bin_edges[0]), h("span", {}, tokens.bin_edges[tokens.bin_edges.length - 1])));
}

/** Paged, searchable examples of one file. */
function examples(fileId, signal) {
  const search = h("input", { type: "search", id: "examples-q", placeholder: "words in any message" });
  const list = h("ol", { class: "examples" });
  const status = h("p", { class: "muted", "aria-live": "polite" });
  const previous = h("button", { type: "button" }, "Previous");
  const next = h("button", { type: "button" }, "Next");
  const form = h("form", { class: "row", role: "search" }, field("Search", search), h("button", {}, "Search"));
  let offset = 0;

  async function load() {
    fill(status, "Loading…");
    try {
      const page = await get(`v1/files/${encodeURIComponent(fileId)}/preview`, { offset, limit: PAGE, q: search.value.trim() }, signal);
      fill(list, page.data.map(example));
      list.start = offset + 1;
      previous.disabled = offset === 0;
      next.disabled = !page.has_more;
      fill(status, page.data.length ? `Showing ${offset + 1}–${offset + page.data.length}${search.value ? ` of the matches for “${search.value.trim()}”` : ""}` : "No examples match.");
    } catch (error) {
      if (error.name !== "AbortError") fill(status, errorBox(error));
    }
  }
  form.addEventListener("submit", (event) => { event.preventDefault(); offset = 0; load(); });
  previous.addEventListener("click", () => { offset = Math.max(0, offset - PAGE); load(); });
  next.addEventListener("click", () => { offset += PAGE; load(); });
  load();
  return h("div", { class: "stack" }, form, status, list, h("div", { class: "row", role: "navigation", "aria-label": "Example pages" }, previous, next));
}

function example(record) {
  return h("li", { class: "example card" },
    h("p", { class: "muted small" }, `line ${record.line}`, record.label ? ` · label ${record.label}` : ""),
    record.messages ? h("div", { class: "messages" }, record.messages.map((m) =>
      h("div", { class: `message role-${m.role}` }, h("span", { class: "role" }, m.role), h("p", {}, m.content)))) : null,
    record.text ? h("pre", { class: "text" }, record.text) : null,
    record.problems.map((p) => h("p", { class: "error-text small" }, p)));
}

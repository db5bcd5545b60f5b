// Models: what honed serves (GET /v1/models), and "deploy": every listed model (and any checkpoint name) is
// already served on the OpenAI-compatible API, so deploying is the exact snippet to call it, a test call, and
// optionally a stable alias (PUT /v1/aliases/{name}) that client code keeps while newer models are promoted
// behind it (with rollback). "Export" writes the model out as a queue job (POST /v1/exports) and follows it.

import { apiKey, apiRoot, get, post, put } from "../api.js";
import { actionButton, errorBox, fill, h, showNotice, table, when } from "../dom.js";
import { href, setQuery } from "../nav.js";

export async function render(main, { params, signal }) {
  const [models, health, aliases] = await Promise.all([get("v1/models", {}, signal).then((r) => r.data),
    get("healthz", {}, signal), get("v1/aliases", {}, signal).then((r) => r.data)]);
  const aliasOf = new Map(aliases.map((a) => [a.name, a]));
  const inMemory = new Set(health.loaded_models || []);
  const deploySlot = h("div", { id: "deploy" });

  function deploy(name) {
    setQuery({ deploy: name });
    fill(deploySlot, deployPanel(name, signal));
    deploySlot.querySelector("h2")?.focus();
  }

  fill(main,
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Models")),
    h("p", { class: "muted" }, "Every model listed here is servable now at ", h("code", {}, new URL("v1", apiRoot).href),
      ". The first request to a model loads it; fine-tuned LoRA models share their base model's weights."),
    deploySlot,
    table("Served models", ["Model", "Kind", "In memory", "Created", ""], models.map((m) => h("tr", {},
      h("th", { scope: "row" }, h("code", {}, m.id)),
      h("td", {}, aliasOf.has(m.id) ? h("span", {}, "alias → ", h("code", {}, aliasOf.get(m.id).model))
        : m.id.startsWith("ft:") ? "fine-tuned" : "base"),
      h("td", {}, inMemory.has(m.id) ? h("span", { class: "badge succeeded" }, "loaded") : "on first request"),
      h("td", {}, m.created ? when(m.created) : "—"),
      h("td", {}, h("span", { class: "row tight" },
        h("button", { type: "button", class: "small", "aria-label": `Deploy ${m.id}`, onClick: () => deploy(m.id) }, "Deploy"),
        h("a", { class: "button small", href: href("compare", { a: m.id }), "aria-label": `Chat with ${m.id} in Compare` }, "Chat"))))),
    { id: "models" }),
    aliases.length ? table("Aliases", ["Alias", "Serves", "Before that", ""], aliases.map((a) => h("tr", {},
      h("th", { scope: "row" }, h("code", {}, a.name)),
      h("td", {}, h("code", {}, a.model)),
      h("td", {}, a.history.length ? h("code", {}, a.history[0]) : "—"),
      h("td", {}, a.history.length ? actionButton("Roll back", async () => {
        await post(`v1/aliases/${encodeURIComponent(a.name)}/rollback`, {}, signal);
        showNotice(`${a.name} serves ${a.history[0]} again.`);
        render(main, { params, signal });
      }, { class: "small", "aria-label": `Roll back ${a.name}` }) : null))), { id: "aliases" }) : null);
  if (params.get("deploy")) deploy(params.get("deploy"));
}

function pythonSnippet(model) {
  const key = apiKey.get() ? 'os.environ["HONED_API_KEY"]' : '"unused-on-loopback"';
  return [
    apiKey.get() ? "import os\n" : "",
    "from openai import OpenAI\n\n",
    `client = OpenAI(base_url=${JSON.stringify(new URL("v1", apiRoot).href)}, api_key=${key})\n`,
    "reply = client.chat.completions.create(\n",
    `    model=${JSON.stringify(model)},\n`,
    '    messages=[{"role": "user", "content": "Hello!"}],\n',
    ")\n",
    "print(reply.choices[0].message.content)\n",
  ].join("");
}

function curlSnippet(model) {
  const body = JSON.stringify({ model, messages: [{ role: "user", content: "Hello!" }] });
  return [`curl ${new URL("v1/chat/completions", apiRoot).href} \\\n`,
    apiKey.get() ? '  -H "Authorization: Bearer $HONED_API_KEY" \\\n' : "",
    '  -H "Content-Type: application/json" \\\n',
    `  -d '${body.replaceAll("'", "'\\''")}'\n`].join("");
}

function snippet(title, text) {
  const copy = h("button", { type: "button", class: "small" }, "Copy");
  copy.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text);
      showNotice(`${title} copied.`);
    } catch {
      showNotice("Copying is blocked here: select the text and copy it.");
    }
  });
  return h("div", { class: "snippet" }, h("div", { class: "row spread" }, h("h3", {}, title), copy),
    h("pre", { tabindex: "0", "aria-label": title }, h("code", {}, text)));
}

function deployPanel(model, signal) {
  const answer = h("div", { "aria-live": "polite" });
  const test = actionButton("Send a test request", async () => {
    fill(answer, h("p", { class: "muted" }, "Asking…"));
    try {
      const reply = await post("v1/chat/completions", { model, max_tokens: 32, temperature: 0,
        messages: [{ role: "user", content: "Hello!" }] }, signal);
      fill(answer, h("p", {}, "It answered: ", h("q", {}, reply.choices[0].message.content || "(empty)")));
    } catch (error) {
      fill(answer, errorBox(error));
    }
  });
  const snippets = h("div", { class: "stack" }, snippet("Python (OpenAI SDK)", pythonSnippet(model)),
    snippet("curl", curlSnippet(model)));
  const fineTuned = model.startsWith("ft:") || /:ckpt-step-\d+$/.test(model);
  return h("section", { class: "card stack", "aria-labelledby": "deploy-title" },
    h("h2", { id: "deploy-title", tabindex: "-1" }, "Use ", h("code", {}, model)),
    h("p", { class: "muted" }, "It is already served on honed's OpenAI-compatible API: point the OpenAI SDK (or anything that speaks its API) at this base URL and model name."),
    fineTuned ? aliasForm(model, snippets, signal) : null,
    snippets,
    h("div", { class: "row" }, test), answer,
    fineTuned ? exportForm(model, signal) : null);
}

/** Deploy under a stable name: the snippets switch to the alias once it serves this model. */
function aliasForm(model, snippets, signal) {
  const name = h("input", { id: "alias-name", name: "alias", placeholder: "support-bot", required: true,
    pattern: "[A-Za-z0-9][A-Za-z0-9._\\-]{0,63}", autocomplete: "off", spellcheck: "false" });
  const note = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "row", "aria-label": "Deploy under an alias" },
    h("label", { for: "alias-name" }, "Serve it as"), name, h("button", { class: "small" }, "Deploy under this name"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const alias = await put(`v1/aliases/${encodeURIComponent(name.value.trim())}`, { model }, signal);
      fill(note, h("p", {}, h("code", {}, alias.name), " now serves ", h("code", {}, alias.model),
        alias.history.length ? ` (before: ${alias.history[0]}; roll back from the Aliases table)` : "", "."));
      fill(snippets, snippet("Python (OpenAI SDK)", pythonSnippet(alias.name)), snippet("curl", curlSnippet(alias.name)));
    } catch (error) {
      if (error.name !== "AbortError") fill(note, errorBox(error));
    }
  });
  return h("div", { class: "stack" }, form, note);
}

const FORMATS = [["adapter", "PEFT adapter (small; needs the base model)"], ["merged", "Merged model (plain transformers)"],
  ["onnx", "ONNX (checked against torch with onnxruntime)"], ["gguf", "GGUF f16 for llama.cpp"],
  ["gguf:q8_0", "GGUF Q8_0 for llama.cpp (smaller)"]];

/** Export as a job on the queue, its progress followed from its events. */
function exportForm(model, signal) {
  const format = h("select", { id: "export-format", name: "format" },
    FORMATS.map(([value, label]) => h("option", { value }, label)));
  const progress = h("progress", { max: "1", value: "0", hidden: true, "aria-label": "Export progress" });
  const status = h("div", { "aria-live": "polite", id: "export-status" });
  const start = actionButton("Export", async () => {
    const [kind, quantization] = format.value.split(":");
    const job = await post("v1/exports", { model, format: kind, quantization }, signal);
    progress.hidden = false;
    fill(status, h("p", { class: "muted" }, `Queued: ${job.id}`));
    let current = job;
    while (!["succeeded", "failed", "cancelled"].includes(current.status)) {
      await new Promise((resolve) => setTimeout(resolve, 500));
      current = await get(`v1/exports/${encodeURIComponent(job.id)}`, {}, signal);
      const latest = (await get(`v1/exports/${encodeURIComponent(job.id)}/events`, { limit: 1 }, signal)).data[0];
      if (latest?.data?.progress != null) progress.value = latest.data.progress;
      if (latest) fill(status, h("p", { class: "muted" }, latest.message));
    }
    if (current.status !== "succeeded") throw new Error(current.error?.message || `The export ${current.status}`);
    progress.value = 1;
    const size = current.files.reduce((sum, f) => sum + f.bytes, 0);
    fill(status, h("p", {}, `Written to `, h("code", {}, current.output_dir), ` (${current.files.length} files, ` +
      `${(size / 2 ** 20).toFixed(1)} MiB, with a model card in README.md).`));
  }, { id: "export-start" });
  return h("section", { class: "stack", "aria-labelledby": "export-title" },
    h("h3", { id: "export-title" }, "Export"),
    h("div", { class: "row" }, h("label", { for: "export-format" }, "Format"), format, start),
    progress, status);
}

// Models: what honed serves (GET /v1/models), and "deploy": every listed model (and any checkpoint name) is
// already served on the OpenAI-compatible API, so deploying is the exact snippet to call it, and a test call.

import { apiKey, apiRoot, get, post } from "../api.js";
import { actionButton, errorBox, fill, h, showNotice, table, when } from "../dom.js";
import { href, setQuery } from "../nav.js";

export async function render(main, { params, signal }) {
  const [models, health] = await Promise.all([get("v1/models", {}, signal).then((r) => r.data),
    get("healthz", {}, signal)]);
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
      h("td", {}, m.id.startsWith("ft:") ? "fine-tuned" : "base"),
      h("td", {}, inMemory.has(m.id) ? h("span", { class: "badge succeeded" }, "loaded") : "on first request"),
      h("td", {}, m.created ? when(m.created) : "—"),
      h("td", {}, h("span", { class: "row tight" },
        h("button", { type: "button", class: "small", "aria-label": `Deploy ${m.id}`, onClick: () => deploy(m.id) }, "Deploy"),
        h("a", { class: "button small", href: href("compare", { a: m.id }), "aria-label": `Chat with ${m.id} in Compare` }, "Chat"))))),
    { id: "models" }));
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
  return h("section", { class: "card stack", "aria-labelledby": "deploy-title" },
    h("h2", { id: "deploy-title", tabindex: "-1" }, "Use ", h("code", {}, model)),
    h("p", { class: "muted" }, "It is already served on honed's OpenAI-compatible API: point the OpenAI SDK (or anything that speaks its API) at this base URL and model name."),
    snippet("Python (OpenAI SDK)", pythonSnippet(model)),
    snippet("curl", curlSnippet(model)),
    h("div", { class: "row" }, test), answer);
}

// Compare: runs overlaid (loss curves and a metrics table), and an A/B chat — one prompt to two models,
// streamed side by side, differences highlighted, and a vote stored as preference data (POST /v1/preferences).

import { followJob, get, listAll, post, streamChat } from "../api.js";
import { LineChart } from "../chart.js";
import { diffNodes, errorBox, field, fill, h, labelCells, number, statusBadge, wordDiff } from "../dom.js";
import { jobTitle, method, scoreCell, shortModel } from "../jobs.js";
import { href, setQuery } from "../nav.js";

export async function render(main, { params, signal }) {
  const [jobs, models] = await Promise.all([listAll("v1/fine_tuning/jobs", signal, 200), get("v1/models", {}, signal)]);
  const chosen = new Set((params.get("jobs") || "").split(",").filter(Boolean));
  const query = () => ({ jobs: [...chosen].join(","), a: modelA.value, b: modelB.value });

  // ------------------------------------------------------------------------------------------- runs
  const picker = h("fieldset", { class: "picker" }, h("legend", {}, "Runs to overlay"),
    jobs.length ? jobs.slice(0, 40).map((job) => {
      const box = h("input", { type: "checkbox", value: job.id, checked: chosen.has(job.id) });
      box.addEventListener("change", () => {
        box.checked ? chosen.add(job.id) : chosen.delete(job.id);
        setQuery(query());
        showRuns();
      });
      return h("label", { class: "inline" }, box, ` ${jobTitle(job)} `, statusBadge(job.status));
    }) : h("p", { class: "muted" }, "No fine-tuning jobs yet."));
  const runsSlot = h("div");
  let runsLeave = null;

  function showRuns() {
    runsLeave?.abort();
    runsLeave = new AbortController();
    const runSignal = AbortSignal.any([signal, runsLeave.signal]);
    const runs = jobs.filter((j) => chosen.has(j.id));
    if (!runs.length) {
      fill(runsSlot, h("p", { class: "muted" }, "Pick runs above to overlay their curves."));
      return;
    }
    const series = runs.map((j) => ({ label: jobTitle(j) }));
    const train = new LineChart("Train loss", series, { id: "compare-train", signal: runSignal });
    const valid = new LineChart("Validation loss", series.map((s) => ({ ...s, points: true })), { id: "compare-valid", signal: runSignal });
    const best = new Map();
    const rows = h("tbody");
    const drawTable = () => labelCells(fill(rows, runs.map((j) => h("tr", {},
      h("th", { scope: "row" }, h("a", { href: href(`jobs/${encodeURIComponent(j.id)}`) }, jobTitle(j))),
      h("td", {}, statusBadge(j.status)), h("td", { title: j.model }, shortModel(j.model)), h("td", { class: "nowrap" }, method(j)),
      h("td", { class: "num" }, j.hyperparameters.n_epochs), h("td", { class: "num" }, j.honed?.learning_rate),
      h("td", { class: "num" }, number(j.honed?.result?.final_loss, 4)), h("td", { class: "num" }, number(best.get(j.id), 4)),
      h("td", { class: "num" }, number(j.trained_tokens)), h("td", {}, scoreCell(j))))).parentElement);
    fill(runsSlot, h("div", { class: "charts two" }, train.element, valid.element),
      h("div", { class: "table-wrap" }, h("table", { id: "compare-runs", class: "cards" }, h("caption", {}, "Runs"),
        h("thead", {}, h("tr", {}, ["Run", "Status", "Base model", "Method", "Epochs", "Learning rate", "Final loss",
          "Best validation loss", "Trained tokens", "Score"].map((t) => h("th", { scope: "col" }, t)))), rows)));
    drawTable();
    runs.forEach((job, index) => {
      followJob(job.id, (event) => {
        const data = event.data || {};
        if (event.kind === "metrics") train.add(index, data.step, data.train_loss);
        if (event.kind === "eval" && data.phase === "validation" && data.valid_loss !== undefined) {
          valid.add(index, data.step, data.valid_loss);
          best.set(job.id, Math.min(best.get(job.id) ?? Infinity, data.valid_loss));
          drawTable();
        }
      }, runSignal).catch((error) => { if (error.name !== "AbortError") runsSlot.append(errorBox(error)); });
    });
  }

  // ---------------------------------------------------------------------------------------- A/B chat
  const names = new Set(models.data.map((m) => m.id));
  for (const job of jobs.filter((j) => chosen.has(j.id))) {
    names.add(job.model);
    if (job.fine_tuned_model) names.add(job.fine_tuned_model);
  }
  const checkpointLists = await Promise.all(jobs.filter((j) => chosen.has(j.id)).map(
    (j) => get(`v1/fine_tuning/jobs/${j.id}/checkpoints`, { limit: 100 }, signal).catch(() => ({ data: [] }))));
  checkpointLists.flatMap((list) => list.data).forEach((c) => names.add(c.fine_tuned_model_checkpoint));
  const firstTuned = jobs.find((j) => chosen.has(j.id) && j.fine_tuned_model);
  const modelInput = (id, value) => h("input", { id, list: "compare-models", required: true, autocomplete: "off",
    spellcheck: "false", value: value || "" });
  const modelA = modelInput("model-a", params.get("a") || firstTuned?.model || models.data[0]?.id);
  const modelB = modelInput("model-b", params.get("b") || firstTuned?.fine_tuned_model || models.data[1]?.id);
  const prompt = h("textarea", { id: "ab-prompt", rows: "3", required: true, placeholder: "Ask both models the same question" });
  const maxTokens = h("input", { id: "ab-max-tokens", type: "number", min: "1", max: "4096", value: "128", inputmode: "numeric" });
  const temperature = h("input", { id: "ab-temperature", type: "number", min: "0", max: "2", step: "0.1", value: "0", inputmode: "decimal" });
  const send = h("button", { class: "primary" }, "Send to both");
  const panes = h("div", { class: "ab" });
  const votes = h("div");
  const stored = h("p", { class: "muted small", id: "preference-count" });
  const form = h("form", { class: "stack card", "aria-labelledby": "ab-title" },
    h("h2", { id: "ab-title" }, "A/B chat"),
    h("datalist", { id: "compare-models" }, [...names].map((n) => h("option", { value: n }))),
    h("div", { class: "grid two" }, field("Model A", modelA), field("Model B", modelB)),
    field("Prompt", prompt),
    h("div", { class: "row" }, field("Max tokens", maxTokens), field("Temperature", temperature), send),
    panes, votes, stored);
  for (const input of [modelA, modelB]) input.addEventListener("change", () => setQuery(query()));

  async function countPreferences() {
    try {
      const list = await get("v1/preferences", {}, signal);
      stored.textContent = `${list.data.length} preference${list.data.length === 1 ? "" : "s"} stored.`;
    } catch (error) {
      if (error.name !== "AbortError") fill(stored, errorBox(error));
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const question = prompt.value.trim();
    if (!question || !modelA.value.trim() || !modelB.value.trim()) {
      fill(votes, errorBox(new Error("Name both models and write a prompt.")));
      return;
    }
    send.disabled = true;
    fill(votes);
    const body = { messages: [{ role: "user", content: question }], max_tokens: Number(maxTokens.value) || 128,
      temperature: Number(temperature.value) || 0 };
    const sides = [["A", modelA.value.trim()], ["B", modelB.value.trim()]].map(([label, model]) => pane(label, model));
    fill(panes, sides.map((s) => s.element));
    const answers = await Promise.all(sides.map((side) => streamChat({ ...body, model: side.model }, side.write, signal)
      .then((answer) => side.done(answer), (error) => side.fail(error))));
    send.disabled = false;
    if (answers.some((a) => a === null)) return;
    const [left, right] = wordDiff(answers[0], answers[1]);
    sides[0].show(diffNodes(left));
    sides[1].show(diffNodes(right));
    fill(votes, voteButtons({ prompt: question, model_a: sides[0].model, model_b: sides[1].model,
      answer_a: answers[0], answer_b: answers[1] }));
  });

  function voteButtons(exchange) {
    const result = h("span", { "aria-live": "polite" });
    const buttons = [["a", "A is better"], ["tie", "Tie"], ["b", "B is better"]].map(([winner, label]) => {
      const button = h("button", { type: "button", dataset: { vote: winner } }, label);
      button.addEventListener("click", async () => {
        buttons.forEach((b) => { b.disabled = true; });
        try {
          const saved = await post("v1/preferences", { ...exchange, winner }, signal);
          button.setAttribute("aria-pressed", "true");
          fill(result, `Vote stored as preference ${saved.id}.`);
          countPreferences();
        } catch (error) {
          buttons.forEach((b) => { b.disabled = false; });
          fill(result, errorBox(error));
        }
      });
      return button;
    });
    return h("div", { class: "row votes", role: "group", "aria-label": "Which answer is better?" },
      h("span", {}, "Which answer is better?"), buttons, result);
  }

  fill(main,
    h("div", { class: "page-head" }, h("h1", { tabindex: "-1" }, "Compare")),
    h("section", { "aria-labelledby": "runs-title" }, h("h2", { id: "runs-title" }, "Runs"), picker, runsSlot),
    h("section", {}, form));
  showRuns();
  countPreferences();
}

/** One side of the A/B chat: the answer streams in as text, then is shown with its differences marked. */
function pane(label, model) {
  const text = h("div", { class: "answer", "aria-busy": "true" });
  const status = h("p", { class: "muted small" }, "Waiting for the first token…");
  const started = performance.now();
  let pieces = 0;
  const element = h("section", { class: "pane card", dataset: { side: label }, "aria-label": `Answer ${label}` },
    h("h3", {}, `${label} · `, h("code", {}, model)), text, status);
  return {
    model, element,
    write(piece) {
      pieces += 1;
      element.dataset.pieces = String(pieces);
      text.append(piece);
      status.textContent = `Streaming… ${pieces} pieces`;
    },
    done(answer) {
      text.removeAttribute("aria-busy");
      element.dataset.done = "true";
      status.textContent = `${answer.length} characters in ${((performance.now() - started) / 1000).toFixed(1)} s. `
        + "Highlighted: words only this answer has.";
      return answer;
    },
    fail(error) {
      text.removeAttribute("aria-busy");
      fill(status, errorBox(error));
      return null;
    },
    show(nodes) { fill(text, nodes); },
  };
}

// The only module that talks to honed: the public HTTP API, the same one the SDK uses.
// It adds the optional API key, turns OpenAI-shaped error bodies into ApiError(message), and reads
// server-sent events over fetch (EventSource cannot send an Authorization header).

const KEY_STORAGE = "honed.apiKey";

export const apiKey = {
  get: () => localStorage.getItem(KEY_STORAGE) || "",
  set: (value) => (value ? localStorage.setItem(KEY_STORAGE, value) : localStorage.removeItem(KEY_STORAGE)),
};

/** The daemon's root URL (the page is served at its root, so this also works behind a path prefix). */
export const apiRoot = new URL(".", location.href.split("#")[0]);

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

function url(path, query = {}) {
  const target = new URL(path.replace(/^\//, ""), apiRoot);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") target.searchParams.set(name, value);
  }
  return target;
}

function headers(extra = {}) {
  const key = apiKey.get();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function errorFrom(response) {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    message = body?.error?.message || message;
  } catch { /* not JSON: keep the status line */ }
  if (response.status === 401) message += " — set the API key (top right).";
  return new ApiError(message, response.status);
}

async function send(path, { method = "GET", query, json, form, signal, accept } = {}) {
  const init = { method, signal, headers: headers(accept ? { Accept: accept } : {}) };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers["Content-Type"] = "application/json";
  } else if (form) {
    init.body = form;
  }
  let response;
  try {
    response = await fetch(url(path, query), init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(`honed is not answering at ${apiRoot.origin} (${error.message})`, 0);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

export const get = async (path, query, signal) => (await send(path, { query, signal })).json();
export const post = async (path, json, signal) => (await send(path, { method: "POST", json, signal })).json();
export const put = async (path, json, signal) => (await send(path, { method: "PUT", json, signal })).json();
export const upload = async (path, form, signal) => (await send(path, { method: "POST", form, signal })).json();

/** A report (or any file) fetched with the key and opened in a new tab. */
export async function openFile(path) {
  const tab = window.open("", "_blank");
  try {
    const blob = await (await send(path)).blob();
    tab.location = URL.createObjectURL(blob);
  } catch (error) {
    tab.close();
    throw error;
  }
}

/** Read an SSE response; calls onMessage({id, event, data}) for each message until it returns false. */
async function readEvents(response, onMessage) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let message = { id: null, event: "message", data: [] };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      const cut = buffer.endsWith("\r") ? buffer.length - 1 : buffer.length; // "\r" may be half of "\r\n"
      const lines = buffer.slice(0, cut).split(/\r\n|\n|\r/);
      buffer = lines.pop() + buffer.slice(cut);
      for (const line of lines) {
        if (line === "") {
          if (message.data.length && onMessage({ ...message, data: message.data.join("\n") }) === false) return;
          message = { id: message.id, event: "message", data: [] };
          continue;
        }
        const colon = line.indexOf(":");
        if (colon === 0) continue; // a comment (keep-alive)
        const field = colon < 0 ? line : line.slice(0, colon);
        const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
        if (field === "data") message.data.push(text);
        else if (field === "event") message.event = text;
        else if (field === "id") message.id = text;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

/**
 * Follow a job's events live: everything stored so far, then each new one as it is written, until the job has
 * ended (the `done` event). A dropped connection is resumed after the last event seen, so nothing is missed
 * or seen twice. Resolves when the job has ended; rejects on an API error.
 */
export async function followJob(jobId, onEvent, signal) {
  let after = 0;
  for (;;) {
    let finished = false;
    try {
      const response = await send(`v1/fine_tuning/jobs/${encodeURIComponent(jobId)}/events`,
        { query: { stream: "true", after }, signal, accept: "text/event-stream" });
      await readEvents(response, (message) => {
        if (message.event === "done") { finished = true; return false; }
        after = Number(message.id) || after;
        onEvent(JSON.parse(message.data));
      });
    } catch (error) {
      if (error.name === "AbortError" || error.status) throw error; // left the page, or the API said no
    }
    if (finished) return;
    if (signal?.aborted) return;
    await new Promise((resolve) => setTimeout(resolve, 1000)); // the daemon restarted or the network blinked
  }
}

/** Stream one chat answer; onText(piece) for each piece of text. Resolves with the whole answer. */
export async function streamChat(body, onText, signal) {
  const response = await send("v1/chat/completions", { method: "POST", json: { ...body, stream: true }, signal,
    accept: "text/event-stream" });
  let answer = "";
  let failure = null;
  await readEvents(response, ({ data }) => {
    if (data === "[DONE]") return false;
    const chunk = JSON.parse(data);
    if (chunk.error) { failure = new ApiError(chunk.error.message, 500); return false; }
    const piece = chunk.choices?.[0]?.delta?.content;
    if (piece) { answer += piece; onText(piece); }
  });
  if (failure) throw failure;
  return answer;
}

/** Every page of a list endpoint that pages with `after` (OpenAI's cursor), up to `max` items. */
export async function listAll(path, signal, max = 500) {
  const items = [];
  let after;
  for (;;) {
    const page = await get(path, { limit: 100, after }, signal);
    items.push(...page.data);
    if (!page.has_more || !page.data.length || items.length >= max) return items;
    after = page.data[page.data.length - 1].id;
  }
}

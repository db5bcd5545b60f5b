// Building the page: h() makes elements from data with text nodes only (never HTML strings), plus the small
// formatters and widgets every page uses.

const PROPERTIES = new Set(["value", "checked", "selected", "indeterminate"]);

/** h("button", {class: "primary", onClick}, "Save") — strings become text nodes, null/false are skipped. */
export function h(tag, props = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") element.addEventListener(name.slice(2).toLowerCase(), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (PROPERTIES.has(name)) element[name] = value;
    else element.setAttribute(name, value === true ? "" : String(value));
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
}

/** Replace an element's children. */
export function fill(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

let hints = 0;

/** A labelled form control: the label wraps the control (announced and clickable); a hint describes it. */
export function field(label, control, hint) {
  const help = hint ? h("small", { class: "muted", id: `hint-${++hints}` }, hint) : null;
  if (help) control.setAttribute("aria-describedby", help.id);
  return h("div", { class: "field" }, h("label", {}, h("span", {}, label), control), help);
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error?.message || String(error));
}

/** A table; in a narrow window each row becomes a card whose cells are labelled with their column. */
export function table(caption, headings, rows, props = {}) {
  const element = h("table", { class: "cards", ...props },
    caption ? h("caption", {}, caption) : null,
    h("thead", {}, h("tr", {}, headings.map((text) => h("th", { scope: "col" }, text)))),
    h("tbody", {}, rows));
  labelCells(element);
  return h("div", { class: "table-wrap" }, element);
}

/** Give each body cell its column's heading (data-label), for the card layout; call after refilling rows. */
export function labelCells(element) {
  const headings = [...element.querySelectorAll("thead th")].map((th) => th.textContent.trim());
  for (const row of element.querySelectorAll("tbody tr")) {
    [...row.children].forEach((cell, i) => { if (headings[i]) cell.dataset.label = headings[i]; });
  }
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status.replace("_", " "));
}

export function number(value, digits = 4) {
  if (value === null || value === undefined || Number.isNaN(value)) return "—";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return value.toLocaleString();
  if (Math.abs(value) >= 1000) return Math.round(value).toLocaleString();
  if (value !== 0 && Math.abs(value) < 0.001) return value.toExponential(1);
  return value.toFixed(digits).replace(/\.?0+$/, "") || "0";
}

export function signed(value, digits = 3) {
  if (value === null || value === undefined) return "—";
  return (value > 0 ? "+" : "") + number(value, digits);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined || seconds < 0) return "—";
  seconds = Math.round(seconds);
  if (seconds < 60) return `${seconds} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${seconds % 60} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function when(unixSeconds) {
  return unixSeconds ? new Date(unixSeconds * 1000).toLocaleString() : "—";
}

export function bytes(count) {
  if (count < 1024) return `${count} B`;
  if (count < 1024 ** 2) return `${(count / 1024).toFixed(1)} KB`;
  if (count < 1024 ** 3) return `${(count / 1024 ** 2).toFixed(1)} MB`;
  return `${(count / 1024 ** 3).toFixed(1)} GB`;
}

/** A button that disables itself while its async action runs and shows the API's message if it fails. */
export function actionButton(label, action, props = {}) {
  const button = h("button", { type: "button", ...props }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    button.setAttribute("aria-busy", "true");
    try {
      await action();
    } catch (error) {
      showError(error);
    } finally {
      button.disabled = false;
      button.removeAttribute("aria-busy");
    }
  });
  return button;
}

/** A message at the bottom of the window that a screen reader announces; errors stay until dismissed. */
export function showError(error) { toast(error?.message || String(error), "error"); }
export function showNotice(text) { toast(text, "notice"); }

function toast(text, kind) {
  let tray = document.getElementById("toasts");
  if (!tray) {
    tray = h("div", { id: "toasts", class: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(tray);
  }
  const close = h("button", { type: "button", class: "quiet", "aria-label": "Dismiss" }, "×");
  const item = h("div", { class: `toast ${kind}` }, h("span", {}, text), close);
  close.addEventListener("click", () => item.remove());
  tray.append(item);
  if (kind !== "error") setTimeout(() => item.remove(), 4000);
}

/** Word-level difference of two answers: [{text, same}] runs for each side (longest common subsequence). */
export function wordDiff(a, b) {
  const left = a.split(/(\s+)/).filter(Boolean);
  const right = b.split(/(\s+)/).filter(Boolean);
  if (left.length * right.length > 4e6) return [[{ text: a, same: false }], [{ text: b, same: false }]];
  const words = (tokens) => tokens.map((t, i) => [t, i]).filter(([t]) => /\S/.test(t));
  const x = words(left);
  const y = words(right);
  const lengths = Array.from({ length: x.length + 1 }, () => new Uint16Array(y.length + 1));
  for (let i = x.length - 1; i >= 0; i--) {
    for (let j = y.length - 1; j >= 0; j--) {
      lengths[i][j] = x[i][0] === y[j][0] ? lengths[i + 1][j + 1] + 1 : Math.max(lengths[i + 1][j], lengths[i][j + 1]);
    }
  }
  const sameLeft = new Set();
  const sameRight = new Set();
  for (let i = 0, j = 0; i < x.length && j < y.length;) {
    if (x[i][0] === y[j][0]) { sameLeft.add(x[i][1]); sameRight.add(y[j][1]); i++; j++; }
    else if (lengths[i + 1][j] >= lengths[i][j + 1]) i++;
    else j++;
  }
  const runs = (tokens, same) => tokens.map((text, i) => ({ text, same: !/\S/.test(text) || same.has(i) }));
  return [runs(left, sameLeft), runs(right, sameRight)];
}

/** Render diff runs: words only one side has are <mark>ed. */
export function diffNodes(runs) {
  return runs.map(({ text, same }) => (same ? text : h("mark", {}, text)));
}

export function code(text) {
  return h("code", {}, text);
}

// Live line charts on uPlot (vendored in vendor/uPlot). Points are added one at a time as events arrive and
// drawn at most every 100 ms; the figure's data-points attribute counts the first series' plotted points.

import uPlot from "./vendor/uPlot/uPlot.esm.js";
import { h, number } from "./dom.js";

const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();
export const seriesColor = (index) => css(`--series-${(index % 6) + 1}`);
const charts = new Set();
const STEP_INCREMENTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000, 100000]; // whole steps

// Canvas colours come from the CSS variables, so a light/dark switch only needs a redraw.
matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => charts.forEach((c) => c.restyle()));

/** Y tick labels with as many digits as the distance between ticks needs (uPlot's own round 0.0099 to 0.01). */
function tickLabels(u, ticks) {
  const step = ticks.length > 1 ? Math.abs(ticks[1] - ticks[0]) : Math.abs(ticks[0]) || 1;
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  if (decimals <= 4) return ticks.map((v) => v.toFixed(decimals));
  const digits = (v) => Math.max(1, Math.floor(Math.log10(Math.abs(v))) + decimals + 1);
  return ticks.map((v) => (v === 0 ? "0" : Number(v.toPrecision(digits(v))).toExponential())); // 0.01 -> 1e-2
}

export class LineChart {
  /**
   * @param {string} title  the figure's caption
   * @param {{label: string, points?: boolean}[]} series  one entry per line
   * @param {{id?: string, xLabel?: string, yFormat?: (v: number) => string, signal?: AbortSignal}} options
   *   the chart is destroyed when `signal` aborts (the page is left)
   */
  constructor(title, series, { id, xLabel = "step", yFormat = (v) => number(v, 4), signal } = {}) {
    this.series = series;
    this.yFormat = yFormat;
    this.xs = [];
    this.ys = series.map(() => []);
    this.plotted = 0;
    this.plot = h("div", { class: "plot" });
    this.summary = h("p", { class: "chart-summary muted" }, "No points yet.");
    this.element = h("figure", { class: "chart", dataset: { chart: id || title, points: "0" } },
      h("figcaption", {}, title), this.plot, this.summary);
    this.element.setAttribute("aria-label", `${title} chart`);
    this.uplot = null;
    this.xLabel = xLabel;
    this.timer = null;
    signal?.addEventListener("abort", () => this.destroy());
    this.schedule(); // an empty frame once the page has placed the figure
  }

  /** Add (or replace) the value of series `index` at x. */
  add(index, x, y) {
    if (y === null || y === undefined || !Number.isFinite(x)) return;
    let at = this.xs.length;
    while (at > 0 && this.xs[at - 1] > x) at--;
    if (this.xs[at - 1] === x) {
      this.ys[index][at - 1] = y;
    } else {
      this.xs.splice(at, 0, x);
      this.ys.forEach((values, i) => values.splice(at, 0, i === index ? y : null));
    }
    this.schedule();
  }

  count(index = 0) {
    return this.ys[index].filter((v) => v !== null).length;
  }

  schedule() {
    this.timer ??= setTimeout(() => { this.timer = null; this.draw(); }, 100);
  }

  draw() {
    if (this.destroyed) return;
    if (!this.element.isConnected) { this.schedule(); return; } // not placed on the page yet
    if (!this.uplot) this.create();
    this.uplot.setData([this.xs, ...this.ys]);
    this.plotted = this.count(0);
    this.element.dataset.points = String(this.plotted);
    const last = this.xs.length - 1;
    const parts = this.series.map((s, i) => {
      const values = this.ys[i];
      for (let k = last; k >= 0; k--) if (values[k] !== null) return `${s.label} ${this.yFormat(values[k])} at ${this.xLabel} ${this.xs[k]}`;
      return null;
    }).filter(Boolean);
    this.summary.textContent = parts.length ? `Latest: ${parts.join("; ")}.` : "No points yet.";
  }

  create() {
    const axis = {
      stroke: () => css("--muted"),
      grid: { stroke: () => css("--grid"), width: 1 },
      ticks: { stroke: () => css("--grid"), width: 1 },
    };
    const options = {
      width: this.width(),
      height: 200,
      scales: { x: { time: false } },
      // a key only when there are several lines; the latest values are in the summary line below the chart
      legend: { show: this.series.length > 1, live: false },
      cursor: { drag: { x: true, y: false } },
      series: [
        { label: this.xLabel },
        ...this.series.map((s, i) => ({
          label: s.label,
          stroke: () => seriesColor(i),
          width: 2,
          spanGaps: true,
          points: s.points ? { show: true, size: 6, fill: () => seriesColor(i) } : { show: false },
        })),
      ],
      axes: [{ ...axis, label: this.xLabel, labelSize: 20, incrs: STEP_INCREMENTS }, { ...axis, size: 64, values: tickLabels }],
    };
    this.uplot = new uPlot(options, [this.xs, ...this.ys], this.plot);
    this.resizer = new ResizeObserver(() => this.uplot.setSize({ width: this.width(), height: 200 }));
    this.resizer.observe(this.plot);
    charts.add(this);
  }

  width() {
    return Math.max(200, this.plot.clientWidth);
  }

  restyle() {
    this.uplot?.redraw(false, true);
  }

  destroy() {
    this.destroyed = true;
    clearTimeout(this.timer);
    this.resizer?.disconnect();
    this.uplot?.destroy();
    charts.delete(this);
  }
}

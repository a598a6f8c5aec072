// Live training curves (plotly.js, served locally). The page embeds #curves-config: per run its
// metrics endpoint and the points logged so far. While a run is active this polls
// `<url>?after=<cursor>` and appends only the new points, so the charts extend without a reload.
// Smoothing is an EMA (TensorBoard's, debiased) applied here; the raw curve stays faint behind.
(function () {
  "use strict";

  // Debiased exponential moving average: s_i = w*s_{i-1} + (1-w)*y_i, divided by (1 - w^(i+1)) so
  // the first points are not pulled toward zero. Non-finite values are skipped (kept as null).
  function ema(values, weight) {
    const w = Math.min(Math.max(Number(weight) || 0, 0), 0.999);
    const out = [];
    let last = 0;
    let n = 0;
    for (const y of values) {
      if (y === null || !Number.isFinite(y)) { out.push(null); continue; }
      last = last * w + (1 - w) * y;
      n += 1;
      out.push(w === 0 ? y : last / (1 - Math.pow(w, n)));
    }
    return out;
  }

  // Charts in the order people read them; each lists the metrics it draws (only those a run has).
  const PANELS = [
    { id: "reward", title: "Reward (mean ± std)", metrics: ["reward"], band: "reward_std" },
    { id: "rewards-per-function", title: "Reward per reward function (mean)", match: /^rewards\/(.+)\/mean$/ },
    { id: "frac-reward-zero-std", title: "Fraction of groups with zero reward std (no learning signal)", metrics: ["frac_reward_zero_std"] },
    { id: "loss", title: "Loss", metrics: ["loss"] },
    { id: "completion-length", title: "Completion length (mean tokens)", metrics: ["completions/mean_length"] },
    { id: "kl", title: "KL to the reference model", metrics: ["kl"] },
    { id: "learning-rate", title: "Learning rate (schedule, not smoothed)", metrics: ["learning_rate"], raw: true },
    { id: "tools", title: "Tool calls and failures (per completion)", metrics: ["tools/call_frequency", "tools/failure_frequency"] },
  ];
  const DASHES = ["solid", "dash", "dot", "dashdot", "longdash"];
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

  function panelMetrics(panel, names) {
    if (panel.match) return names.filter((n) => panel.match.test(n)).sort();
    return panel.metrics.filter((m) => names.includes(m));
  }

  function rgba(hex, alpha) {
    const v = parseInt(hex.slice(1), 16);
    return `rgba(${(v >> 16) & 255},${(v >> 8) & 255},${v & 255},${alpha})`;
  }

  class Curves {
    constructor(config) {
      this.pollMs = config.poll_ms || 2000;
      this.runs = config.runs.map((r) => ({ ...r, series: {}, cursor: 0, active: true, status: "" }));
      this.overlay = this.runs.length > 1;
      this.smoothing = this.restoreSmoothing();
      this.container = document.getElementById("curves");
      this.empty = document.getElementById("curves-empty");
      this.more = document.getElementById("more-metrics");
      this.otherSelect = document.getElementById("other-metric");
      for (const run of this.runs) { this.merge(run, run.initial); delete run.initial; }
      this.bindControls();
      this.draw();
      this.schedule();
    }

    restoreSmoothing() {
      const slider = document.getElementById("smoothing");
      const saved = window.localStorage ? localStorage.getItem("bugforge.smoothing") : null;
      if (slider && saved !== null) slider.value = saved;
      return slider ? Number(slider.value) : 0;
    }

    bindControls() {
      const slider = document.getElementById("smoothing");
      const shown = document.getElementById("smoothing-value");
      if (slider) {
        const update = () => {
          this.smoothing = Number(slider.value);
          if (shown) shown.textContent = this.smoothing.toFixed(2);
          try { localStorage.setItem("bugforge.smoothing", slider.value); } catch (e) { /* private mode */ }
          this.draw();
        };
        slider.addEventListener("input", update);
        if (shown) shown.textContent = this.smoothing.toFixed(2);
      }
      if (this.otherSelect) this.otherSelect.addEventListener("change", () => this.drawOther());
      if (this.more) this.more.addEventListener("toggle", () => this.drawOther());
    }

    merge(run, payload) {
      if (!payload) return;
      for (const [name, s] of Object.entries(payload.series)) {
        const target = run.series[name] || (run.series[name] = { x: [], y: [] });
        for (let i = 0; i < s.x.length; i++) {
          // Points arrive in insertion order; a metric re-logged at an earlier step goes in place.
          const step = s.x[i];
          if (!target.x.length || step > target.x[target.x.length - 1]) { target.x.push(step); target.y.push(s.y[i]); continue; }
          const at = target.x.findIndex((x) => x >= step);
          if (target.x[at] === step) target.y[at] = s.y[i]; else { target.x.splice(at, 0, step); target.y.splice(at, 0, s.y[i]); }
        }
      }
      run.cursor = payload.cursor;
      run.active = payload.active;
      run.status = payload.status;
      run.more = payload.more;
    }

    schedule() {
      if (!this.runs.some((r) => r.active || r.more)) return;
      this.timer = window.setTimeout(() => this.poll(), this.runs.some((r) => r.more) ? 0 : this.pollMs);
    }

    async poll() {
      const wanted = this.runs.filter((r) => r.active || r.more);
      await Promise.all(wanted.map(async (run) => {
        try {
          const response = await fetch(`${run.url}?after=${run.cursor}`, { headers: { Accept: "application/json" } });
          if (response.ok) this.merge(run, await response.json());
        } catch (e) { /* the server restarted or the network blinked: the next poll retries */ }
      }));
      this.draw();
      this.schedule();
    }

    metricNames() {
      const names = new Set();
      for (const run of this.runs) Object.keys(run.series).forEach((n) => names.add(n));
      return [...names].sort();
    }

    traceName(run, metric, panelMetricCount) {
      if (this.overlay) return panelMetricCount > 1 ? `${run.name} · ${metric}` : run.name;
      return metric;
    }

    // One colour per metric for a single run; with several runs one colour per run and one dash
    // style per metric, so a run keeps its colour on every chart.
    traces(metrics, band, raw = false) {
      const traces = [];
      this.runs.forEach((run, r) => {
        metrics.forEach((metric, m) => {
          const s = run.series[metric];
          if (!s || !s.x.length) return;
          const color = COLORS[(this.overlay ? r : m) % COLORS.length];
          const dash = this.overlay ? DASHES[m % DASHES.length] : "solid";
          const weight = raw ? 0 : this.smoothing;
          const smooth = ema(s.y, weight);
          const name = this.traceName(run, metric, metrics.length);
          const std = band && run.series[band];
          if (std && std.x.length) {
            // The band follows the smoothed mean ± the smoothed std at the steps both were logged.
            const stdSmoothed = ema(std.y, weight);
            const smoothStd = new Map(std.x.map((x, i) => [x, stdSmoothed[i]]));
            const mean = new Map(s.x.map((x, i) => [x, smooth[i]]));
            const xs = s.x.filter((x) => smoothStd.has(x) && smoothStd.get(x) !== null && mean.get(x) !== null);
            const meta = { run: run.id, metric: band, kind: "band" };
            traces.push({ type: "scatter", mode: "lines", x: xs, y: xs.map((x) => mean.get(x) + smoothStd.get(x)), line: { width: 0 }, hoverinfo: "skip", showlegend: false, meta });
            traces.push({ type: "scatter", mode: "lines", x: xs, y: xs.map((x) => mean.get(x) - smoothStd.get(x)), line: { width: 0 }, fill: "tonexty", fillcolor: rgba(color, 0.15), name: `${name} ± std`, hoverinfo: "skip", meta });
          }
          if (!raw) {
            traces.push({ type: "scatter", mode: "lines+markers", x: s.x, y: s.y, name: `${name} (raw)`, line: { color, width: 1, dash }, marker: { size: 3 }, opacity: 0.3, showlegend: false, hovertemplate: "step %{x}: %{y:.4g} (raw)<extra></extra>", meta: { run: run.id, metric, kind: "raw" } });
          }
          traces.push({ type: "scatter", mode: raw ? "lines+markers" : "lines", x: s.x, y: smooth, name, line: { color, width: 2, dash }, marker: { size: 3 }, hovertemplate: `step %{x}: %{y:.4g}<extra>${name}</extra>`, meta: { run: run.id, metric, kind: raw ? "raw" : "smooth" } });
        });
      });
      return traces;
    }

    layout(title, traces = []) {
      // A constant series (a flat learning rate) would get plotly's default ±1 range around it.
      const ys = traces.flatMap((t) => t.y).filter((y) => y !== null && Number.isFinite(y));
      const flat = ys.length && ys.every((y) => y === ys[0]) && ys[0] !== 0;
      return {
        title: { text: title, font: { size: 14 } },
        margin: { t: 36, r: 10, b: 90, l: 60 }, // the height comes from the CSS (responsive)
        xaxis: { title: { text: "optimizer step", standoff: 4 }, rangemode: "tozero" },
        yaxis: { exponentformat: "e", ...(flat ? { range: [ys[0] - Math.abs(ys[0]) / 2, ys[0] + Math.abs(ys[0]) / 2] } : {}) },
        legend: { orientation: "h", y: -0.3, yanchor: "top" },
        uirevision: title, // keep a user's zoom across updates
        shapes: this.phaseMarkers(),
        annotations: this.phaseMarkers().map((shape) => ({ x: shape.x0, y: 1, yref: "paper", text: "GRPO →", showarrow: false, xanchor: "left", font: { size: 10, color: "#6b7280" } })),
      };
    }

    // SFT then GRPO: a dotted line where the GRPO phase starts (one step axis for both phases).
    phaseMarkers() {
      return this.runs.filter((r) => r.grpo_from_step).map((r) => ({
        type: "line", xref: "x", yref: "paper", x0: r.grpo_from_step, x1: r.grpo_from_step, y0: 0, y1: 1,
        line: { color: "#9ca3af", width: 1, dash: "dot" },
      }));
    }

    chartDiv(id, title) {
      let div = document.getElementById(`chart-${id}`);
      if (!div) {
        div = document.createElement("div");
        div.id = `chart-${id}`;
        div.className = "chart";
        div.setAttribute("role", "img");
        div.setAttribute("aria-label", `${title} by optimizer step`);
        this.container.appendChild(div);
      }
      return div;
    }

    draw() {
      if (!window.Plotly || !this.container) return;
      const names = this.metricNames();
      if (this.empty) this.empty.hidden = names.length > 0;
      const claimed = new Set();
      for (const panel of PANELS) {
        const metrics = panelMetrics(panel, names);
        metrics.forEach((m) => claimed.add(m));
        if (panel.band) claimed.add(panel.band);
        if (!metrics.length) continue;
        // Panels keep their reading order: create missing divs in PANELS order.
        const div = this.chartDiv(panel.id, panel.title);
        this.container.appendChild(div);
        const traces = this.traces(metrics, panel.band, panel.raw);
        Plotly.react(div, traces, this.layout(panel.title, traces), { displaylogo: false, responsive: true });
      }
      this.updateOther(names.filter((n) => !claimed.has(n) && !n.startsWith("rewards/")));
    }

    updateOther(names) {
      if (!this.more || !this.otherSelect) return;
      this.more.hidden = names.length === 0;
      const current = this.otherSelect.value;
      const existing = [...this.otherSelect.options].map((o) => o.value);
      if (existing.join() !== names.join()) {
        this.otherSelect.replaceChildren(...names.map((n) => new Option(n, n)));
        if (names.includes(current)) this.otherSelect.value = current;
      }
      this.drawOther();
    }

    drawOther() {
      if (!this.more || !this.more.open || !this.otherSelect.value) return;
      const metric = this.otherSelect.value;
      const traces = this.traces([metric]);
      Plotly.react("chart-other", traces, this.layout(metric, traces), { displaylogo: false, responsive: true });
    }
  }

  window.BugforgeCurves = { ema, PANELS, Curves };
  document.addEventListener("DOMContentLoaded", () => {
    const el = document.getElementById("curves-config");
    if (el) window.bugforgeCurves = new Curves(JSON.parse(el.textContent));
  });
})();

// Pass-rate charts: each chart's traces come from json_script (id = the chart's key); every
// bar carries the URL of the rows behind it in customdata, so a click opens them.
document.addEventListener("DOMContentLoaded", () => {
  if (!window.Plotly) return;
  document.querySelectorAll(".dash-chart").forEach((el) => {
    const key = el.id.replace(/^chart-/, "");
    const source = document.getElementById(key);
    if (!source) return;
    const traces = JSON.parse(source.textContent);
    const layout = {
      margin: { t: 10, r: 10, b: 70, l: 50 }, height: 300, barmode: el.dataset.stacked === "1" ? "stack" : "group",
      showlegend: el.dataset.stacked === "1", legend: { orientation: "h", y: 1.12 },
      yaxis: { rangemode: "nonnegative" }, xaxis: { type: "category", automargin: true },
    };
    Plotly.newPlot(el, traces.map((t) => ({ ...t, hovertemplate: "%{x}: %{y}<extra>%{fullData.name}</extra>" })),
      layout, { displaylogo: false, responsive: true }).then(() => {
      el.dataset.drawn = "1";
      el.on("plotly_click", (ev) => {
        const url = ev.points && ev.points[0] && ev.points[0].customdata;
        if (url) window.location.assign(url);
      });
    });
  });
});

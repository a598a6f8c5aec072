// Draw the charts whose data the page embeds with json_script (plotly.js is served locally).
document.addEventListener("DOMContentLoaded", () => {
  const read = (id) => { const el = document.getElementById(id); return el ? JSON.parse(el.textContent) : null; };
  const layout = { margin: { t: 20, r: 10, b: 40, l: 50 }, height: 320 };
  const status = read("status-data");
  if (status && window.Plotly) {
    Plotly.newPlot("status-chart", [{ type: "bar", x: status.x, y: status.y }], { ...layout, yaxis: { rangemode: "nonnegative" } }, { displaylogo: false });
  }
  const series = read("series-data");
  if (series && window.Plotly) {
    const traces = Object.entries(series).map(([name, s]) => ({ type: "scatter", mode: "lines+markers", name, x: s.x, y: s.y }));
    Plotly.newPlot("curves", traces, { ...layout, xaxis: { title: "optimizer step" } }, { displaylogo: false });
  }
});

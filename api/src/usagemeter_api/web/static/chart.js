// A small inline-SVG bar chart of uses per day, updated in place so a refresh does not flicker.

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 300;
const HEIGHT = 60;
const GAP = 1;

function svgElement(name, attributes = {}) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  return element;
}

/** An empty chart; fill it with updateChart. */
export function createChart() {
  const svg = svgElement("svg", {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    preserveAspectRatio: "none",
    role: "img",
    class: "chart",
    focusable: "false",
  });
  svg.append(svgElement("title"), svgElement("line", { x1: 0, x2: WIDTH, y1: HEIGHT - 0.5, y2: HEIGHT - 0.5, class: "chart-axis" }));
  svg.append(svgElement("g", { class: "chart-bars" }));
  return svg;
}

/** Draw `series` ([{day, used}]); `label` names the chart, `dayLabel(series entry)` titles each bar. */
export function updateChart(svg, series, label, dayLabel) {
  svg.querySelector("title").textContent = label;
  svg.setAttribute("aria-label", label);
  const bars = svg.querySelector(".chart-bars");
  while (bars.childElementCount > series.length) bars.lastElementChild.remove();
  while (bars.childElementCount < series.length) {
    const bar = svgElement("rect", { class: "chart-bar" });
    bar.append(svgElement("title"));
    bars.append(bar);
  }
  const peak = Math.max(1, ...series.map((point) => point.used));
  const slot = WIDTH / Math.max(series.length, 1);
  series.forEach((point, index) => {
    const bar = bars.children[index];
    const height = point.used > 0 ? Math.max(2, (point.used / peak) * (HEIGHT - 4)) : 0;
    bar.setAttribute("x", (index * slot + GAP / 2).toFixed(2));
    bar.setAttribute("width", Math.max(slot - GAP, 0.5).toFixed(2));
    bar.setAttribute("y", (HEIGHT - 1 - height).toFixed(2));
    bar.setAttribute("height", height.toFixed(2));
    bar.dataset.used = String(point.used);
    bar.firstElementChild.textContent = dayLabel(point);
  });
}

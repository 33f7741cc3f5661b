// A feature's period as an inline-SVG chart: per-day bars (own scale, right) under the cumulative total
// (left axis), with the limit line and the projection to the period's end against that cumulative axis,
// since limits apply to the running total. The previous period is a faint cumulative line, day n against
// day n: a line reads as "ahead of or behind last month" at a glance, where ghost bars would double the
// bars at phone width. Every element is built with DOM APIs; text goes in through textContent.

const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 320;
const HEIGHT = 170;
const LEFT = 36;
const RIGHT = WIDTH - 24;
const TOP = 18;
const BOTTOM = HEIGHT - 20;
const BAR_BAND = 0.35; // per-day bars use the lower 35 % of the plot, so the lines above stay readable
const GAP = 1;

function svgElement(name, attributes = {}, text = null) {
  const element = document.createElementNS(SVG_NS, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== null) element.textContent = text;
  return element;
}

const fixed = (value) => Number(value.toFixed(2));

/** Round ticks covering 0..peak: about three steps of 1, 2 or 5 times a power of ten. */
export function niceTicks(peak) {
  const rough = Math.max(peak, 1) / 3;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= rough);
  const ticks = [0];
  while (ticks[ticks.length - 1] < peak) ticks.push(ticks.length * step);
  if (ticks.length === 1) ticks.push(step);
  return ticks;
}

/** An empty chart; fill it with updateChart. */
export function createChart() {
  return svgElement("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", class: "chart", focusable: "false" });
}

function scales(model) {
  const peaks = [model.limit, model.projected, ...model.days.flatMap((day) => [day.cumulative, day.previous])];
  const ticks = niceTicks(Math.max(0, ...peaks.filter((value) => typeof value === "number")));
  const top = ticks[ticks.length - 1];
  const barPeak = Math.max(1, ...model.days.map((day) => day.used ?? 0));
  const slot = (RIGHT - LEFT) / Math.max(model.days.length, 1);
  return {
    ticks,
    barPeak,
    slot,
    y: (value) => fixed(BOTTOM - (value / top) * (BOTTOM - TOP)),
    barHeight: (value) => (value / barPeak) * (BOTTOM - TOP) * BAR_BAND,
    end: (index) => fixed(LEFT + (index + 1) * slot),
  };
}

function axes(model, scale) {
  const group = svgElement("g", { class: "chart-axes" });
  for (const value of scale.ticks) {
    const y = scale.y(value);
    group.append(svgElement("line", { class: "chart-gridline", x1: LEFT, x2: RIGHT, y1: y, y2: y, "data-value": value }));
    group.append(svgElement("text", { class: "chart-tick", x: LEFT - 4, y: y + 3, "text-anchor": "end" }, model.tick(value)));
  }
  group.append(svgElement("text", { class: "chart-unit", x: 2, y: TOP - 8 }, model.unitLabel));
  const barTop = fixed(BOTTOM - scale.barHeight(scale.barPeak));
  group.append(svgElement("text", { class: "chart-tick chart-bar-scale", x: RIGHT + 3, y: barTop + 3 }, model.tick(scale.barPeak)));
  const last = model.days.length - 1;
  const labelled = new Set([0, 7, 14, 21, last].filter((index) => index <= last && (index === last || last - index >= 4)));
  for (const index of labelled) {
    const x = fixed(LEFT + (index + 0.5) * scale.slot);
    group.append(svgElement("text", { class: "chart-day", x, y: HEIGHT - 6, "text-anchor": "middle" }, model.dayLabel(model.days[index])));
  }
  return group;
}

function bars(model, scale) {
  const group = svgElement("g", { class: "chart-bars" });
  model.days.forEach((day, index) => {
    const height = day.used ? Math.max(1.5, scale.barHeight(day.used)) : 0;
    const bar = svgElement("rect", {
      class: day.used === null ? "chart-bar chart-bar-future" : "chart-bar",
      x: fixed(LEFT + index * scale.slot + GAP / 2),
      width: fixed(Math.max(scale.slot - GAP, 0.5)),
      y: fixed(BOTTOM - height),
      height: fixed(height),
      "data-day": day.day,
    });
    if (day.used !== null) bar.dataset.used = String(day.used);
    group.append(bar);
  });
  return group;
}

function line(className, points, attributes = {}) {
  const text = points.map(([x, y]) => `${x},${y}`).join(" ");
  return svgElement("polyline", { class: className, points: text, fill: "none", ...attributes });
}

function projection(model, scale, past) {
  const today = past.length - 1;
  const from = [scale.end(today), scale.y(past[today].cumulative)];
  const to = [RIGHT, scale.y(model.projected)];
  const area = [from, to, [RIGHT, scale.y(0)], [from[0], scale.y(0)]];
  return [
    svgElement("polygon", { class: "chart-projection-area", points: area.map((point) => point.join(",")).join(" ") }),
    line("chart-projection", [from, to], { "stroke-dasharray": "4 3", "data-value": model.projected }),
  ];
}

function limitLine(model, scale) {
  const y = scale.y(model.limit);
  return [
    svgElement("line", { class: "chart-limit", x1: LEFT, x2: RIGHT, y1: y, y2: y, "data-value": model.limit }),
    svgElement("text", { class: "chart-limit-label", x: LEFT + 3, y: y - 3 }, model.limitLabel),
  ];
}

// Each running total starts from zero at the period's start and ends at the close of its last day.
function lines(model, scale) {
  const group = svgElement("g", { class: "chart-lines" });
  const origin = [LEFT, scale.y(0)];
  const previous = model.days.flatMap((day, index) => (day.previous === null ? [] : [[scale.end(index), scale.y(day.previous)]]));
  if (previous.length) group.append(line("chart-previous", [origin, ...previous]));
  const past = model.days.filter((day) => day.cumulative !== null);
  if (past.length) group.append(line("chart-cumulative", [origin, ...past.map((day, index) => [scale.end(index), scale.y(day.cumulative)])]));
  if (model.projected !== null && past.length) group.append(...projection(model, scale, past));
  if (model.limit !== null) group.append(...limitLine(model, scale));
  return group;
}

// One transparent column per day over the whole plot height, so every day has exact numbers on hover.
function hoverColumns(model, scale) {
  const group = svgElement("g", { class: "chart-hover" });
  model.days.forEach((day, index) => {
    const column = svgElement("rect", { class: "chart-hit", x: fixed(LEFT + index * scale.slot), width: fixed(scale.slot), y: TOP, height: BOTTOM - TOP });
    column.append(svgElement("title", {}, model.dayTitle(day)));
    group.append(column);
  });
  return group;
}

/**
 * Draw `model` into `svg`: {days: [{day, used, cumulative, previous}] (null where unknown or to come),
 * limit, limitLabel, projected (null: none), label, unitLabel, tick(value), dayLabel(day), dayTitle(day)}.
 * The whole chart is rebuilt in one task, so a refresh repaints once without a flicker.
 */
export function updateChart(svg, model) {
  const scale = scales(model);
  svg.setAttribute("aria-label", model.label);
  svg.dataset.days = String(model.days.length);
  svg.replaceChildren(
    svgElement("title", {}, model.label),
    axes(model, scale),
    bars(model, scale),
    lines(model, scale),
    svgElement("line", { class: "chart-axis", x1: LEFT, x2: RIGHT, y1: BOTTOM + 0.5, y2: BOTTOM + 0.5 }),
    hoverColumns(model, scale),
  );
}

// A feature's usage over the whole period: the chart, its legend and caption, and the same numbers
// as a table behind a "Show table" disclosure (for screen readers and anyone who wants exact figures).

import { createChart, updateChart } from "./chart.js";

const DAY_MS = 86_400_000;
const CALENDAR_KINDS = ["day", "week", "month", "cycle"];
const LEGEND = [
  ["bars", "legendPerDay"],
  ["cumulative", "legendCumulative"],
  ["projection", "legendProjection"],
  ["limit", "legendLimit"],
  ["previous", "legendPrevious"],
];

function element(tag, className, text = null) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== null) node.textContent = text;
  return node;
}

/** The figure under a quota row: chart, legend, caption and the table disclosure, filled by renderUsageChart. */
export function createUsageFigure() {
  const figure = element("figure", "quota-chart");
  const legend = element("ul", "chart-legend");
  for (const [name] of LEGEND) {
    const item = element("li", `legend-${name}`);
    item.dataset.series = name;
    item.append(element("span", "legend-swatch"), element("span", "legend-text"));
    legend.append(item);
  }
  const details = element("details", "chart-table");
  const table = element("table");
  table.append(element("caption", "visually-hidden"), element("thead"), element("tbody"));
  details.append(element("summary"), table);
  figure.append(createChart(), legend, element("figcaption", "chart-caption"), details);
  return figure;
}

/** The UTC days of [start, end) as YYYY-MM-DD. */
export function periodDays(start, end) {
  const days = [];
  for (let moment = Date.parse(start); moment < Date.parse(end); moment += DAY_MS) {
    days.push(new Date(moment).toISOString().slice(0, 10));
  }
  return days;
}

function running(series) {
  let total = 0;
  return series.map((point) => (total += point.used));
}

/** Whether the quota's binding figures are of the plan's period (so its limit and projection fit the chart). */
function ofThePeriod(quota, period) {
  const same = Date.parse(quota.period_start) === Date.parse(period.start) && Date.parse(quota.period_end) === Date.parse(period.end);
  return same && (quota.limit === null || CALENDAR_KINDS.includes(quota.binding?.kind));
}

function bindingAvailable(quota) {
  const binding = quota.binding;
  const limits = Array.isArray(quota.limits) ? quota.limits : [];
  const match = limits.find((limit) => limit.window === binding?.window && (limit.dimension_value ?? null) === null);
  return match ? match.available : quota.limit;
}

/** The chart's days: used and cumulative up to today (null after), the previous period's cumulative by day number. */
export function chartDays(period, report, previous) {
  const byDay = new Map(report.series.map((point, index) => [String(point.day), index]));
  const totals = running(report.series);
  const before = previous ? running(previous.series) : [];
  return periodDays(period.start, period.end).map((day, index) => {
    const at = byDay.get(day);
    return {
      day,
      used: at === undefined ? null : report.series[at].used,
      cumulative: at === undefined ? null : totals[at],
      previous: index < before.length ? before[index] : null,
    };
  });
}

function chartModel(quota, period, days, i18n, unit) {
  const fits = quota !== null && ofThePeriod(quota, period);
  const limit = fits && quota.limit !== null ? bindingAvailable(quota) : null;
  const amount = (value) => (value === null ? "–" : i18n.amount(value, unit));
  return {
    days,
    limit,
    limitLabel: limit === null ? "" : i18n.t("chartLimit", { limit: i18n.amount(limit, unit) }),
    projected: fits && typeof quota.projected_used === "number" ? quota.projected_used : null,
    unitLabel: i18n.unitName(unit),
    tick: (value) => i18n.number(value),
    dayLabel: (day) => i18n.day(day.day),
    dayTitle: (day) => i18n.t("chartDayTitle", {
      day: i18n.day(day.day), used: amount(day.used), cumulative: amount(day.cumulative), previous: amount(day.previous),
    }),
  };
}

function fillTable(table, days, i18n, unit, caption) {
  table.caption.textContent = caption;
  const head = element("tr");
  for (const key of ["tableDay", "tableUsed", "tableCumulative", "tablePrevious"]) {
    const cell = element("th", null, i18n.t(key));
    cell.scope = "col";
    head.append(cell);
  }
  table.tHead.replaceChildren(head);
  const shown = (value) => (value === null ? "–" : i18n.number(value));
  const rows = days.map((day) => {
    const row = element("tr");
    const name = element("th", null, i18n.day(day.day));
    name.scope = "row";
    row.append(name, ...[day.used, day.cumulative, day.previous].map((value) => element("td", null, shown(value))));
    row.dataset.day = day.day;
    return row;
  });
  table.tBodies[0].replaceChildren(...rows);
  table.dataset.unit = unit;
}

function fillLegend(legend, model, hasPrevious, i18n) {
  const present = { bars: true, cumulative: true, projection: model.projected !== null, limit: model.limit !== null, previous: hasPrevious };
  for (const [name, key] of LEGEND) {
    const item = legend.querySelector(`[data-series="${name}"]`);
    item.hidden = !present[name];
    item.querySelector(".legend-text").textContent = i18n.t(key);
  }
}

/**
 * Draw a feature's usage over the plan's `period` ({start, end}) under its quota row: `report` is this
 * period's usage (null: unreadable), `previous` the period before's (null: none), `quota` the row's answer.
 */
export function renderUsageChart(list, featureKey, { report, previous, quota, period }, i18n) {
  const row = [...list.children].find((item) => item.dataset.feature === featureKey);
  if (!row) return;
  const figure = row.querySelector(".quota-chart");
  const caption = figure.querySelector(".chart-caption");
  if (!report) {
    figure.dataset.state = "unavailable";
    caption.textContent = i18n.t("chartUnavailable");
    return;
  }
  const unit = report.unit;
  const days = chartDays(period, report, previous);
  const model = { ...chartModel(quota, period, days, i18n, unit), label: i18n.t("chartTitle", { feature: i18n.feature(featureKey) }) };
  updateChart(figure.querySelector("svg"), model);
  fillLegend(figure.querySelector(".chart-legend"), model, previous !== null, i18n);
  fillTable(figure.querySelector("table"), days, i18n, unit, model.label);
  figure.querySelector("summary").textContent = i18n.t("showTable");
  const empty = report.series.every((point) => point.used === 0);
  figure.dataset.state = empty ? "empty" : "ready";
  let text = empty ? i18n.t("chartEmpty") : i18n.t("chartTotal", { total: i18n.amount(report.total, unit) });
  if (previous && previous.total > 0) text += ` · ${i18n.t("chartPreviousTotal", { total: i18n.amount(previous.total, unit) })}`;
  caption.textContent = text;
}

// Drawing the API's answers into the page. Every function updates existing elements in place
// (creating them only the first time), so an auto-refresh changes numbers without a flicker.

import { createUsageFigure } from "./usage.js";

const STATE_ICONS = { ok: "✓", near: "⚠", full: "⛔", exceeded: "✕", unlimited: "∞" };
/** The message key of each quota state's words. */
export const STATE_TEXT = { ok: "stateOk", near: "stateNear", full: "stateNoAccess", exceeded: "stateExceeded", unlimited: "stateUnlimited" };

/** One of ok, near, full, exceeded, unlimited: the quota's state, worst first. */
export function quotaState(quota) {
  if (quota.exceeded) return "exceeded";
  if (quota.limit === null) return "unlimited";
  if (!quota.has_access) return "full";
  if (quota.near_limit) return "near";
  return "ok";
}

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

/** Show a progress bar's share (0–100, clamped) and its spoken text; null percent = no limit. */
export function updateMeter(meter, percent, valueText) {
  const fill = meter.querySelector(".meter-fill");
  if (percent === null) {
    meter.removeAttribute("aria-valuenow");
    fill.style.width = "0%";
  } else {
    const clamped = Math.min(Math.max(percent, 0), 100);
    meter.setAttribute("aria-valuenow", String(Math.round(clamped * 100) / 100));
    fill.style.width = `${clamped}%`;
  }
  meter.setAttribute("aria-valuetext", valueText);
}

/** "12 of 50 used", "1,250 of 5,000 tokens used", "30 tokens used · unlimited": figures in the feature's unit. */
export function quotaSummary(quota, i18n, unit = quota.unit) {
  if (quota.limit === null) return i18n.t("usedUnlimited", { used: i18n.amount(quota.used, unit) });
  return i18n.t("usedOfLimit", { used: i18n.number(quota.used), limit: i18n.amount(quota.limit, unit) });
}

const WINDOW_KEYS = new Map([
  ["day", "windowDay"],
  ["week", "windowWeek"],
  ["month", "windowMonth"],
  ["cycle", "windowCycle"],
  ["lifetime", "windowLifetime"],
]);

/** A limit's window in words: "This month", "Last 5h". */
function windowWords(limit, i18n) {
  const key = WINDOW_KEYS.get(limit.kind);
  return key ? i18n.t(key) : i18n.t("windowRolling", { length: String(limit.window) });
}

/** One line per limit (the feature total's, then each dimension value's), when there is more than one to show. */
function windowLines(quota, i18n) {
  const limits = Array.isArray(quota.limits) ? quota.limits : [];
  const dimensions = Array.isArray(quota.dimensions) ? quota.dimensions : [];
  const items = [...limits, ...dimensions.flatMap((item) => (Array.isArray(item.limits) ? item.limits : []))];
  if (items.length < 2 && dimensions.length === 0) return [];
  return items.map((limit) => {
    let figures = i18n.t("usedOfLimit", { used: i18n.number(limit.used), limit: i18n.amount(limit.available, quota.unit) });
    if (limit.frees_at && limit.remaining === 0) {
      figures += ` · ${i18n.t("freesAt", { time: i18n.moment(new Date(limit.frees_at)) })}`;
    }
    const window = windowWords(limit, i18n);
    const text = limit.dimension_value === null || limit.dimension_value === undefined
      ? i18n.t("windowItem", { window, figures })
      : i18n.t("dimensionItem", { value: String(limit.dimension_value), window, figures });
    const state = limit.exceeded ? "exceeded" : limit.remaining === 0 ? "full" : limit.near_limit ? "near" : "ok";
    return { text, state };
  });
}

function updateWindowList(listElement, lines) {
  listElement.hidden = lines.length === 0;
  while (listElement.children.length > lines.length) listElement.lastElementChild.remove();
  lines.forEach((line, index) => {
    let item = listElement.children[index];
    if (!item) {
      item = element("li", "quota-window");
      listElement.append(item);
    }
    setText(item, line.text);
    item.dataset.state = line.state;
  });
}

function element(tag, className, attributes = {}) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  return node;
}

// Row ids come from a counter, never from the feature key: keys such as "a.b" and "a_b" must not
// share an id, and no escaping of data is needed.
let rowSerial = 0;

function createQuotaRow(key) {
  rowSerial += 1;
  const nameId = `quota-${rowSerial}-name`;
  const row = element("li", "quota");
  row.dataset.feature = key;
  const state = element("span", "quota-state");
  state.append(element("span", "state-icon", { "aria-hidden": "true" }), element("span", "state-text"));
  const head = element("div", "quota-head");
  head.append(element("h3", "quota-name", { id: nameId }), state);
  const meter = element("div", "meter", {
    role: "progressbar",
    "aria-valuemin": "0",
    "aria-valuemax": "100",
    "aria-labelledby": nameId,
  });
  meter.append(element("div", "meter-fill"));
  const numbers = element("p", "quota-numbers");
  numbers.append(element("span", "used"), element("span", "remaining"), element("span", "percent"));
  const windows = element("ul", "quota-windows");
  windows.hidden = true;
  const forecast = element("p", "quota-forecast");
  forecast.hidden = true;
  row.append(head, meter, numbers, windows, forecast, createUsageFigure());
  return row;
}

/** Draw one row per quota, in the API's order; rows of features no longer listed are removed. */
export function renderQuotas(list, quotas, i18n) {
  const rows = new Map([...list.children].map((row) => [row.dataset.feature, row]));
  quotas.forEach((quota, index) => {
    let row = rows.get(quota.feature_key);
    if (!row) row = createQuotaRow(quota.feature_key);
    rows.delete(quota.feature_key);
    if (list.children[index] !== row) list.insertBefore(row, list.children[index] ?? null);
    updateQuotaRow(row, quota, i18n);
  });
  for (const stale of rows.values()) stale.remove();
}

function updateQuotaRow(row, quota, i18n) {
  const state = quotaState(quota);
  const name = i18n.feature(quota.feature_key);
  const summary = quotaSummary(quota, i18n);
  const stateText = i18n.t(STATE_TEXT[state]);
  row.dataset.state = state;
  setText(row.querySelector(".quota-name"), name);
  setText(row.querySelector(".state-icon"), STATE_ICONS[state]);
  setText(row.querySelector(".state-text"), stateText);
  setText(row.querySelector(".used"), summary);
  const remaining = quota.remaining === null ? "" : i18n.t("remaining", { remaining: i18n.amount(quota.remaining, quota.unit) });
  setText(row.querySelector(".remaining"), remaining);
  const percent = quota.percent_used === null ? "" : i18n.t("percentUsed", { percent: i18n.percent(quota.percent_used) });
  setText(row.querySelector(".percent"), percent);
  const spoken = [summary, percent, stateText].filter(Boolean).join(", ");
  updateMeter(row.querySelector(".meter"), quota.percent_used, spoken);
  updateWindowList(row.querySelector(".quota-windows"), windowLines(quota, i18n));
  updateForecast(row.querySelector(".quota-forecast"), quota, i18n);
}

/** Whether the quota, not yet used up, is projected to reach what it allows before its period ends. */
export function runsOutEarly(quota) {
  const at = Date.parse(quota.projected_exhausted_at ?? "");
  // Once used up the row's state and the call to upgrade say so already: a forecast is for before.
  return quota.remaining > 0 && Number.isFinite(at) && at < Date.parse(quota.period_end);
}

// Suggest the upgrade on the card itself while there is still time to act on it.
function updateForecast(note, quota, i18n) {
  const early = runsOutEarly(quota);
  note.hidden = !early;
  setText(note, early ? i18n.t("forecastUpgrade", { day: i18n.day(quota.projected_exhausted_at) }) : "");
}

/** The call to upgrade, shown while any feature is near, at or over its limit. */
export function renderUpgrade(elements, quotas, i18n, upgradeUrl) {
  const pressing = quotas.filter((quota) => ["near", "full", "exceeded"].includes(quotaState(quota)));
  elements.cta.hidden = pressing.length === 0;
  if (pressing.length === 0) return;
  const over = pressing.some((quota) => quota.exceeded || !quota.has_access);
  setText(elements.title, i18n.t(over ? "upgradeExceededTitle" : "upgradeNearTitle"));
  const features = pressing.map((quota) => i18n.feature(quota.feature_key)).join(", ");
  setText(elements.text, i18n.t("upgradeText", { features }));
  elements.cta.dataset.state = over ? "exceeded" : "near";
  elements.link.hidden = !upgradeUrl;
  if (upgradeUrl) elements.link.href = upgradeUrl;
}

/** Fill a metric card: its big value, a detail line and a state (ok, warn, bad, unavailable). */
export function renderCard(card, { value, detail = "", state = "ok" }) {
  setText(card.querySelector('[data-field="value"]'), value);
  setText(card.querySelector('[data-field="detail"]'), detail);
  card.dataset.state = state;
}

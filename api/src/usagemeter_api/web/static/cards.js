// The overview cards: conversions and workers from /analytics/dashboard-metrics (marked
// unavailable on servers without it), AI usage from the caller's quotas, system status from /health.

import { quotaState, quotaSummary, renderCard, STATE_TEXT, updateMeter } from "./render.js";

const AI_FEATURE = "ai_content_generation";

function count(value) {
  if (typeof value === "number") return value;
  if (value && typeof value === "object") return Number(value.this_month ?? value.total ?? value.count ?? 0);
  return 0;
}

/** {period, allTime} conversions from the metrics body's `conversions` ({this_month, total, by_name}). */
export function conversionTotals(metrics) {
  const conversions = metrics?.conversions;
  if (typeof conversions === "number") return { period: conversions, allTime: null };
  if (!conversions || typeof conversions !== "object") return null;
  if (typeof conversions.this_month === "number") {
    return { period: conversions.this_month, allTime: typeof conversions.total === "number" ? conversions.total : null };
  }
  if (typeof conversions.total === "number") return { period: conversions.total, allTime: null };
  if (conversions.by_name && typeof conversions.by_name === "object") {
    return { period: Object.values(conversions.by_name).reduce((sum, item) => sum + count(item), 0), allTime: null };
  }
  return null;
}

const UP_STATUSES = ["healthy", "up", "ok", "alive"];

/** {up, total, queued} from the metrics body's `workers` report ({workers: [...], queues: [...]}). */
export function workerSummary(metrics) {
  const report = metrics?.workers;
  const workers = Array.isArray(report) ? report : report?.workers;
  if (!Array.isArray(workers)) return null;
  const up = workers.filter((worker) => worker.alive === true || UP_STATUSES.includes(worker.status)).length;
  const depths = (report?.queues ?? []).map((queue) => queue.depth).filter((depth) => typeof depth === "number");
  return { up, total: workers.length, queued: depths.length ? depths.reduce((a, b) => a + b, 0) : null };
}

function renderUnavailable(card, i18n) {
  renderCard(card, { value: i18n.t("unavailable"), detail: i18n.t("unavailableDetail"), state: "unavailable" });
}

/** Conversions and workers; `metrics` null when the server has no dashboard metrics. */
export function renderMetricCards(cards, metrics, i18n) {
  const conversions = metrics ? conversionTotals(metrics) : null;
  if (conversions === null) {
    renderUnavailable(cards.conversions, i18n);
  } else {
    const detail = conversions.allTime === null
      ? i18n.t("conversionsDetail")
      : i18n.t("conversionsAllTime", { total: i18n.number(conversions.allTime) });
    renderCard(cards.conversions, { value: i18n.number(conversions.period), detail });
  }

  const workers = metrics ? workerSummary(metrics) : null;
  if (workers === null) {
    renderUnavailable(cards.workers, i18n);
  } else if (workers.total === 0) {
    // Nothing reports, so nothing is known to be healthy: neutral, not green.
    renderCard(cards.workers, { value: i18n.number(0), detail: i18n.t("workersNone"), state: "neutral" });
  } else {
    const value = i18n.t("workersValue", { up: i18n.number(workers.up), total: i18n.number(workers.total) });
    const detail = workers.queued === null ? "" : i18n.t("workersQueued", { count: i18n.number(workers.queued) });
    renderCard(cards.workers, { value, detail, state: workers.up < workers.total ? "warn" : "ok" });
  }
}

/** AI usage with its progress bar, from the caller's ai_content_generation quota. */
export function renderAiCard(card, quotas, i18n) {
  const quota = quotas.find((item) => item.feature_key === AI_FEATURE);
  const meter = card.querySelector('[data-field="meter"]');
  meter.hidden = !quota;
  if (!quota) {
    renderCard(card, { value: i18n.t("unavailable"), detail: i18n.t("unavailableDetail"), state: "unavailable" });
    return;
  }
  const state = quotaState(quota);
  const summary = quotaSummary(quota, i18n);
  const detail = quota.limit === null ? summary : `${summary} · ${i18n.t(STATE_TEXT[state])}`;
  const value = quota.percent_used === null ? i18n.amount(quota.used, quota.unit) : i18n.percent(quota.percent_used);
  renderCard(card, { value, detail, state: { near: "warn", full: "bad", exceeded: "bad" }[state] ?? "ok" });
  updateMeter(meter, quota.percent_used, detail);
}

// Keyed by the status string the API sends: a Map, so an unexpected "constructor" is just unknown.
const STATUS_VIEW = new Map([
  ["ok", { icon: "✓", key: "statusOk", state: "ok" }],
  ["healthy", { icon: "✓", key: "statusOk", state: "ok" }],
  ["degraded", { icon: "⚠", key: "statusDegraded", state: "warn" }],
  ["down", { icon: "✕", key: "statusDown", state: "bad" }],
]);

/** System status: the metrics' health report when there is one, else /health (`health` null when unreachable). */
export function renderSystemCard(card, health, metrics, i18n) {
  const detailed = metrics?.health;
  const view = STATUS_VIEW.get(detailed?.status ?? health?.status);
  if (!view) {
    renderCard(card, { value: `? ${i18n.t("statusUnknown")}`, detail: "", state: "warn" });
    return;
  }
  let detail = "";
  if (detailed && typeof detailed.healthy === "number" && typeof detailed.total === "number") {
    detail = i18n.t("servicesHealthy", { healthy: i18n.number(detailed.healthy), total: i18n.number(detailed.total) });
  } else if (health) {
    detail = i18n.t(health.clickhouse === "unreachable" ? "storageDown" : "storageOk");
  }
  renderCard(card, { value: `${view.icon} ${i18n.t(view.key)}`, detail, state: view.state });
}

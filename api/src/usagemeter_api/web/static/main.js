// The usage page: signs in with the caller's token, reads the JSON API and refreshes in place.

import { adoptTokenFromFragment, apiBase, apiClient, forgetToken, storedToken, storeToken, tokenDisplayName } from "./api.js";
import { renderAiCard, renderMetricCards, renderSystemCard } from "./cards.js";
import { pickLanguage, translateStatic, translator } from "./i18n.js";
import { renderQuotas, renderUpgrade } from "./render.js";
import { renderUsageChart } from "./usage.js";

const DEFAULT_REFRESH_SECONDS = 30;

const root = document.getElementById("usage-app");
const params = new URLSearchParams(window.location.search);
const i18n = translator(pickLanguage(params.get("lang") || root.dataset.lang, navigator.languages));
const refreshMs = refreshSeconds(params.get("refresh") || root.dataset.refresh) * 1000;
const { base, refused: apiRefused } = apiBase(root, params);
const $ = (id) => document.getElementById(id);

const view = {
  loading: $("loading-view"),
  signin: $("signin-view"),
  dashboard: $("dashboard-view"),
  banner: $("status-banner"),
  freshness: $("freshness-notice"),
  lastUpdated: $("last-updated"),
  cards: { conversions: $("card-conversions"), workers: $("card-workers"), ai: $("card-ai"), system: $("card-system") },
  upgrade: { cta: $("upgrade-cta"), title: $("upgrade-title"), text: $("upgrade-text"), link: $("upgrade-link") },
};

let session = null; // {token, client, generation, timer}
let generation = 0;

function refreshSeconds(raw) {
  const seconds = Number(raw);
  return Number.isFinite(seconds) && seconds >= 1 ? seconds : DEFAULT_REFRESH_SECONDS;
}

function show(name) {
  for (const key of ["loading", "signin", "dashboard"]) view[key].hidden = key !== name;
  root.dataset.view = name;
  root.setAttribute("aria-busy", String(name === "loading"));
  $("sign-out").hidden = name === "signin";
  $("refresh-now").hidden = name !== "dashboard";
}

function showBanner(message) {
  view.banner.hidden = !message;
  view.banner.textContent = message || "";
}

/** Say how old the usage figures are when the API marks them stale; null (or fresh figures) clears it. */
function showFreshness(quotaList) {
  const asOf = quotaList?.stale === true ? new Date(quotaList.as_of) : null;
  const stale = asOf !== null && !Number.isNaN(asOf.getTime());
  const text = stale ? i18n.t("staleUsage", { time: i18n.moment(asOf) }) : "";
  view.freshness.hidden = !stale;
  // Written only when it changes: a live region rewritten on every refresh is announced again.
  if (view.freshness.textContent !== text) view.freshness.textContent = text;
  if (stale) view.freshness.dataset.asOf = asOf.toISOString();
  else delete view.freshness.dataset.asOf;
  root.dataset.freshness = stale ? "stale" : "fresh";
}

function signIn(token) {
  stop();
  generation += 1;
  session = { token, client: apiClient(base, token), generation, timer: null };
  showBanner("");
  showFreshness(null);
  show("loading");
  refresh();
}

function stop() {
  if (session?.timer) clearTimeout(session.timer);
  session = null;
}

function refused(error) {
  forgetToken();
  stop();
  $("signin-reason").textContent = i18n.t(error.status === 403 ? "notAllowed" : "sessionExpired");
  root.dataset.auth = error.status === 403 ? "forbidden" : "expired";
  $("greeting").textContent = i18n.t("title");
  $("plan-badge").hidden = true;
  show("signin");
}

async function refresh() {
  const current = session;
  if (!current) return;
  clearTimeout(current.timer);
  try {
    const snapshot = await readEverything(current.client);
    if (session !== current) return; // signed out or in again meanwhile
    draw(snapshot, current.token);
    showBanner("");
    showFreshness(snapshot.quotaList);
    root.dataset.state = "ready";
  } catch (error) {
    if (session !== current) return;
    if (error.refused) return refused(error);
    root.dataset.state = "error";
    // One message at a time: the service's unavailable state says the data shown is the last.
    showFreshness(null);
    showBanner(i18n.t("offline", { reason: error.message }));
    if (root.dataset.view === "loading") view.loading.hidden = true;
  }
  if (session === current) current.timer = setTimeout(refresh, refreshMs);
}

/** The plan period before the one starting at `start` ({from, to} as ISO strings): a day, a week or a month. */
function previousPeriod(start, period) {
  const begin = new Date(start);
  const from = new Date(begin);
  if (period === "month") from.setUTCMonth(from.getUTCMonth() - 1);
  else from.setUTCDate(from.getUTCDate() - (period === "week" ? 7 : 1));
  return { from: from.toISOString(), to: begin.toISOString() };
}

// A past period does not change: read once per feature and range, kept for the page's life.
const pastReports = new Map();

function previousReport(client, key, range) {
  const cacheKey = JSON.stringify([key, range.from]);
  if (!pastReports.has(cacheKey)) {
    const reading = client.usageBetween(key, range.from, range.to).catch(() => {
      pastReports.delete(cacheKey); // tried again on the next refresh
      return null;
    });
    pastReports.set(cacheKey, reading);
  }
  return pastReports.get(cacheKey);
}

async function readEverything(client) {
  const quotaList = await client.quotas();
  const keys = quotaList.quotas.map((quota) => quota.feature_key);
  const planPeriod = quotaList.plan.period;
  const before = previousPeriod(quotaList.period_start, planPeriod);
  const [health, metrics, reports, previous] = await Promise.all([
    client.health().catch(() => null),
    client.dashboardMetrics().catch((error) => {
      if (error.refused) throw error;
      return null; // an older server without dashboard metrics, or a failing one: cards say unavailable
    }),
    Promise.all(keys.map((key) => client.usage(key, planPeriod).catch(() => null))),
    Promise.all(keys.map((key) => previousReport(client, key, before))),
  ]);
  const byKey = (values) => new Map(keys.map((key, index) => [key, values[index]]));
  return { quotaList, health, metrics, reports: byKey(reports), previous: byKey(previous) };
}

function draw({ quotaList, health, metrics, reports, previous }, token) {
  const name = tokenDisplayName(token) || quotaList.user_id;
  $("greeting").textContent = i18n.t("greeting", { name });
  const badge = $("plan-badge");
  badge.textContent = i18n.t("planBadge", { plan: quotaList.plan.name });
  badge.dataset.plan = quotaList.plan.id;
  badge.hidden = false;
  const lastDay = new Date(Date.parse(quotaList.period_end) - 1);
  $("period-label").textContent = i18n.t("period", { start: i18n.day(quotaList.period_start), end: i18n.day(lastDay) });

  const quotas = quotaList.quotas;
  const list = $("quota-list");
  renderQuotas(list, quotas, i18n);
  const period = { start: quotaList.period_start, end: quotaList.period_end };
  for (const quota of quotas) {
    const key = quota.feature_key;
    renderUsageChart(list, key, { report: reports.get(key), previous: previous.get(key), quota, period }, i18n);
  }
  $("quotas-empty").hidden = quotas.length > 0;
  renderUpgrade(view.upgrade, quotas, i18n, root.dataset.upgradeUrl || "");
  renderMetricCards(view.cards, metrics, i18n);
  renderAiCard(view.cards.ai, quotas, i18n);
  renderSystemCard(view.cards.system, health, metrics, i18n);

  const now = new Date();
  view.lastUpdated.textContent = i18n.t("lastUpdated", { time: i18n.time(now) });
  view.lastUpdated.dataset.at = now.toISOString();
  if (root.dataset.view !== "dashboard") show("dashboard");
}

function start() {
  document.documentElement.lang = i18n.lang;
  document.title = i18n.t("title");
  translateStatic(document, i18n.t);
  $("api-notice").hidden = !apiRefused;
  $("signin-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token-input").value.trim();
    if (!token) {
      $("signin-reason").textContent = i18n.t("tokenMissing");
      $("token-input").focus();
      return;
    }
    $("token-input").value = "";
    storeToken(token);
    signIn(token);
  });
  $("sign-out").addEventListener("click", () => {
    forgetToken();
    stop();
    $("signin-reason").textContent = "";
    show("signin");
    $("token-input").focus();
  });
  $("refresh-now").addEventListener("click", () => refresh());

  adoptTokenFromFragment();
  const token = storedToken();
  if (token) signIn(token);
  else show("signin");
}

start();

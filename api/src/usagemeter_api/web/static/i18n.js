// Every string the page shows, by language; {name} marks a value filled in at run time.
// Lookups go through own() or a Map: a feature key such as "__proto__" or "toString" comes from data
// and must never reach a plain object's prototype.

const MESSAGES = {
  en: {
    title: "Usage",
    greeting: "Hello, {name}",
    skipToContent: "Skip to content",
    loading: "Loading your usage…",
    overview: "Overview",
    refreshNow: "Refresh",
    signOut: "Sign out",
    signIn: "Sign in",
    signInTitle: "Sign in to see your usage",
    tokenLabel: "Access token",
    tokenHelp: "Paste the access token from your account page.",
    tokenMissing: "Paste an access token first.",
    sessionExpired: "Your session has expired or the access token is not valid. Sign in again.",
    notAllowed: "You are not allowed to see this usage. Sign in with your own access token.",
    lastUpdated: "Last updated {time}",
    refreshing: "Updating…",
    offline: "Could not reach the usage service ({reason}). Showing the last data; retrying automatically.",
    staleUsage: "Usage as of {time}. Live figures are temporarily unavailable; this page updates by itself when they are back.",
    planBadge: "{plan} plan",
    conversions: "Conversions",
    conversionsDetail: "this month",
    conversionsAllTime: "this month · {total} all time",
    workers: "Worker status",
    workersValue: "{up} of {total} healthy",
    workersNone: "No workers reporting",
    workersQueued: "{count} jobs waiting",
    aiUsage: "AI usage",
    systemStatus: "System status",
    statusOk: "Operational",
    statusDegraded: "Degraded",
    statusDown: "Down",
    servicesHealthy: "{healthy} of {total} services healthy",
    statusUnknown: "Unknown",
    storageOk: "Usage data available",
    storageDown: "Usage data store unreachable",
    unavailable: "Unavailable",
    unavailableDetail: "Not available on this server",
    quotasTitle: "Usage quotas",
    period: "Current period: {start} – {end}",
    noQuotas: "Your plan has no metered features.",
    usedOfLimit: "{used} of {limit} used",
    usedUnlimited: "{used} used · unlimited",
    remaining: "{remaining} left",
    percentUsed: "{percent} used",
    stateOk: "Within limit",
    stateNear: "Near limit",
    stateExceeded: "Limit exceeded",
    stateUnlimited: "Unlimited",
    stateNoAccess: "Limit reached",
    meterLabel: "{feature}: {text}",
    chartTitle: "{feature}, usage per day and in total this period",
    chartLimit: "Limit {limit}",
    chartDayTitle: "{day}: {used} · total {cumulative} · previous period {previous}",
    chartPreviousTotal: "{total} last period",
    legendPerDay: "Per day (right scale)",
    legendCumulative: "Total so far",
    legendProjection: "Projection at this pace",
    legendLimit: "Limit",
    legendPrevious: "Previous period",
    showTable: "Show table",
    tableDay: "Day",
    tableUsed: "Used",
    tableCumulative: "Total",
    tablePrevious: "Previous period, total",
    forecastUpgrade: "At this pace you will reach your limit around {day}, before the period ends. Upgrade your plan to keep going without interruption.",
    chartEmpty: "No usage yet this period.",
    chartTotal: "{total} this period",
    chartUnavailable: "Daily usage is unavailable.",
    upgradeNearTitle: "You are close to your plan's limits",
    upgradeExceededTitle: "You have used up part of your plan",
    upgradeText: "{features}: upgrade your plan to keep going without interruption.",
    upgradeAction: "Upgrade plan",
    apiRefused: "This link named another site as the usage service. It was ignored: your usage is read from this site.",
    windowDay: "Today",
    windowWeek: "This week",
    windowMonth: "This month",
    windowCycle: "This billing cycle",
    windowLifetime: "All time",
    windowRolling: "Last {length}",
    windowItem: "{window}: {figures}",
    dimensionItem: "{value}, {window}: {figures}",
    freesAt: "frees up {time}",
    units: new Map([
      ["uses", "uses"],
      ["tokens", "tokens"],
      ["requests", "requests"],
      ["bytes", "bytes"],
      ["seconds", "seconds"],
      ["credits", "credits"],
    ]),
    features: new Map([
      ["ai_content_generation", "AI content generation"],
      ["chat_messages", "Chat messages"],
      ["document_export", "Document exports"],
    ]),
  },
  es: {
    title: "Uso",
    greeting: "Hola, {name}",
    skipToContent: "Saltar al contenido",
    loading: "Cargando tu uso…",
    overview: "Resumen",
    refreshNow: "Actualizar",
    signOut: "Cerrar sesión",
    signIn: "Iniciar sesión",
    signInTitle: "Inicia sesión para ver tu uso",
    tokenLabel: "Token de acceso",
    tokenHelp: "Pega el token de acceso de la página de tu cuenta.",
    tokenMissing: "Pega primero un token de acceso.",
    sessionExpired: "Tu sesión ha caducado o el token de acceso no es válido. Vuelve a iniciar sesión.",
    notAllowed: "No tienes permiso para ver este uso. Inicia sesión con tu propio token de acceso.",
    lastUpdated: "Última actualización: {time}",
    refreshing: "Actualizando…",
    offline: "No se pudo conectar con el servicio de uso ({reason}). Se muestran los últimos datos; se reintentará automáticamente.",
    staleUsage: "Uso a las {time}. Las cifras en vivo no están disponibles por el momento; esta página se actualizará sola cuando vuelvan.",
    planBadge: "Plan {plan}",
    conversions: "Conversiones",
    conversionsDetail: "este mes",
    conversionsAllTime: "este mes · {total} en total",
    workers: "Estado de los workers",
    workersValue: "{up} de {total} en buen estado",
    workersNone: "Ningún worker informa",
    workersQueued: "{count} trabajos en cola",
    aiUsage: "Uso de IA",
    systemStatus: "Estado del sistema",
    statusOk: "Operativo",
    statusDegraded: "Degradado",
    statusDown: "Caído",
    servicesHealthy: "{healthy} de {total} servicios en buen estado",
    statusUnknown: "Desconocido",
    storageOk: "Datos de uso disponibles",
    storageDown: "Almacén de datos de uso inaccesible",
    unavailable: "No disponible",
    unavailableDetail: "No disponible en este servidor",
    quotasTitle: "Cuotas de uso",
    period: "Periodo actual: {start} – {end}",
    noQuotas: "Tu plan no tiene funciones medidas.",
    usedOfLimit: "{used} de {limit} usados",
    usedUnlimited: "{used} usados · ilimitado",
    remaining: "quedan {remaining}",
    percentUsed: "{percent} usado",
    stateOk: "Dentro del límite",
    stateNear: "Cerca del límite",
    stateExceeded: "Límite superado",
    stateUnlimited: "Ilimitado",
    stateNoAccess: "Límite alcanzado",
    meterLabel: "{feature}: {text}",
    chartTitle: "{feature}, uso por día y total en este periodo",
    chartLimit: "Límite {limit}",
    chartDayTitle: "{day}: {used} · total {cumulative} · periodo anterior {previous}",
    chartPreviousTotal: "{total} el periodo anterior",
    legendPerDay: "Por día (escala derecha)",
    legendCumulative: "Total hasta hoy",
    legendProjection: "Proyección a este ritmo",
    legendLimit: "Límite",
    legendPrevious: "Periodo anterior",
    showTable: "Mostrar tabla",
    tableDay: "Día",
    tableUsed: "Usado",
    tableCumulative: "Total",
    tablePrevious: "Periodo anterior, total",
    forecastUpgrade: "A este ritmo alcanzarás tu límite hacia el {day}, antes de que termine el periodo. Mejora tu plan para seguir sin interrupciones.",
    chartEmpty: "Aún no hay uso en este periodo.",
    chartTotal: "{total} en este periodo",
    chartUnavailable: "El uso diario no está disponible.",
    upgradeNearTitle: "Estás cerca de los límites de tu plan",
    upgradeExceededTitle: "Has agotado parte de tu plan",
    upgradeText: "{features}: mejora tu plan para seguir sin interrupciones.",
    upgradeAction: "Mejorar plan",
    apiRefused: "Este enlace indicaba otro sitio como servicio de uso. Se ha ignorado: tu uso se lee desde este sitio.",
    windowDay: "Hoy",
    windowWeek: "Esta semana",
    windowMonth: "Este mes",
    windowCycle: "Este ciclo de facturación",
    windowLifetime: "En total",
    windowRolling: "Últimas {length}",
    windowItem: "{window}: {figures}",
    dimensionItem: "{value}, {window}: {figures}",
    freesAt: "se libera {time}",
    units: new Map([
      ["uses", "usos"],
      ["tokens", "tokens"],
      ["requests", "solicitudes"],
      ["bytes", "bytes"],
      ["seconds", "segundos"],
      ["credits", "créditos"],
    ]),
    features: new Map([
      ["ai_content_generation", "Generación de contenido con IA"],
      ["chat_messages", "Mensajes de chat"],
      ["document_export", "Exportaciones de documentos"],
    ]),
  },
};

export const SUPPORTED_LANGUAGES = Object.keys(MESSAGES);

/** `object[key]` when `key` is the object's own property, else undefined (never an inherited member). */
export function own(object, key) {
  return object !== null && typeof object === "object" && Object.hasOwn(object, key) ? object[key] : undefined;
}

/** A feature key shown as words when no translation names it: underscores become spaces. */
function featureWords(key) {
  const words = key.replace(/_+/g, " ").trim();
  return words || key;
}

/** Whether two dates fall on the same day of the reader's calendar. */
function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** The page language: ?lang= when supported, else the browser's first supported language, else English. */
export function pickLanguage(queryLang, browserLanguages) {
  const candidates = [queryLang, ...(browserLanguages || [])].filter(Boolean);
  for (const candidate of candidates) {
    const base = String(candidate).toLowerCase().split("-")[0];
    if (SUPPORTED_LANGUAGES.includes(base)) return base;
  }
  return "en";
}

/**
 * A translator for one language: t(key, params), feature(key), and number/date formatting;
 * moment(date) is a time of day to the minute, with the day when it is not today.
 */
export function translator(lang) {
  const table = own(MESSAGES, lang) ?? MESSAGES.en;
  // Quantities are exact to 6 decimals: show them all rather than round 0.000001 to 0.
  const numbers = new Intl.NumberFormat(lang, { maximumFractionDigits: 6 });
  const percents = new Intl.NumberFormat(lang, { style: "percent", maximumFractionDigits: 1 });
  const days = new Intl.DateTimeFormat(lang, { day: "numeric", month: "short", timeZone: "UTC" });
  const clock = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  const minutes = new Intl.DateTimeFormat(lang, { hour: "2-digit", minute: "2-digit" });
  const datedMinutes = new Intl.DateTimeFormat(lang, { day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
  const t = (key, params = {}) => {
    const template = [own(table, key), own(MESSAGES.en, key)].find((text) => typeof text === "string") ?? key;
    return template.replace(/\{(\w+)\}/g, (_, name) => String(own(params, name) ?? ""));
  };
  // The unit in words, as an axis or an amount names it ("uses", "tokens").
  const unitName = (unit) => table.units.get(unit) ?? MESSAGES.en.units.get(unit) ?? unit;
  return {
    lang,
    t,
    feature: (key) => table.features.get(key) ?? MESSAGES.en.features.get(key) ?? featureWords(key),
    number: (value) => numbers.format(value),
    // Plain uses read as counts ("12 of 50 used"); other units are named ("1,250 tokens").
    amount: (value, unit) => {
      const shown = numbers.format(value);
      if (!unit || unit === "uses") return shown;
      return `${shown} ${unitName(unit)}`;
    },
    unitName,
    percent: (value) => percents.format(value / 100),
    day: (value) => days.format(new Date(value)),
    time: (value) => clock.format(value),
    moment: (value) => (sameDay(value, new Date()) ? minutes : datedMinutes).format(value),
  };
}

/** Fill every [data-i18n] element's text from the dictionary. */
export function translateStatic(root, t) {
  for (const element of root.querySelectorAll("[data-i18n]")) {
    element.textContent = t(element.dataset.i18n);
  }
}

// The JSON API client and the caller's token. The page only ever reads the caller's own data:
// no request names a user; the API derives the user from the token.

const TOKEN_KEY = "usagemeter.token";

/** Raised for any non-2xx answer; `status` is the HTTP status, 0 when the server could not be reached. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  get refused() {
    return this.status === 401 || this.status === 403;
  }
}

/**
 * Where the API lives: {base, refused}. The host's data-api-base attribute may name any URL (the host
 * wrote the page). The ?api= query parameter comes from whoever wrote the link, so it is resolved
 * exactly as the browser will resolve it for fetch (which drops tabs and newlines, reads backslashes as
 * slashes, skips extra slashes, …) and used only when the result is an http(s) URL on this page's own
 * origin; anything else is refused and the page reads its own origin, so the token never leaves it.
 */
export function apiBase(root, params, here = window.location) {
  const fromHost = root.dataset.apiBase;
  if (fromHost) return { base: fromHost.replace(/\/+$/, ""), refused: false };
  const fromQuery = params.get("api");
  if (!fromQuery) return { base: "", refused: false };
  const resolved = sameOriginUrl(fromQuery, here);
  if (resolved === null) return { base: "", refused: true };
  // Rebuilt from origin and path: no user info, query or fragment rides along into requests.
  return { base: `${resolved.origin}${resolved.pathname.replace(/\/+$/, "")}`, refused: false };
}

function sameOriginUrl(value, here) {
  let url;
  try {
    url = new URL(value, here.href);
  } catch {
    return null;
  }
  const web = url.protocol === "http:" || url.protocol === "https:";
  return web && url.origin === here.origin ? url : null;
}

/** Take a token from the #token= fragment into session storage and strip it from the address bar. */
export function adoptTokenFromFragment() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  const token = fragment.get("token");
  if (!token) return;
  storeToken(token);
  fragment.delete("token");
  const rest = fragment.toString();
  const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : "");
  window.history.replaceState(window.history.state, "", url);
}

export function storedToken() {
  return window.sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  window.sessionStorage.setItem(TOKEN_KEY, token.trim());
}

export function forgetToken() {
  window.sessionStorage.removeItem(TOKEN_KEY);
}

/** The token's display name (`name` claim, else `sub`); the server still decides whose data is read. */
export function tokenDisplayName(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(payload), (c) => c.charCodeAt(0))));
    return typeof claims.name === "string" && claims.name ? claims.name : null;
  } catch {
    return null;
  }
}

/** A client bound to one API base and token. */
export function apiClient(base, token) {
  async function get(path, { auth = true } = {}) {
    const headers = { Accept: "application/json" };
    if (auth) headers.Authorization = `Bearer ${token}`;
    let response;
    try {
      response = await fetch(`${base}/api/v1${path}`, {
        headers,
        cache: "no-store",
        credentials: "omit",
        // The API never redirects; following one could carry the request to another host.
        redirect: "error",
      });
    } catch (error) {
      throw new ApiError(0, error.message || "network error");
    }
    if (!response.ok) throw new ApiError(response.status, await errorDetail(response));
    return response.json();
  }

  return {
    quotas: () => get("/quotas"),
    usage: (featureKey, period) =>
      get(`/analytics/usage/${encodeURIComponent(featureKey)}?period=${encodeURIComponent(period)}`),
    usageBetween: (featureKey, from, to) =>
      get(`/analytics/usage/${encodeURIComponent(featureKey)}?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`),
    health: () => get("/health", { auth: false }),
    dashboardMetrics: () => get("/analytics/dashboard-metrics"),
  };
}

async function errorDetail(response) {
  try {
    const body = await response.json();
    if (typeof body.detail === "string") return body.detail;
  } catch {
    // a body that is not JSON: the status line says enough
  }
  return `HTTP ${response.status}`;
}

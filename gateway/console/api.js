// The console's JSON API (/console/api/...). Actions carry the session's CSRF token; errors
// come back in Nakama's shape {"code","message"} and are thrown as ApiError.

let csrfToken = "";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function setCSRF(token) { csrfToken = token || ""; }

async function call(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (method !== "GET") {
    headers["Content-Type"] = "application/json";
    headers["X-CSRF-Token"] = csrfToken;
  }
  const resp = await fetch("/console/api/" + path, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = {};
  try { data = await resp.json(); } catch { /* empty or not JSON */ }
  if (!resp.ok) {
    throw new ApiError(resp.status, data.code, data.message || ("HTTP " + resp.status));
  }
  return data;
}

export const api = {
  me: () => call("GET", "me"),
  login: (username, password) => call("POST", "login", { username, password }),
  logout: () => call("POST", "logout", {}),
  overview: () => call("GET", "overview"),
  users: (q) => call("GET", "users?q=" + encodeURIComponent(q)),
  disconnectSession: (id) => call("POST", "sessions/" + encodeURIComponent(id) + "/disconnect", { reason: "disconnected by operator" }),
  disconnectUser: (id) => call("POST", "users/" + encodeURIComponent(id) + "/disconnect", { reason: "disconnected by operator" }),
  logoutUser: (id) => call("POST", "users/" + encodeURIComponent(id) + "/logout", {}),
  closeGameSession: (id) => call("POST", "game-sessions/" + encodeURIComponent(id) + "/close", {}),
};

// The operator's console: login, the cluster overview (polled every 2 s) and the user
// search with its actions. Everything it shows comes from /console/api (api.js).

import { api, ApiError, setCSRF } from "./api.js";
import { Sparkline } from "./chart.js";

const $ = (id) => document.getElementById(id);
const POLL_MS = 2000;

let pollTimer = 0;
let lastSample = null; // {t, nodes: {id: {connects, disconnects}}}
let charts = null;
let lastQuery = "";

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

function show(page) {
  for (const p of ["login", "overview", "users"]) $(p + "-page").hidden = p !== page;
  $("nav").hidden = page === "login";
  $("nav-overview").classList.toggle("active", page === "overview");
  $("nav-users").classList.toggle("active", page === "users");
  clearTimeout(pollTimer);
  if (page === "overview") poll();
}

function age(ms) {
  if (ms < 1000) return ms + " ms ago";
  if (ms < 120000) return (ms / 1000).toFixed(1) + " s ago";
  return Math.round(ms / 60000) + " min ago";
}

function when(iso) {
  const d = new Date(iso);
  return isNaN(d) ? "" : d.toLocaleString();
}

// Any 401 from the API means the session ended: back to the login page.
function handle(err, target) {
  if (err instanceof ApiError && err.status === 401) {
    show("login");
    return;
  }
  if (target) {
    target.textContent = err.message;
    target.hidden = false;
  }
}

// ---- login ----

async function start() {
  try {
    const me = await api.me();
    loggedIn(me);
  } catch (err) {
    show("login");
    if (!(err instanceof ApiError && err.status === 401)) handle(err, $("login-error"));
  }
}

function loggedIn(me) {
  setCSRF(me.csrf_token);
  $("whoami").textContent = `${me.username} on ${me.node}`;
  route();
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("login-error").hidden = true;
  try {
    const me = await api.login($("login-username").value, $("login-password").value);
    $("login-password").value = "";
    loggedIn(me);
  } catch (err) {
    const msg = err instanceof ApiError && err.status === 401 ? "Wrong username or password." : err.message;
    $("login-error").textContent = msg;
    $("login-error").hidden = false;
  }
});

$("logout").addEventListener("click", async () => {
  try { await api.logout(); } catch { /* the session is gone either way */ }
  setCSRF("");
  show("login");
});

// ---- routing ----

function route() {
  const page = location.hash === "#users" ? "users" : "overview";
  show(page);
}
window.addEventListener("hashchange", () => { if (!$("nav").hidden) route(); });

// ---- overview ----

async function poll() {
  try {
    renderOverview(await api.overview());
    $("overview-error").hidden = true;
  } catch (err) {
    handle(err, $("overview-error"));
    if (err instanceof ApiError && err.status === 401) return;
  }
  if (!$("overview-page").hidden) pollTimer = setTimeout(poll, POLL_MS);
}

function renderOverview(o) {
  if (!charts) charts = { connects: new Sparkline($("chart-connects")), disconnects: new Sparkline($("chart-disconnects")) };
  const t = Date.parse(o.time);
  const sample = { t, nodes: {} };
  let sockets = 0, connRate = 0, discRate = 0, haveRate = false;
  const body = $("nodes-body");
  body.replaceChildren();
  for (const n of o.nodes) {
    const tr = el("tr");
    tr.dataset.node = n.node;
    const name = el("td");
    name.append(el("strong", n.node));
    if (n.self) name.append(el("span", " (this node)", "empty"));
    tr.append(name, el("td", n.address));
    let cr = "–", dr = "–";
    if (n.stats) {
      sockets += n.stats.sockets;
      sample.nodes[n.node] = n.stats;
      const prev = lastSample && lastSample.nodes[n.node];
      const dt = lastSample ? (t - lastSample.t) / 1000 : 0;
      if (prev && dt > 0) {
        const c = Math.max(0, n.stats.connects - prev.connects) / dt;
        const d = Math.max(0, n.stats.disconnects - prev.disconnects) / dt;
        connRate += c; discRate += d; haveRate = true;
        cr = c.toFixed(1); dr = d.toFixed(1);
      }
      tr.append(el("td", n.stats.sockets, "sockets"));
    } else {
      sockets += n.sessions;
      tr.append(el("td", `${n.sessions} at last heartbeat (${n.stats_error || "no answer"})`, "sockets down"));
    }
    tr.append(el("td", age(n.heartbeat_age_ms)), el("td", cr), el("td", dr), el("td", when(n.started_at)));
    body.append(tr);
  }
  lastSample = sample;
  $("nodes-table").hidden = o.nodes.length === 0;
  $("nodes-empty").hidden = o.nodes.length !== 0;
  if (o.registry_error) {
    $("overview-error").textContent = o.registry_error;
    $("overview-error").hidden = false;
  }
  $("stat-nodes").textContent = o.nodes.length;
  $("stat-sockets").textContent = sockets;
  $("stat-mode").textContent = o.mode;
  const redis = $("stat-redis");
  if (!o.redis) {
    redis.textContent = "none (embedded)";
    redis.className = "value empty";
  } else if (o.redis.up) {
    redis.textContent = `up, ${o.redis.ping_ms.toFixed(1)} ms`;
    redis.className = "value up";
  } else {
    redis.textContent = "down";
    redis.title = o.redis.error || "";
    redis.className = "value down";
  }
  if (haveRate) {
    charts.connects.push(connRate);
    charts.disconnects.push(discRate);
    $("rate-connects").textContent = connRate.toFixed(1) + " /s";
    $("rate-disconnects").textContent = discRate.toFixed(1) + " /s";
  }
}

// ---- users ----

$("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  search($("search-q").value.trim());
});

function message(text, isError) {
  const m = $("search-message");
  m.textContent = text;
  m.className = isError ? "error" : "info";
  m.hidden = !text;
}

async function search(q, keepMessage) {
  lastQuery = q;
  if (!keepMessage) message("");
  const results = $("search-results");
  try {
    const { users } = await api.users(q);
    results.replaceChildren();
    if (users.length === 0) {
      results.append(el("p", `No user matches “${q}”.`, "empty"));
      return;
    }
    for (const u of users) results.append(renderUser(u));
  } catch (err) {
    handle(err);
    message(err.message, true);
  }
}

function renderUser(u) {
  const a = u.account;
  const card = $("user-template").content.firstElementChild.cloneNode(true);
  card.dataset.user = a.id;
  card.querySelector(".user-name").textContent = a.username;
  const dl = card.querySelector(".account");
  const rows = [["User id", a.id], ["Username", a.username], ["Device ids", (a.device_ids || []).join(", ")],
    ["Custom id", a.custom_id], ["Email", a.email], ["Created", when(a.create_time)]];
  for (const [k, v] of rows) {
    if (!v) continue;
    dl.append(el("dt", k), el("dd", v));
  }
  card.querySelector(".disconnect-user").addEventListener("click", () =>
    act(`Disconnect every socket of ${a.username} on every node?`, () => api.disconnectUser(a.id),
      (r) => `Disconnected ${r.disconnected} socket(s) of ${a.username}.`));
  card.querySelector(".logout-user").addEventListener("click", () =>
    act(`Log ${a.username} out? Every token issued to them until now is refused on every node; open sockets stay open.`,
      () => api.logoutUser(a.id), () => `${a.username} is logged out: their tokens are revoked.`));
  if (u.sessions_error) {
    const e = card.querySelector(".sessions-error");
    e.textContent = u.sessions_error;
    e.hidden = false;
  }
  const tbody = card.querySelector(".sessions tbody");
  for (const s of u.sessions) {
    const tr = el("tr");
    tr.dataset.session = s.session_id;
    const vars = Object.entries(s.vars || {}).map(([k, v]) => `${k}=${v}`).join(", ");
    const status = s.status === undefined ? "not appearing online" : (s.status || "online");
    const btn = el("button", "Disconnect", "danger disconnect-session");
    btn.type = "button";
    btn.addEventListener("click", () =>
      act(`Disconnect socket ${s.session_id} on node ${s.node}?`, () => api.disconnectSession(s.session_id),
        () => `Socket ${s.session_id} disconnected.`));
    const id = el("td");
    id.append(el("code", s.session_id));
    const cell = el("td");
    cell.append(btn);
    tr.append(id, el("td", s.node), el("td", status), el("td", vars), el("td", when(s.connected_at)), el("td", when(s.last_seen_at)), cell);
    tbody.append(tr);
  }
  card.querySelector(".sessions").hidden = u.sessions.length === 0;
  card.querySelector(".sessions-empty").hidden = u.sessions.length !== 0;
  renderPlay(card, u);
  return card;
}

// renderPlay fills the card's game sessions (each with a close action) and play session.
function renderPlay(card, u) {
  if (u.play_error) {
    const e = card.querySelector(".play-error");
    e.textContent = u.play_error;
    e.hidden = false;
  }
  card.querySelector(".play-session").textContent = u.play_session
    ? `Exclusive play session active, expires ${when(u.play_session.expires_at)} unless heartbeated.`
    : "No active exclusive play session.";
  const games = u.game_sessions || [];
  const tbody = card.querySelector(".games tbody");
  for (const g of games) {
    const tr = el("tr");
    tr.dataset.gameSession = g.game_session_id;
    const btn = el("button", "Close", "danger close-game");
    btn.type = "button";
    btn.addEventListener("click", () =>
      act(`Close game session ${g.game_session_id} (${g.game_id}, ${g.currency})? Its user's sockets are notified.`,
        () => api.closeGameSession(g.game_session_id), () => `Game session ${g.game_session_id} closed.`));
    const id = el("td");
    id.append(el("code", g.game_session_id));
    const cell = el("td");
    cell.append(btn);
    tr.append(id, el("td", g.game_id), el("td", g.currency), el("td", g.external_session_id),
      el("td", when(g.created_at)), el("td", when(g.expires_at)), el("td", g.version), cell);
    tbody.append(tr);
  }
  card.querySelector(".games").hidden = games.length === 0;
  card.querySelector(".games-empty").hidden = games.length !== 0;
}

// act asks for confirmation, runs the action, reports its outcome and refreshes the search.
function act(question, run, done) {
  const dlg = $("confirm");
  $("confirm-text").textContent = question;
  dlg.returnValue = "";
  dlg.onclose = async () => {
    if (dlg.returnValue !== "ok") return;
    try {
      const r = await run();
      message(done(r), false);
    } catch (err) {
      handle(err);
      message(err.message, true);
    }
    // A disconnected socket is listed until its close handshake ends: look again shortly.
    if (lastQuery) {
      const q = lastQuery;
      await search(q, true);
      setTimeout(() => { if (lastQuery === q) search(q, true); }, 1000);
    }
  };
  dlg.showModal();
}

start();

// Compatibility test: the real @heroiclabs/nakama-js client, used as a game uses it, against
// a sessiongate gateway. Run by gateway/nakamajs_test.go; by hand:
//
//   NAKAMA_HOST=127.0.0.1 NAKAMA_PORT=7350 node session_test.mjs
//
// Env: NAKAMA_HOST (default 127.0.0.1), NAKAMA_PORT (default 7350), NAKAMA_SERVER_KEY
// (default "defaultkey"). The server must run with the default token lifetimes (session 60s,
// refresh 1h). Exit code 0 when every check passes, 1 otherwise.
//
// Facts about nakama-js 2.8.0 these checks rely on (dist/nakama-js.esm.mjs):
// - URLs are basePath + path + "?" + "k=v&" per defined query parameter, so they end in "?" or
//   "&" (".../authenticate/device?" or ".../device?create=true&username=x&").
// - Bodies: device/custom {"id","vars"}, email {"email","password","vars"} (vars dropped by
//   JSON.stringify when undefined; authenticateCustom defaults it to {}), refresh
//   {"token": <refresh token>, "vars": {}|{...}}, logout {"refresh_token","token"}.
// - Authorization: "Basic base64(serverkey:)" before a session, "Bearer <token>" after.
// - The Session is built from the response's token, refresh_token and created (absent =
//   false) and from the JWT payload only: uid -> user_id, usn -> username, vrs -> vars,
//   exp -> expires_at (the refresh token's exp -> refresh_expires_at). The payload is decoded
//   with atob after dropping every character outside [A-Za-z0-9+/], so '-' and '_' of
//   base64url are lost: payloads must not need them (true of Nakama's claims with ASCII values).
// - A non-2xx answer rejects the promise with the fetch Response itself (status, json()).
// - With autoRefreshSession (default true) every session call first calls sessionRefresh when
//   the session token expires within expiredTimespanMs (5 min). With the default 60s token
//   lifetime that is every call, so getAccount/sessionLogout always refresh first.
// - sessionRefresh(session, vars = {}) updates the given Session in place and returns it.
// - Each request races a setTimeout of `timeout` ms that is never cleared, so the process
//   exits explicitly at the end instead of waiting for the event loop to drain.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { WebSocket } from "ws";
import { Client, Session } from "@heroiclabs/nakama-js";

// nakama-js's socket uses the global WebSocket, which Node 20 lacks.
globalThis.WebSocket ??= WebSocket;

const host = process.env.NAKAMA_HOST || "127.0.0.1";
const port = process.env.NAKAMA_PORT || "7350";
const serverKey = process.env.NAKAMA_SERVER_KEY || "defaultkey";

// The client a game creates: default timeout and session auto-refresh.
const client = new Client(serverKey, host, port, false);
// The same without auto-refresh, to hit a route with exactly the token given.
const direct = new Client(serverKey, host, port, false, 7000, false);

const run = randomUUID().replaceAll("-", "").slice(0, 12);
const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const nowSec = () => Math.floor(Date.now() / 1000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// expectRejected awaits p, which must reject with the Response of a `status` answer from
// `path` whose JSON body carries the gRPC `code` (and `message`, when given).
async function expectRejected(p, { status, code, path, message }) {
  let err;
  try {
    const v = await p;
    assert.fail(`expected HTTP ${status} from ${path}, got success: ${JSON.stringify(v)}`);
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    err = e;
  }
  assert.ok(err instanceof Response, `rejection is not a fetch Response: ${String(err)}`);
  const body = await err.json();
  const where = `${err.status} ${err.url} ${JSON.stringify(body)}`;
  assert.equal(err.status, status, `status: ${where}`);
  assert.equal(new URL(err.url).pathname, path, `path: ${where}`);
  assert.equal(body.code, code, `code: ${where}`);
  if (message !== undefined) assert.equal(body.message, message, `message: ${where}`);
  assert.equal(typeof body.message, "string", `message: ${where}`);
  if (status === 401) assert.ok(err.headers.get("www-authenticate"), `WWW-Authenticate: ${where}`);
  return err;
}

function decodeJwt(tok) {
  const parts = tok.split(".");
  assert.equal(parts.length, 3, `not a JWT: ${tok}`);
  return {
    header: JSON.parse(Buffer.from(parts[0], "base64url").toString()),
    claims: JSON.parse(Buffer.from(parts[1], "base64url").toString()),
  };
}

// checkSession asserts what nakama-js exposes of a fresh session (60s token, 1h refresh).
function checkSession(s, { created, vars, userId, username }) {
  assert.ok(s instanceof Session);
  assert.equal(s.created, created, "session.created");
  assert.match(s.user_id, uuidRe, "session.user_id");
  if (userId !== undefined) assert.equal(s.user_id, userId, "session.user_id");
  assert.equal(typeof s.username, "string");
  assert.ok(s.username.length > 0, "session.username");
  if (username !== undefined) assert.equal(s.username, username, "session.username");
  assert.deepEqual(s.vars, vars, "session.vars");

  const now = nowSec();
  assert.ok(Number.isInteger(s.expires_at), `expires_at ${s.expires_at}`);
  assert.ok(s.expires_at > now && s.expires_at <= now + 61, `expires_at ${s.expires_at}, now ${now}`);
  assert.ok(s.refresh_expires_at > now + 3500 && s.refresh_expires_at <= now + 3601,
    `refresh_expires_at ${s.refresh_expires_at}, now ${now}`);
  assert.equal(s.isexpired(now), false, "isexpired(now)");
  assert.equal(s.isexpired(s.expires_at + 1), true, "isexpired(after exp)");
  assert.equal(s.isrefreshexpired(now), false, "isrefreshexpired(now)");

  // Same claims in both tokens, Nakama's names, HS256, one login chain (tid).
  const tok = decodeJwt(s.token);
  const ref = decodeJwt(s.refresh_token);
  assert.equal(tok.header.alg, "HS256");
  assert.equal(ref.header.alg, "HS256");
  assert.notEqual(s.token, s.refresh_token);
  assert.match(tok.claims.tid, uuidRe, "tid");
  assert.equal(ref.claims.tid, tok.claims.tid, "refresh tid");
  assert.equal(tok.claims.uid, s.user_id);
  assert.equal(ref.claims.uid, s.user_id);
  assert.equal(tok.claims.usn, s.username);
  assert.deepEqual(ref.claims.vrs, tok.claims.vrs);
  assert.ok(Number.isInteger(tok.claims.iat) && tok.claims.iat <= tok.claims.exp, "iat");
  return tok.claims;
}

function checkAccount(acct, s) {
  assert.equal(acct.user?.id, s.user_id, "account.user.id");
  assert.equal(acct.user?.username, s.username, "account.user.username");
  assert.ok(!Number.isNaN(Date.parse(acct.user.create_time)), `create_time ${acct.user.create_time}`);
  const text = JSON.stringify(acct).toLowerCase();
  assert.ok(!text.includes("password") && !text.includes("$2a$"), `account leaks a password: ${text}`);
}

const results = [];
async function check(name, fn) {
  const start = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${Date.now() - start} ms)`);
  } catch (e) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name} (${Date.now() - start} ms)`);
    let detail = e?.stack || String(e);
    if (e instanceof Response) {
      detail = `unexpected HTTP ${e.status} from ${e.url}: ${await e.text().catch(() => "")}`;
    }
    console.log(detail.replace(/^/gm, "     "));
  }
}

// ---------------------------------------------------------------------------------------------

const deviceId = `device-${run}-0123456789`;
const customId = `custom-${run}`;
const customUsername = `cu${run}`;
const email = `player.${run}@example.com`;
const password = "correct horse battery";
let deviceSession, customSession, emailSession;

await check("authenticateDevice creates an account with vars", async () => {
  const vars = { platform: "node", build: "42" };
  deviceSession = await client.authenticateDevice(deviceId, true, undefined, vars);
  checkSession(deviceSession, { created: true, vars });
  assert.match(deviceSession.username, /^[A-Za-z]+$/, "generated username");
});

await check("authenticateDevice again (create omitted) finds it, created false, no vars", async () => {
  const s = await client.authenticateDevice(deviceId);
  const c = checkSession(s, { created: false, vars: undefined, userId: deviceSession.user_id, username: deviceSession.username });
  assert.notEqual(c.tid, decodeJwt(deviceSession.token).claims.tid, "each authenticate starts a new tid");
});

await check("authenticateDevice create=false for an unknown device is 404 code 5", async () => {
  await expectRejected(client.authenticateDevice(`unknown-${run}-0123456789`, false),
    { status: 404, code: 5, path: "/v2/account/authenticate/device" });
});

await check("authenticateDevice with a too short id is 400 code 3", async () => {
  await expectRejected(client.authenticateDevice("short"),
    { status: 400, code: 3, path: "/v2/account/authenticate/device" });
});

await check("authenticateCustom creates with a chosen username, then finds it", async () => {
  customSession = await client.authenticateCustom(customId, true, customUsername, { tier: "gold" });
  checkSession(customSession, { created: true, vars: { tier: "gold" }, username: customUsername });
  const again = await client.authenticateCustom(customId, false);
  // authenticateCustom sends "vars": {} by default: no vrs claim, as Nakama.
  checkSession(again, { created: false, vars: undefined, userId: customSession.user_id, username: customUsername });
});

await check("authenticateCustom with a taken username is 409 code 6", async () => {
  await expectRejected(client.authenticateCustom(`other-${run}`, true, customUsername),
    { status: 409, code: 6, path: "/v2/account/authenticate/custom" });
});

await check("authenticateEmail creates, logs in again, and lowercases the email", async () => {
  emailSession = await client.authenticateEmail(email, password, true, undefined, { lang: "fr" });
  checkSession(emailSession, { created: true, vars: { lang: "fr" } });
  const again = await client.authenticateEmail(email, password);
  checkSession(again, { created: false, vars: undefined, userId: emailSession.user_id, username: emailSession.username });
  const upper = await client.authenticateEmail(email.toUpperCase(), password, false);
  checkSession(upper, { created: false, vars: undefined, userId: emailSession.user_id });
});

await check("authenticateEmail without email logs in by username", async () => {
  const s = await client.authenticateEmail("", password, false, emailSession.username);
  checkSession(s, { created: false, vars: undefined, userId: emailSession.user_id, username: emailSession.username });
});

await check("authenticateEmail with a wrong password is 401 code 16", async () => {
  await expectRejected(client.authenticateEmail(email, "wrong password!"),
    { status: 401, code: 16, path: "/v2/account/authenticate/email", message: "Invalid credentials." });
});

await check("authenticate with a wrong server key is 401 code 16", async () => {
  const bad = new Client("notthekey", host, port, false);
  await expectRejected(bad.authenticateDevice(deviceId),
    { status: 401, code: 16, path: "/v2/account/authenticate/device" });
});

await check("getAccount shows the linked device, custom id and email", async () => {
  const d = await direct.getAccount(deviceSession);
  checkAccount(d, deviceSession);
  assert.deepEqual(d.devices?.map((x) => x.id), [deviceId], "devices");
  assert.equal(d.email, undefined);
  assert.equal(d.custom_id, undefined);

  const c = await direct.getAccount(customSession);
  checkAccount(c, customSession);
  assert.equal(c.custom_id, customId, "custom_id");
  assert.equal(c.devices, undefined);

  const e = await client.getAccount(emailSession); // as a game: refreshes first, then reads
  checkAccount(e, emailSession);
  assert.equal(e.email, email, "email");
});

await check("sessionRefresh with new vars replaces them; without vars keeps them", async () => {
  const s = await client.authenticateDevice(deviceId, true, undefined, { a: "1" });
  const before = decodeJwt(s.token).claims;
  const oldToken = s.token;
  const out = await client.sessionRefresh(s, { level: "7", mode: "ranked" });
  assert.equal(out, s, "sessionRefresh updates and returns the same Session");
  assert.notEqual(s.token, oldToken, "new session token");
  const after = checkSession(s, { created: false, vars: { level: "7", mode: "ranked" }, userId: deviceSession.user_id, username: deviceSession.username });
  assert.equal(after.tid, before.tid, "refresh keeps the tid");
  assert.deepEqual(decodeJwt(s.refresh_token).claims.vrs, { level: "7", mode: "ranked" }, "refresh token vars");

  await client.sessionRefresh(s); // nakama-js sends "vars": {}
  checkSession(s, { created: false, vars: { level: "7", mode: "ranked" }, userId: deviceSession.user_id });

  checkAccount(await direct.getAccount(s), s);
});

await check("sessionRefresh with a session token instead of a refresh token is 401", async () => {
  const s = await client.authenticateDevice(deviceId);
  const wrong = Session.restore(s.token, s.token);
  await expectRejected(client.sessionRefresh(wrong),
    { status: 401, code: 16, path: "/v2/account/session/refresh" });
});

await check("sessionLogout, then getAccount and sessionRefresh are 401 (no auto-refresh)", async () => {
  const s = await direct.authenticateCustom(customId);
  assert.equal(await direct.sessionLogout(s, s.token, s.refresh_token), true);
  await expectRejected(direct.getAccount(s), { status: 401, code: 16, path: "/v2/account" });
  await expectRejected(direct.sessionRefresh(s), { status: 401, code: 16, path: "/v2/account/session/refresh" });
  // The game's client refreshes before getAccount: that refresh is what gets the 401.
  await expectRejected(client.getAccount(s), { status: 401, code: 16, path: "/v2/account/session/refresh" });
  // Another login of the same user is unaffected.
  checkAccount(await direct.getAccount(customSession), customSession);
});

await check("sessionLogout as a game calls it later in the session, then getAccount and sessionRefresh are 401", async () => {
  // Games log out long after login. With the 60s token, nakama-js refreshes inside
  // sessionLogout before sending it, and the logout body carries the token strings the game
  // passed (the pre-refresh pair). On Nakama this ends the whole login (token id), including
  // the pair from that refresh. Crossing a second boundary makes the refresh issue tokens
  // with a later iat than the ones named in the logout.
  const s = await client.authenticateEmail(email, password);
  const tid = decodeJwt(s.token).claims.tid;
  await sleep(1050 - (Date.now() % 1000));
  const [token, refreshToken] = [s.token, s.refresh_token];
  assert.equal(await client.sessionLogout(s, token, refreshToken), true);
  assert.notEqual(s.token, token, "nakama-js refreshed the session before logging out");
  assert.equal(decodeJwt(s.token).claims.tid, tid, "same login chain");
  await expectRejected(direct.getAccount(s), { status: 401, code: 16, path: "/v2/account" });
  await expectRejected(client.getAccount(s), { status: 401, code: 16, path: "/v2/account/session/refresh" });
  await expectRejected(client.sessionRefresh(s), { status: 401, code: 16, path: "/v2/account/session/refresh" });
});

await check("sessionLogout with no tokens ends every session of the user", async () => {
  const s1 = await direct.authenticateDevice(deviceId);
  const s2 = await direct.authenticateDevice(deviceId);
  assert.equal(await direct.sessionLogout(s1, "", ""), true);
  await expectRejected(direct.getAccount(s1), { status: 401, code: 16, path: "/v2/account" });
  await expectRejected(direct.getAccount(s2), { status: 401, code: 16, path: "/v2/account" });
  await expectRejected(direct.sessionRefresh(s2), { status: 401, code: 16, path: "/v2/account/session/refresh" });
  // A new login works at once.
  const s3 = await client.authenticateDevice(deviceId);
  checkAccount(await direct.getAccount(s3), s3);
});

// ---------------------------------------------------------------------------------------------

const failed = results.filter((r) => !r.ok);
console.log(`\n${results.length - failed.length}/${results.length} checks passed`);
for (const r of failed) console.log(`failed: ${r.name}`);
process.exit(failed.length === 0 ? 0 : 1);

// Compatibility test: the real @heroiclabs/nakama-js 2.8.0 socket against a sessiongate
// gateway, in Nakama's json format or, with NAKAMA_SOCKET_FORMAT=protobuf, through the protobuf
// adapter @heroiclabs/nakama-js-protobuf 1.4.0. Run by TestNakamaJSSocket and
// TestNakamaJSSocketProtobuf in gateway/nakamajs_test.go; by hand:
//
//   NAKAMA_HOST=127.0.0.1 NAKAMA_PORT=7350 [NAKAMA_SOCKET_FORMAT=protobuf] node socket_test.mjs
//
// Env: NAKAMA_HOST (default 127.0.0.1), NAKAMA_PORT (default 7350), NAKAMA_SERVER_KEY
// (default "defaultkey"), NAKAMA_SOCKET_FORMAT (json or protobuf, default json). The server must issue session tokens that live longer than 5 minutes
// (the test uses 2h): nakama-js refreshes a session that expires within 5 minutes before each
// call, and this test must log out the very token its socket connected with.
//
// Facts about nakama-js 2.8.0 these checks rely on (dist/nakama-js.esm.mjs):
// - connect(session, createStatus) opens ws[s]://host:port/ws?lang=en&status=<bool>&token=<token>
//   with the global WebSocket (Node 20 has none: `ws` stands in), and resolves on open.
// - On open it starts pingPong(): send {"ping":{},"cid":n} with a timeout of
//   heartbeatTimeoutMs (default 10 s, setHeartbeatTimeoutMs changes it), and once the pong
//   arrives schedule the next ping heartbeatTimeoutMs later. A missing pong calls
//   onheartbeattimeout() and closes the socket.
// - Replies are matched by cid; a reply with "error" rejects the call with the error object.
//   Messages without cid are dispatched by key: status_presence_event -> onstatuspresence.
// - followUsers(ids) sends status_follow {user_ids} and resolves to the reply's "status";
//   updateStatus(s) sends status_update {status}.
// - Every send races a setTimeout that is never cleared, so the process exits explicitly.
// - createSocket(useSSL, verbose, adapter) takes the adapter. WebSocketAdapterPb (nakama-js-protobuf)
//   connects with &format=protobuf, sets binaryType "arraybuffer", encodes each envelope the
//   client sends with Envelope.fromJSON + encode, and hands the client Envelope.toJSON of each
//   binary message it receives, so the client code above it is the same.

import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { WebSocket } from "ws";
import { Client } from "@heroiclabs/nakama-js";
import { WebSocketAdapterPb } from "@heroiclabs/nakama-js-protobuf";

globalThis.WebSocket ??= WebSocket;

const host = process.env.NAKAMA_HOST || "127.0.0.1";
const port = process.env.NAKAMA_PORT || "7350";
const serverKey = process.env.NAKAMA_SERVER_KEY || "defaultkey";
const format = process.env.NAKAMA_SOCKET_FORMAT || "json";
assert.ok(format === "json" || format === "protobuf", `NAKAMA_SOCKET_FORMAT=${format}: json or protobuf`);
console.log(`socket format: ${format}`);

// The protobuf adapter hands the client Envelope.toJSON of each message, which fills in the
// fields a message left empty (an error's context as {}, an event's joins as []), where the
// json format omits them: what the client sees of an empty field differs by format.
const emptyMap = format === "protobuf" ? {} : undefined;
const emptyList = format === "protobuf" ? [] : undefined;

// newSocket is a nakama-js socket in the format under test.
const newSocket = () => client.createSocket(false, false, format === "protobuf" ? new WebSocketAdapterPb() : undefined);

const client = new Client(serverKey, host, port, false);
const run = randomUUID().replaceAll("-", "").slice(0, 12);
const uuidRe = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const heartbeatMs = 400;

async function waitUntil(what, cond, timeoutMs = 3000) {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
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
    let detail = e?.stack || (typeof e === "object" ? JSON.stringify(e) : String(e));
    if (e instanceof Response) {
      detail = `unexpected HTTP ${e.status} from ${e.url}: ${await e.text().catch(() => "")}`;
    }
    console.log(detail.replace(/^/gm, "     "));
  }
}

// instrument records what a socket sends and receives and how it ends.
function instrument(socket) {
  const rec = { pings: 0, pongs: 0, statusEvents: [], disconnected: null, heartbeatTimeout: false, text: 0, binary: 0 };
  socket.setHeartbeatTimeoutMs(heartbeatMs);
  socket.ondisconnect = (evt) => { rec.disconnected = evt ?? {}; };
  socket.onheartbeattimeout = () => { rec.heartbeatTimeout = true; };
  socket.onstatuspresence = (evt) => { rec.statusEvents.push(evt); };
  const adapter = socket.adapter;
  const send = adapter.send.bind(adapter);
  adapter.send = (msg) => {
    if (msg.ping) rec.pings++;
    send(msg);
  };
  return rec;
}

// ---------------------------------------------------------------------------------------------

let sessionA, sessionB, socketA, socketB, recA, recB;

await check("authenticate two users (tokens outlive the auto-refresh window)", async () => {
  sessionA = await client.authenticateDevice(`socket-a-${run}-0123456789`, true);
  sessionB = await client.authenticateDevice(`socket-b-${run}-0123456789`, true);
  const now = Date.now() / 1000;
  for (const s of [sessionA, sessionB]) {
    assert.ok(s.expires_at > now + 600, `token expires at ${s.expires_at}, now ${now}: too soon for this test`);
  }
});

await check("connect(session, true) opens the socket", async () => {
  socketA = newSocket();
  recA = instrument(socketA);
  assert.equal(await socketA.connect(sessionA, true, 5000), sessionA);
  socketB = newSocket();
  recB = instrument(socketB);
  await socketB.connect(sessionB, true, 5000);
  assert.ok(socketA.adapter.isOpen() && socketB.adapter.isOpen());
  for (const [socket, rec] of [[socketA, recA], [socketB, recB]]) {
    const ws = socket.adapter._socket; // the underlying WebSocket of either adapter
    assert.equal(new URL(ws.url).searchParams.get("format"), format === "protobuf" ? "protobuf" : null);
    ws.addEventListener("message", (evt) => { rec[typeof evt.data === "string" ? "text" : "binary"]++; });
  }
});

await check("the ping/pong heartbeat keeps the socket open", async () => {
  const before = recA.pings;
  await sleep(5 * heartbeatMs + 200);
  assert.ok(recA.pings - before >= 4, `only ${recA.pings - before} heartbeats in ${5 * heartbeatMs + 200} ms`);
  assert.equal(recA.heartbeatTimeout, false, "heartbeat timed out");
  assert.equal(recA.disconnected, null, `disconnected: ${JSON.stringify(recA.disconnected)}`);
  assert.ok(socketA.adapter.isOpen(), "socket closed");
});

await check("followUsers returns the presence of an online user", async () => {
  const status = await socketA.followUsers([sessionB.user_id]);
  assert.ok(Array.isArray(status.presences), `status ${JSON.stringify(status)}`);
  assert.equal(status.presences.length, 1, `presences ${JSON.stringify(status.presences)}`);
  const p = status.presences[0];
  assert.equal(p.user_id, sessionB.user_id);
  assert.equal(p.username, sessionB.username);
  assert.match(p.session_id, uuidRe);
  assert.equal(p.status, "");
  // Unknown users are ignored, as Nakama does.
  const none = await socketA.followUsers([randomUUID()]);
  assert.deepEqual(none.presences ?? [], []);
});

await check("followUsers with a malformed id is rejected with error 3", async () => {
  let err;
  try {
    await socketA.followUsers(["not-a-uuid"]);
  } catch (e) {
    err = e;
  }
  assert.deepEqual(err, { code: 3, message: "Invalid user identifier", ...(emptyMap && { context: emptyMap }) });
  assert.ok(socketA.adapter.isOpen(), "an error must not close the socket");
});

await check("updateStatus reaches the follower's onstatuspresence", async () => {
  recA.statusEvents.length = 0;
  await socketB.updateStatus("playing");
  await waitUntil("A's status event", () => recA.statusEvents.length > 0);
  const evt = recA.statusEvents[0];
  assert.equal(evt.joins?.length, 1, JSON.stringify(evt));
  assert.equal(evt.joins[0].user_id, sessionB.user_id);
  assert.equal(evt.joins[0].username, sessionB.username);
  assert.equal(evt.joins[0].status, "playing");
  // Nakama reports an update as the new presence joining and the old one leaving.
  assert.equal(evt.leaves?.length, 1, JSON.stringify(evt));
  assert.equal(evt.leaves[0].status, "");
  assert.equal(evt.leaves[0].session_id, evt.joins[0].session_id);
  // B's own socket hears of its own update too (every socket follows its own user).
  await waitUntil("B's own status event", () => recB.statusEvents.some((e) => e.joins?.[0]?.status === "playing"));
});

await check("updateStatus() without a status appears offline to followers", async () => {
  recA.statusEvents.length = 0;
  await socketB.updateStatus();
  await waitUntil("A's leave event", () => recA.statusEvents.length > 0);
  const evt = recA.statusEvents[0];
  assert.deepEqual(evt.joins, emptyList, JSON.stringify(evt));
  assert.equal(evt.leaves?.[0]?.status, "playing", JSON.stringify(evt));
});

// Play sessions are sessiongate's own HTTP API (nakama-js has no calls for them): plain fetch
// with the session token, while the nakama-js socket stays open.
const base = `http://${host}:${port}`;
async function api(method, path, body, auth) {
  const res = await fetch(base + path, { method, body: body && JSON.stringify(body), headers: auth ? { Authorization: auth } : {} });
  return { status: res.status, body: await res.json() };
}

await check("a game session close reaches onnotification (subject game_session_closed, code -100)", async () => {
  const notes = [];
  socketA.onnotification = (n) => notes.push(n);
  const bearer = `Bearer ${sessionA.token}`;
  const created = await api("POST", "/v2/game-sessions", { game_id: "slots", currency: "EUR", external_session_id: `njs-${run}` }, bearer);
  assert.equal(created.status, 200, JSON.stringify(created.body));
  const id = created.body.game_session_id;
  assert.match(id, uuidRe);
  const closed = await api("DELETE", `/v2/game-sessions/${id}`, undefined, bearer);
  assert.equal(closed.status, 200, JSON.stringify(closed.body));
  await waitUntil("the close notification", () => notes.length > 0);
  const n = notes[0];
  assert.equal(n.subject, "game_session_closed");
  assert.equal(n.code, -100);
  // nakama-js parses content as JSON.
  assert.deepEqual(n.content, { game_session_id: id, game_id: "slots", currency: "EUR", external_session_id: `njs-${run}`, reason: "closed" });
  assert.match(n.id, uuidRe);
});

await check("the socket's heartbeats keep a play session alive without HTTP heartbeats", async () => {
  // TestNakamaJSSocket sets --play-session-timeout to 1s; the socket pings every 400 ms.
  const tok = { auth_token: sessionA.token };
  assert.deepEqual((await api("POST", "/api/games/sessions/initiate", tok)).body, { success: true });
  await sleep(2500);
  assert.deepEqual((await api("POST", "/api/games/sessions/heartbeat", tok)).body, { success: true });
  assert.deepEqual((await api("POST", "/api/games/sessions/end", tok)).body, { success: true });
  const again = await api("POST", "/api/games/sessions/end", tok);
  assert.equal(again.status, 400);
  assert.equal(again.body.error_code, "NO_ACTIVE_SESSION");
});

await check("after sessionLogout the open socket still answers pings", async () => {
  assert.equal(await client.sessionLogout(sessionA, sessionA.token, sessionA.refresh_token), true);
  const reply = await socketA.send({ ping: {} });
  assert.deepEqual(reply.pong, {}, JSON.stringify(reply));
  const pings = recA.pings;
  await sleep(3 * heartbeatMs);
  assert.ok(recA.pings > pings, "the heartbeat stopped");
  assert.ok(socketA.adapter.isOpen(), "socket closed after logout");
  assert.equal(recA.heartbeatTimeout, false);
});

await check("a new socket with the logged-out token is refused", async () => {
  const s = newSocket();
  let err;
  try {
    await s.connect(sessionA, false, 5000);
  } catch (e) {
    err = e;
  }
  assert.ok(err !== undefined, "connect succeeded");
  assert.notEqual(err, "The socket timed out when trying to connect.", "refused by timeout, not by the server");
  assert.equal(s.adapter.isOpen(), false);
  // The same upgrade as raw `ws` sees it: HTTP 401 before any socket.
  const status = await new Promise((resolve) => {
    const ws = new WebSocket(`ws://${host}:${port}/ws?status=false&token=${encodeURIComponent(sessionA.token)}`);
    ws.on("unexpected-response", (_req, res) => { resolve(res.statusCode); ws.terminate(); });
    ws.on("open", () => { resolve("open"); ws.close(); });
    ws.on("error", () => {});
  });
  assert.equal(status, 401);
  // The old socket is unaffected.
  const reply = await socketA.send({ ping: {} });
  assert.deepEqual(reply.pong, {});
});

await check(`every message received was a ${format === "protobuf" ? "binary" : "text"} message`, async () => {
  for (const rec of [recA, recB]) {
    const [want, other] = format === "protobuf" ? [rec.binary, rec.text] : [rec.text, rec.binary];
    assert.ok(want > 5 && other === 0, `text ${rec.text}, binary ${rec.binary}`);
  }
});

await check("disconnect closes both sockets cleanly", async () => {
  socketA.disconnect(false);
  socketB.disconnect(false);
  await waitUntil("both sockets closed", () => !socketA.adapter.isOpen() && !socketB.adapter.isOpen());
});

// ---------------------------------------------------------------------------------------------

const failed = results.filter((r) => !r.ok);
console.log(`\n${results.length - failed.length}/${results.length} checks passed`);
for (const r of failed) console.log(`failed: ${r.name}`);
process.exit(failed.length === 0 ? 0 : 1);

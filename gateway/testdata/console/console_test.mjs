// Drives the operator's console in headless Chromium (the system's, through playwright-core),
// as gateway/console_browser_test.go sets it up: a gateway with the console on, a test client
// holding one socket. Steps: a wrong password is refused; the right one logs in; the overview
// shows the nodes, the one holding the socket with 1; the user search finds the client's socket
// and game session; Close, confirmed, closes the game session; Disconnect, confirmed,
// disconnects the socket; logout. A screenshot of each page goes to ARTIFACTS. Any failed
// expectation throws, and the process exits non-zero.

import { chromium } from "playwright-core";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const url = env("CONSOLE_URL");
const user = env("CONSOLE_USER");
const password = env("CONSOLE_PASSWORD");
const query = env("SEARCH_QUERY");
const sessionId = env("SESSION_ID");
const gameSessionId = env("GAME_SESSION_ID");
const nodeId = env("NODE_ID");
const artifacts = env("ARTIFACTS");
const mode = env("EXPECT_MODE");
const nodes = Number(env("EXPECT_NODES"));
const TIMEOUT = 15000;

const step = (msg) => console.log(`[${new Date().toISOString()}] ${msg}`);

const context = await chromium.launchPersistentContext(env("USER_DATA_DIR"), {
  executablePath: env("CHROMIUM"),
  headless: true,
  viewport: { width: 1280, height: 800 },
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = context.pages()[0] ?? await context.newPage();
page.setDefaultTimeout(TIMEOUT);
const errors = [];
page.on("pageerror", (err) => errors.push(err.message));
// Failed loads are checked by their response (401 is expected: before login, wrong password).
page.on("console", (m) => { if (m.type() === "error" && !/^Failed to load resource/.test(m.text())) errors.push(m.text()); });
page.on("response", (r) => { if (r.status() >= 400 && r.status() !== 401) errors.push(`${r.status()} ${r.url()}`); });
const shot = async (name) => {
  await page.screenshot({ path: `${artifacts}/${name}.png`, fullPage: true });
  step(`screenshot ${name}.png`);
};

const expectText = async (locator, re, what) => {
  await locator.waitFor({ state: "visible" });
  const deadline = Date.now() + TIMEOUT;
  for (;;) {
    const text = await locator.innerText();
    if (re.test(text)) return text;
    if (Date.now() > deadline) throw new Error(`${what}: ${JSON.stringify(text)} does not match ${re}`);
    await page.waitForTimeout(100);
  }
};

try {
  step(`open ${url}`);
  await page.goto(url);
  await page.locator("#login-page").waitFor({ state: "visible" });

  step("wrong password");
  await page.fill("#login-username", user);
  await page.fill("#login-password", password + "-wrong");
  await page.click("#login-submit");
  await expectText(page.locator("#login-error"), /Wrong username or password/, "login error");
  if (await page.locator("#nav").isVisible()) throw new Error("the navigation shows after a refused login");
  await shot("login-refused");

  step("log in");
  await page.fill("#login-password", password);
  await page.click("#login-submit");
  await page.locator("#overview-page").waitFor({ state: "visible" });
  const row = page.locator(`#nodes-body tr[data-node="${nodeId}"]`);
  await expectText(row.locator("td.sockets"), /^1$/, "the node's live sockets");
  await expectText(page.locator("#stat-mode"), new RegExp(`^${mode}$`), "mode");
  await expectText(page.locator("#stat-nodes"), new RegExp(`^${nodes}$`), "node count");
  await expectText(page.locator("#stat-sockets"), /^1$/, "live sockets");
  await expectText(page.locator("#stat-redis"), mode === "cluster" ? /^up, / : /embedded/, "Redis health");
  // Let a few polls in so that the rates and charts have points.
  await expectText(page.locator("#rate-connects"), /\/s/, "connect rate");
  for (const id of ["chart-connects", "chart-disconnects"]) {
    const points = await page.locator(`#${id} polyline`).getAttribute("points");
    if (!points || points.split(" ").length < 2) throw new Error(`${id} has no line: ${points}`);
  }
  await shot("overview");

  step(`search ${query}`);
  await page.click("#nav-users");
  await page.locator("#users-page").waitFor({ state: "visible" });
  await page.fill("#search-q", query);
  await page.click("#search-submit");
  const socket = page.locator(`tr[data-session="${sessionId}"]`);
  await socket.waitFor({ state: "visible" });
  await expectText(socket, new RegExp(nodeId), "the socket's node");
  await shot("users");

  step("close the game session");
  const game = page.locator(`tr[data-game-session="${gameSessionId}"]`);
  await expectText(game, /browser-game/, "the game session");
  await game.locator("button.close-game").click();
  await page.locator("#confirm[open]").waitFor({ state: "visible" });
  await expectText(page.locator("#confirm-text"), new RegExp(gameSessionId), "confirmation");
  await page.click("#confirm-ok");
  await expectText(page.locator("#search-message"), /closed/, "outcome");
  await game.waitFor({ state: "detached" });
  await page.locator(".user .games-empty").waitFor({ state: "visible" });
  await shot("after-game-close");

  step("disconnect, cancelled first");
  await socket.locator("button.disconnect-session").click();
  await page.locator("#confirm[open]").waitFor({ state: "visible" });
  await expectText(page.locator("#confirm-text"), new RegExp(sessionId), "confirmation");
  await page.click("#confirm-cancel");
  await page.locator("#confirm[open]").waitFor({ state: "detached" });
  await page.waitForTimeout(300);
  if (!(await socket.isVisible())) throw new Error("a cancelled disconnect removed the socket");

  step("disconnect, confirmed");
  await socket.locator("button.disconnect-session").click();
  await page.locator("#confirm[open]").waitFor({ state: "visible" });
  await shot("confirm");
  await page.click("#confirm-ok");
  await expectText(page.locator("#search-message"), /disconnected/, "outcome");
  await page.locator(".user .sessions-empty").waitFor({ state: "visible" });
  await socket.waitFor({ state: "detached" });
  await shot("after-disconnect");

  step("log out");
  await page.click("#logout");
  await page.locator("#login-page").waitFor({ state: "visible" });
  await page.reload();
  await page.locator("#login-page").waitFor({ state: "visible" });
  if (errors.length > 0) throw new Error("page errors: " + errors.join("; "));
  step("ok");
} catch (err) {
  await page.screenshot({ path: `${artifacts}/failure.png`, fullPage: true }).catch(() => {});
  throw err;
} finally {
  await context.close();
}

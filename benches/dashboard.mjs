// How long the dashboard takes to show one refresh of a job page: the API call
// (GET /jobs/{id}) and drawing the dataflow and the subtask table, in headless
// Chromium. Run against a cluster with a big job:
//   PLAYWRIGHT=target/tools/playwright/node_modules node benches/dashboard.mjs URL KEY JOB [REFRESHES]
// Prints the median and the slowest refresh, in ms, and the number of subtasks shown.
import { createRequire } from "node:module";
import { resolve } from "node:path";

const [url, key, job, n = "20"] = process.argv.slice(2);
const require = createRequire(resolve(process.env.PLAYWRIGHT || "target/tools/playwright/node_modules") + "/");
const { chromium } = require("playwright-core");
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
await page.goto(url);
await page.fill("#login-key", key);
await page.click("#login-submit");
await page.locator("#login").waitFor({ state: "hidden" });
// Time each refresh from the request to the drawn page: wrap the page's own functions.
await page.evaluate(() => {
  window.__times = [];
  const api0 = window.api, draw0 = window.drawJob;
  let started = 0;
  window.api = (method, path, ...rest) => { if (path.startsWith("/jobs/") && !path.includes("/logs")) started = performance.now(); return api0(method, path, ...rest); };
  window.drawJob = (...args) => { draw0(...args); window.__times.push(performance.now() - started); };
});
await page.evaluate((id) => { location.hash = "#/jobs/" + id; }, job);
await page.waitForFunction((n) => window.__times.length >= n, Number(n), { timeout: 120000 });
const times = (await page.evaluate(() => window.__times)).slice(1).sort((a, b) => a - b);
const rows = await page.$$eval("#subtasks-table tbody tr[data-subtask]", (r) => r.length);
console.log(`subtasks shown: ${rows}; refresh (request + draw) over ${times.length}: median ${times[times.length >> 1].toFixed(1)} ms, slowest ${times[times.length - 1].toFixed(1)} ms`);
await browser.close();

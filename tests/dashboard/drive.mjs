// Drives the dashboard in headless Chromium as a user would, for tests/dashboard.rs,
// which starts the cluster, decides what must be seen and checks it: this script only
// clicks, types, waits for the page and reports what it showed, as one JSON object on
// stdout. A step that cannot happen (an element that never shows) fails with its name.
//
// Environment: URL (the JobManager's), KEY (the admin's), TENANT_KEY, PARALLEL_JOB
// (ended, four tasks), SLOW_JOB (running, back-pressured), UPLOAD (a .wasm to upload
// from the page), SHOTS (directory for screenshots), PLAYWRIGHT (its node_modules).
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`missing environment variable ${name}`);
  return v;
};
const require = createRequire(env("PLAYWRIGHT") + "/");
const { chromium } = require("playwright-core");
const shots = env("SHOTS");
mkdirSync(shots, { recursive: true });

const report = {};
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  // The flags this machine needs: no sandbox as root, and no calls to Google's services.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync"],
});

let step = "start";
async function run() {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("dialog", (d) => d.accept());
  const shot = (name) => page.screenshot({ path: `${shots}/${name}.png`, fullPage: true });

  step = "the page asks for the key, refuses a wrong one and takes the right one";
  await page.goto(env("URL"));
  await page.locator("#login").waitFor({ state: "visible" });
  await shot("01-login");
  await page.fill("#login-key", "eddy_wrong_key");
  await page.click("#login-submit");
  await page.locator("#login-error").waitFor({ state: "visible" });
  report.wrongKey = await page.textContent("#login-error");
  await page.fill("#login-key", env("KEY"));
  await page.click("#login-submit");
  await page.locator("#login").waitFor({ state: "hidden" });

  step = "the overview lists the TaskManagers";
  await page.locator("#taskmanagers-table tbody tr").first().waitFor();
  report.taskmanagers = await page.$$eval("#taskmanagers-table tbody tr", (rows) => rows.map((r) => r.dataset.taskmanager));
  report.jobsListed = await page.$$eval("#jobs-table tbody tr", (rows) => rows.map((r) => r.dataset.job));
  report.who = await page.textContent("#who");
  await shot("02-overview");

  step = "the job page draws every task of the ended job with its parallelism and edges";
  await page.evaluate((id) => { location.hash = "#/jobs/" + id; }, env("PARALLEL_JOB"));
  await page.locator("#graph g.node").first().waitFor();
  report.graph = {
    nodes: await page.$$eval("#graph g.node", (ns) => ns.map((n) => ({ task: Number(n.dataset.task), parallelism: Number(n.dataset.parallelism) }))),
    edges: await page.$$eval("#graph path.edge", (es) => es.map((e) => ({ source: Number(e.dataset.source), target: Number(e.dataset.target), partitioning: e.dataset.partitioning }))),
    status: await page.textContent("#job-status"),
  };
  await shot("03-job-finished");

  step = "the running job's counts rise without a reload, and its source shows back-pressure";
  await page.evaluate((id) => { location.hash = "#/jobs/" + id; }, env("SLOW_JOB"));
  const source = '#subtasks-table tr[data-task="0"][data-subtask="0"] td[data-metric="records-in"]';
  await page.locator(source).waitFor();
  const before = Number(await page.getAttribute(source, "data-value"));
  await page.waitForFunction(([sel, was]) => {
    const td = document.querySelector(sel);
    return td && Number(td.dataset.value) > was;
  }, [source, before], { timeout: 40000 });
  const after = Number(await page.getAttribute(source, "data-value"));
  await page.waitForSelector('#graph g.node.bp-high[data-task="0"]', { timeout: 20000 });
  report.live = { before, after, sourceLevel: "high", navigations: await page.evaluate(() => performance.getEntriesByType("navigation").length) };
  await shot("04-job-running");

  step = "the subtasks of one task show when it is clicked";
  await page.click('#graph g.node[data-task="1"]');
  report.selectedRows = await page.$$eval("#subtasks-table tbody tr[data-task]", (rows) => [...new Set(rows.map((r) => r.dataset.task))]);

  step = "a component uploaded from the page lists its entries and runs one";
  await page.click('nav a[data-nav="submit"]');
  await page.setInputFiles("#upload-file", env("UPLOAD"));
  await page.click("#upload-button");
  const jar = page.locator(".jar").filter({ has: page.locator(".badge", { hasText: "new" }) });
  await jar.waitFor();
  report.entries = await jar.locator('select[name="entry"] option').allTextContents();
  await jar.locator('select[name="entry"]').selectOption("log-and-count");
  // Markup in a tenant's arguments must show as text, never run.
  await jar.locator('input[name="args"]').fill(`--tag "<img src=x onerror=window.pwned=1>"`);
  await jar.locator('input[name="parallelism"]').fill("1");
  await shot("05-submit");
  await jar.locator('button[type="submit"]').click();
  await page.waitForURL(/#\/jobs\/[0-9a-f]+$/);
  report.submitted = decodeURIComponent(page.url().split("#/jobs/")[1]);
  await page.locator("#job-status .s-FINISHED").waitFor({ timeout: 30000 });

  step = "its operators' log lines show in the Logs tab";
  await page.click('.tabs button[data-tab="logs"]');
  await page.waitForFunction(() => (document.querySelector("#logs")?.textContent || "").includes("saw 3"), null, { timeout: 20000 });
  report.logs = await page.$$eval("#logs > div", (ls) => ls.map((l) => l.textContent));
  await page.click('.tabs button[data-tab="subtasks"]');
  report.counters = await page.textContent('#subtasks-table tr[data-task-row="0"] .counters');
  await shot("06-job-logs");
  await page.click('.tabs button[data-tab="configuration"]');
  report.argsShown = await page.textContent("#tab table");
  report.pwned = await page.evaluate(() => window.pwned === 1 || document.querySelector("#tab img") !== null);

  step = "cancel on the running job's page cancels it";
  await page.evaluate((id) => { location.hash = "#/jobs/" + id; }, env("SLOW_JOB"));
  await page.locator("#cancel").waitFor({ state: "visible" });
  await page.click("#cancel");
  await page.locator("#job-status .s-CANCELED").waitFor({ timeout: 30000 });
  report.cancelHidden = await page.locator("#cancel").isHidden();
  await shot("07-job-canceled");

  // A job without back-pressure (a barrier waits behind the records queued before it),
  // submitted from the page after the back-pressured one is gone: they would share 2 cores.
  step = "a second job submitted from the page runs";
  await page.click('nav a[data-nav="submit"]');
  const features = page.locator(".jar").filter({ has: page.locator('select[name="entry"] option', { hasText: "slow" }) });
  await features.locator('select[name="entry"]').selectOption("slow");
  await features.locator('input[name="args"]').fill("--delay-ms 0");
  await features.locator('button[type="submit"]').click();
  await page.waitForURL(/#\/jobs\/[0-9a-f]+$/);
  report.stopJob = decodeURIComponent(page.url().split("#/jobs/")[1]);
  await page.locator("#job-status .s-RUNNING").waitFor({ timeout: 30000 });

  step = "a savepoint taken from a running job's page completes";
  await page.locator("#savepoint").waitFor({ state: "visible" });
  await page.click("#savepoint");
  await page.waitForFunction(() => (document.querySelector("#toast")?.textContent || "").startsWith("Savepoint completed: "), null, { timeout: 30000 });
  report.savepoint = await page.textContent("#toast");

  step = "stop with a savepoint from the page ends that job";
  await page.evaluate(() => { document.querySelector("#toast").hidden = true; document.querySelector("#toast").textContent = ""; });
  await page.click("#stop");
  await page.locator("#job-status .s-FINISHED").waitFor({ timeout: 30000 });
  await page.waitForFunction(() => (document.querySelector("#toast")?.textContent || "").startsWith("Savepoint completed: "), null, { timeout: 30000 });
  report.stopSavepoint = await page.textContent("#toast");
  report.errors = errors;

  step = "a tenant's key sees its own jobs only, and no TaskManagers";
  const tenant = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await tenant.goto(env("URL"));
  await tenant.fill("#login-key", env("TENANT_KEY"));
  await tenant.click("#login-submit");
  await tenant.locator("#cards .card").first().waitFor();
  await tenant.waitForFunction(() => document.querySelector("#jobs")?.textContent.length > 0);
  report.tenant = {
    who: await tenant.textContent("#who"),
    jobs: await tenant.$$eval("#jobs-table tbody tr", (rows) => rows.map((r) => r.dataset.job)),
    taskmanagers: await tenant.textContent("#tms"),
  };
  await tenant.screenshot({ path: `${shots}/08-tenant-overview.png`, fullPage: true });
}

try {
  await run();
  process.stdout.write(JSON.stringify(report) + "\n");
} catch (e) {
  process.stderr.write(`dashboard step failed: ${step}: ${e.message.split("\n")[0]}\nseen so far: ${JSON.stringify(report)}\n`);
  process.exitCode = 1;
} finally {
  await browser.close();
}

// Turns a job module into an Eddy component: `node build.mjs JOB.js OUT.wasm` (build.sh runs
// it after installing the tools; EDDY_JS_TOOLS names their directory).
//
// componentize-js resolves relative imports, but only inside the directory it maps into the
// build sandbox, and it does not resolve bare specifiers. So the job and the modules it
// imports relatively are copied into a staging directory next to a copy of the SDK, with the
// specifier "eddy" (and "eddy/...") rewritten to the SDK's relative path. Nothing else of the
// source changes, so line numbers in error messages are the job's own. A generated main
// module imports the job, registers the entries it exports as an object, and re-exports the
// SDK's `planner` and `operator`.

import { cp, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";

const here = dirname(new URL(import.meta.url).pathname);
const repo = resolve(here, "../..");
const tools = process.env.EDDY_JS_TOOLS || join(process.env.CARGO_TARGET_DIR || join(repo, "target"), "tools/js");
const weval = process.env.EDDY_JS_WEVAL;
// componentize-js would otherwise download weval from GitHub.
if (weval && !existsSync(weval)) {
  console.error(`build.sh: no weval at ${weval} (install-weval.sh installs it)`);
  process.exit(2);
}

const [jobArg, outArg] = process.argv.slice(2);
if (!jobArg || !outArg) {
  console.error("usage: build.sh JOB.js OUT.wasm");
  process.exit(2);
}
const callerDir = process.cwd();
const job = resolve(jobArg);
const out = resolve(outArg);
const root = dirname(job);

const lexer = await import(pathToFileURL(join(tools, "node_modules/es-module-lexer/dist/lexer.js")));
const { componentize } = await import(
  pathToFileURL(join(tools, "node_modules/@bytecodealliance/componentize-js/src/componentize.js"))
);
await lexer.init;

const stage = await mkdtemp(join(tmpdir(), "eddy-js-"));
try {
  await cp(join(here, "eddy"), join(stage, "eddy"), { recursive: true });
  await stageModule(job, new Set());
  const main = `./app/${relative(root, job).split(sep).join("/")}`;
  await writeFile(
    join(stage, "main.js"),
    [
      `import * as job from ${JSON.stringify(main)};`,
      `import { registerModule } from "./eddy/index.js";`,
      `registerModule(job);`,
      `export { planner, operator } from "./eddy/index.js";`,
      "",
    ].join("\n"),
  );
  // componentize-js maps the current directory into its sandbox when the source is under it.
  process.chdir(stage);
  const started = Date.now();
  const { component } = await componentize({
    sourcePath: join(stage, "main.js"),
    witPath: join(repo, "wit"),
    worldName: "job",
    // Keep stdio (console output and engine errors go to the task's log), clocks (Date.now
    // for processing time) and random; the host links no HTTP.
    disableFeatures: ["http", "fetch-event"],
    // build.sh names weval when EDDY_JS_AOT=1: the job's functions are compiled ahead of time.
    ...(weval ? { enableAot: true, wevalBin: weval } : {}),
  });
  await mkdir(dirname(out), { recursive: true });
  await writeFile(out, component);
  const mb = (component.length / 1e6).toFixed(1);
  const shown = out.startsWith(callerDir + sep) ? relative(callerDir, out) : out;
  console.error(`built ${shown} (${mb} MB) in ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (e) {
  console.error(`build.sh: ${e.message || e}`);
  process.exitCode = 1;
} finally {
  await rm(stage, { recursive: true, force: true });
}

// Copies module `file` (under the job's directory) to stage/app/, rewriting "eddy" imports,
// then the modules it imports relatively.
async function stageModule(file, seen) {
  if (seen.has(file)) return;
  seen.add(file);
  const rel = relative(root, file);
  if (rel.startsWith("..")) {
    throw new Error(`${file}: a job may import only modules under its own directory ${root}`);
  }
  const target = join(stage, "app", rel);
  let source = await readFile(file, "utf8");
  let imports;
  try {
    [imports] = lexer.parse(source, file);
  } catch (_) {
    // The lexer only says "parse error"; Node's syntax check names the line and the reason.
    const check = spawnSync(process.execPath, ["--input-type=module", "--check"], { input: source, encoding: "utf8" });
    const why = (check.stderr || "")
      .split("\n")
      .filter((l) => l.trim() !== "" && !/^\s+at /.test(l) && !l.startsWith("Node.js"))
      .map((l) => l.replace("[stdin]", file));
    throw new Error(`syntax error in ${why.join("\n")}`);
  }
  const edits = [];
  const next = [];
  for (const imp of imports) {
    const name = imp.n;
    if (name === undefined || imp.d === -2) continue; // import.meta or a computed dynamic import
    if (name === "eddy" || name.startsWith("eddy/")) {
      const sdk = join(stage, "eddy", name === "eddy" ? "index.js" : name.slice(5));
      let spec = relative(dirname(target), sdk).split(sep).join("/");
      if (!spec.startsWith(".")) spec = `./${spec}`;
      edits.push([imp.s, imp.e, spec]);
    } else if (name.startsWith("./") || name.startsWith("../")) {
      next.push(resolve(dirname(file), name));
    } else {
      throw new Error(`${file}: cannot import '${name}': a job may import "eddy" and its own modules (./...)`);
    }
  }
  for (const [s, e, spec] of edits.sort((a, b) => b[0] - a[0])) {
    source = source.slice(0, s) + spec + source.slice(e);
  }
  await mkdir(dirname(target), { recursive: true });
  await writeFile(target, source);
  for (const dep of next) await stageModule(dep, seen);
}

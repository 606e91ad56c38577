// An operator entry for jobs that mix components (`eddy run job.toml`, see
// examples/mixed/job.toml): `filter-long` keeps the `{"word": w, "length": n}` records (made
// by the Python `enrich` step) whose word has at least 4 characters. Its graph starts with
// `env.input()`, so it runs only as a step of such a job.
//
// Build: guest-sdk/js/build.sh examples/js/filter.js target/wasm32-wasip2/component/filter_js.wasm

import { entry } from "eddy";

entry("filter-long", (env) => {
  env
    .input()
    .filter((v) => v.length >= 4)
    .name("filter-long");
});

"""An operator entry for jobs that mix components (``eddy run job.toml``): words in (JSON
strings), ``{"word": w, "length": n}`` out, n counting Unicode code points."""

import eddy


@eddy.entry("enrich")
def enrich(env, args):
    env.input().map(lambda w: {"word": w, "length": len(w)}).name("enrich")

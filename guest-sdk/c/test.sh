#!/usr/bin/env bash
# Tests the C SDK and its example, ending with one line "N passed, N failed[, N skipped]":
#
# 1. native unit tests (tests/sdk_test.c: framing, JSON, arguments, graphs, the exports
#    driven directly with a fake host), under AddressSanitizer when the host's cc has it;
# 2. end to end with the eddy binary (${EDDY:-target/release/eddy}, built beforehand):
#    examples/c/upper.c built with build.sh, run as jobs and as steps of job files, its
#    output compared with references computed here in Python, and its errors checked.
#    The job file mixing Rust and C needs the Rust word count component
#    (target/wasm32-wasip2/component/wordcount.wasm); without it that check is skipped.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
tools="$target/tools/c"
eddy="${EDDY:-$target/release/eddy}"
component="$target/wasm32-wasip2/component/upper_c.wasm"
wordcount="$target/wasm32-wasip2/component/wordcount.wasm"

"$here/install.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0 failed=0 skipped=0
pass() { passed=$((passed + 1)); echo "ok   $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1" >&2; }

echo "==> unit tests (native)"
"$tools/bin/wit-bindgen" c "$repo/wit" --world job --out-dir "$work/gen" >/dev/null 2>&1
cc=(cc -fsanitize=address,undefined -fno-omit-frame-pointer)
if ! echo 'int main(void){return 0;}' | "${cc[@]}" -x c - -o "$work/probe" 2>/dev/null; then
  cc=("$tools/venv/bin/python" -m ziglang cc)
fi
"${cc[@]}" -g -std=c11 -Wall -Wextra -Werror -I "$here" -I "$work/gen" \
  "$here/tests/sdk_test.c" "$repo/examples/c/upper.c" -o "$work/sdk_test"
unit="$("$work/sdk_test")" || true
echo "$unit"
if [[ "$unit" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
  passed=$((passed + BASH_REMATCH[1])) failed=$((failed + BASH_REMATCH[2]))
else
  fail "unit tests did not finish"
fi

echo "==> end to end ($eddy)"
EDDY_CFLAGS="-O2 -Werror" "$here/build.sh" "$repo/examples/c/upper.c" "$component"
[ -x "$eddy" ] || { echo "no eddy binary at $eddy (cargo build --release first)" >&2; exit 1; }

# Printed lines without the "N> " prefix of parallel print sinks, sorted.
strip_sort() { sed -E 's/^[0-9]+> //' | LC_ALL=C sort; }

# References: upper-cased lines (ASCII only); running counts of lines as [line, n] JSON.
python3 - "$repo/examples/wordcount/sample.txt" "$work" <<'EOF'
import json, random, re, sys
sample, work = sys.argv[1], sys.argv[2]
up = lambda s: re.sub("[a-z]", lambda m: m.group().upper(), s)
lines = open(sample, encoding="utf-8").read().splitlines()
open(f"{work}/upper.want", "w", encoding="utf-8").write("".join(up(l) + "\n" for l in lines))
random.seed(5)
values = ["apple", "Bär", "café", "x", '"quoted"', "tab\there", "back\\slash", "ÜBER", "", " sp "]
lines = [random.choice(values) for _ in range(3000)]
open(f"{work}/lines.txt", "w", encoding="utf-8").write("".join(l + "\n" for l in lines))
seen, out = {}, []
for l in lines:
    seen[l] = seen.get(l, 0) + 1
    out.append(json.dumps([l, seen[l]], ensure_ascii=False, separators=(",", ":")))
open(f"{work}/count.want", "w", encoding="utf-8").write("".join(sorted(x + "\n" for x in out)))
# The mixed job: Rust's words (alphanumeric runs, lower-cased), upper-cased, >= 5 code
# points, running counts.
text = open(sample, encoding="utf-8").read()
words = [up(w.lower()) for l in text.splitlines() for w in re.findall(r"[^\W_]+", l)]
seen, out = {}, []
for w in (w for w in words if len(w) >= 5):
    seen[w] = seen.get(w, 0) + 1
    out.append(json.dumps([w, seen[w]], ensure_ascii=False, separators=(",", ":")))
open(f"{work}/mixed.want", "w", encoding="utf-8").write("".join(sorted(x + "\n" for x in out)))
EOF

if "$eddy" run -c upper-file "$component" --input "$repo/examples/wordcount/sample.txt" \
  >"$work/upper.out" 2>"$work/err" && cmp -s "$work/upper.out" "$work/upper.want"; then
  pass "upper-file prints the upper-cased lines, in order"
else fail "upper-file (p=1)"; cat "$work/err" >&2; fi

"$eddy" run -p 2 -c upper-file "$component" --input "$repo/examples/wordcount/sample.txt" 2>"$work/err" |
  strip_sort >"$work/upper2.out" || true
if LC_ALL=C sort "$work/upper.want" | cmp -s - "$work/upper2.out"; then pass "upper-file -p 2"
else fail "upper-file -p 2"; cat "$work/err" >&2; fi

"$eddy" run -c upper-file "$component" --input "$repo/examples/wordcount/sample.txt" \
  --output "$work/parts" >/dev/null 2>"$work/err" || true
if cat "$work"/parts/* 2>/dev/null | cmp -s - "$work/upper.want"; then pass "upper-file --output DIR"
else fail "upper-file --output DIR"; cat "$work/err" >&2; fi

for p in 1 2; do
  "$eddy" run -p $p -c count-lines "$component" --input "$work/lines.txt" 2>"$work/err" |
    strip_sort >"$work/count.out" || true
  if cmp -s "$work/count.out" "$work/count.want"; then pass "count-lines -p $p (keyed state)"
  else fail "count-lines -p $p"; cat "$work/err" >&2; fi
done

# A job file: its steps are operator entries of components.
job() { # NAME SOURCE-TOML STEPS-TOML
  cat >"$work/$1.toml" <<EOF
[components]
c = "$component"
rust = "$wordcount"

[[step]]
source = $2
$3

[[step]]
sink = "print"
EOF
  echo "$work/$1.toml"
}
# (Each step starts with a newline: command substitution drops trailing ones.)
step() { printf '\n[[step]]\ncomponent = "%s"\nentry = "%s"\nargs = %s' "$1" "$2" "${3:-[]}"; }

if [ -f "$wordcount" ]; then
  steps="$(step rust tokenize)$(step c upper)$(step c length-filter '["--min", "5"]')$(step c key-by-value)$(step c running-count)"
  file="$(job mixed "{ file = \"$repo/examples/wordcount/sample.txt\" }" "$steps")"
  for p in 1 2; do
    "$eddy" run -p $p "$file" 2>"$work/err" | strip_sort >"$work/mixed.out" || true
    if cmp -s "$work/mixed.out" "$work/mixed.want"; then pass "job file rust tokenize -> c upper, length-filter, key-by-value, running-count (-p $p)"
    else fail "mixed job file -p $p"; cat "$work/err" >&2; fi
  done
else
  skipped=$((skipped + 1))
  echo "skip the job file mixing Rust and C: no $wordcount"
fi

# Key groups: a keyed entry may set them; the job file's own win.
file="$(job keygroups '{ elements = ["a"] }' "$(step c key-by-value)$(step c running-count '["--max-parallelism", "32"]')")"
if "$eddy" info "$file" >"$work/info" 2>"$work/err" && grep -q "max parallelism 32$" "$work/info"; then pass "an entry sets the job's key groups"
else fail "an entry's key groups"; cat "$work/err" >&2; fi
sed -i '1i max-parallelism = 16' "$file"
if "$eddy" info "$file" >"$work/info" 2>"$work/err" && grep -q "max parallelism 16$" "$work/info"; then pass "the job file's key groups beat an entry's"
else fail "the job file's key groups"; cat "$work/err" >&2; fi

file="$(job lengths '{ elements = ["ab", "abc", "éé", "ééé", "née", ""] }' "$(step c length-filter '["--min=3"]')")"
if [ "$("$eddy" run "$file" 2>"$work/err" | tr '\n' ' ')" = "abc ééé née " ]; then pass "length-filter counts code points"
else fail "length-filter"; cat "$work/err" >&2; fi

# Errors: one clear line, no trap.
expect_error() { # WHAT WANT-SUBSTRING COMMAND...
  local what="$1" want="$2"
  shift 2
  if "$@" >"$work/out" 2>"$work/err"; then fail "$what: succeeded"; return; fi
  if grep -qF -- "$want" "$work/err" && ! grep -qi "trap\|unreachable\|wasm backtrace" "$work/err"; then pass "$what"
  else fail "$what"; cat "$work/err" >&2; fi
}
expect_error "a number into upper is an error result" \
  "operator 'upper' (subtask 1/1) expected a JSON string, got 42" \
  "$eddy" run "$(job badvalue '{ elements = ["fine", 42] }' "$(step c upper)")"
expect_error "a bad --min is a planning error" \
  "planning entry 'length-filter' of component 'c' failed: invalid value 'four' for --min: expected a non-negative integer" \
  "$eddy" run "$(job badarg '{ elements = ["a"] }' "$(step c length-filter '["--min", "four"]')")"
expect_error "an unknown entry lists the entries" \
  "unknown entry 'nope'; this component offers: upper, length-filter, key-by-value, running-count, upper-file, count-lines" \
  "$eddy" run -c nope "$component"
expect_error "a missing --input" "missing required argument --input" "$eddy" run -c upper-file "$component"
expect_error "an operator entry alone is refused" "it runs only as a step of a job file" \
  "$eddy" run -c upper "$component"

if [ "$skipped" -gt 0 ]; then echo "$passed passed, $failed failed, $skipped skipped"
else echo "$passed passed, $failed failed"; fi
[ "$failed" -eq 0 ]

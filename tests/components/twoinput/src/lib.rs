//! Two-input operators and joins, for `tests/twoinput.rs`: each entry writes under
//! `--output DIR` what the test computes independently.
//!
//! - `union --n N`: three sequences merged (`DIR/all`) and counted per `x % 7` (`DIR/counts`).
//! - `co-map --n N`: numbers and words connected, each mapped by its own function.
//! - `co-process --n N [--rate R]`: orders `(i % 5, i)` at time `i` and payments
//!   `(j % 5, 10 j)` at time `10 j` (`j < N / 2`), keyed by their first field into one keyed
//!   co-process that keeps per key `count_a sum_a count_b sum_b` in state and writes them
//!   when the input ends (an event-time timer).
//! - `window-join --n N --window tumbling|sliding|session [--time processing]`: `a_i` at time
//!   `3 i` and `b_j` at `5 j`, keyed `% 5`, joined in tumbling 50 ms, sliding 50/20 ms or
//!   session (gap 12 ms) windows; writes `i j` per pair.
//! - `interval-join --n N`: the same streams, `b` within `[ta - 7, ta + 11]` of `a`.
//! - `broadcast-rules --n N [--rate R]`: values `(i % 5, i)` at time `i`, keyed, summed per
//!   key in keyed state; rules `(key, multiplier)` broadcast into broadcast state (key 0's
//!   set twice, key 4's removed by a multiplier of 0); at the end of the input each key
//!   writes `key sum multiplier` (or `none`).
//! - `broadcast-copies --n N`: numbers written as `nX`, and rules `a`, `b`, `c` that every
//!   subtask puts into broadcast state and writes as `rule R K` (K: the rules it then holds).
//! - `late-interval-join`, `late-window-join`: a first stream whose third record (time 50)
//!   comes a second after one at time 100 000, when the watermark is past it.

use eddy_sdk::prelude::*;

const KEYS: u64 = 5;

/// `(key, time, id)`: a value with its key, its event time and its position.
type Value = (u64, i64, u64);

fn out(args: &Args, name: &str) -> Result<String, String> {
    Ok(format!("{}/{name}", args.required("output")?))
}

fn union(env: &mut Env, args: &Args) -> Result<(), String> {
    let n: u64 = args.parse_or("n", 1000)?;
    let a = env.generate(n, |i| i * 3);
    let b = env.generate(n, |i| i * 3 + 1);
    let c = env.generate(n, |i| i * 3 + 2).set_parallelism(1);
    let all = a.union(b).union(c);
    all.clone().map(|x: u64| x.to_string()).write_text_file(out(args, "all")?);
    all.key_by(|x: &u64| x % 7).count().map(|(k, n): (u64, u64)| format!("{k} {n}")).write_text_file(out(args, "counts")?);
    Ok(())
}

fn co_map(env: &mut Env, args: &Args) -> Result<(), String> {
    let n: u64 = args.parse_or("n", 1000)?;
    let numbers = env.generate(n, |i| i);
    let words = env.generate(n, |i| format!("w{i}"));
    numbers.connect(words).map(|x: u64| format!("n{x}"), |w: String| w).write_text_file(args.required("output")?);
    Ok(())
}

/// `n` values `f(i)` with event time from field 1, at `--rate` values per second if given.
fn timed<F>(env: &mut Env, args: &Args, n: u64, f: F) -> Result<Stream<Value>, String>
where
    F: Fn(u64) -> Value + 'static,
{
    let values = match args.get("rate") {
        Some(rate) => env.generate_at_rate(n, rate.parse().map_err(|_| format!("--rate {rate}: not a number"))?, f),
        None => env.generate(n, f),
    };
    Ok(values.assign_timestamps(1, 0))
}

type Totals = (u64, i64, u64, i64);

fn co_process(env: &mut Env, args: &Args) -> Result<(), String> {
    let n: u64 = args.parse_or("n", 1000)?;
    let orders = timed(env, args, n, |i| (i % KEYS, i as i64, i))?;
    let payments = timed(env, args, n / 2, |j| (j % KEYS, 10 * j as i64, j))?;
    let totals = |ctx: &KeyedCtx<u64, String>| ctx.value_state::<Totals>("totals");
    orders
        .connect(payments)
        .key_by(|v: &Value| v.0, |v: &Value| v.0)
        .process_with_timers(
            move |ctx: &mut KeyedCtx<u64, String>, (_, t, _): Value| {
                let (ca, sa, cb, sb) = totals(ctx).get()?.unwrap_or_default();
                totals(ctx).set(&(ca + 1, sa + t, cb, sb))?;
                ctx.register_event_time_timer(i64::MAX - 1)
            },
            move |ctx: &mut KeyedCtx<u64, String>, (_, t, _): Value| {
                let (ca, sa, cb, sb) = totals(ctx).get()?.unwrap_or_default();
                totals(ctx).set(&(ca, sa, cb + 1, sb + t))?;
                ctx.register_event_time_timer(i64::MAX - 1)
            },
            move |ctx: &mut KeyedCtx<u64, String>, _timer: Timer| {
                let (ca, sa, cb, sb) = totals(ctx).get()?.unwrap_or_default();
                let key = ctx.key();
                ctx.collect(format!("{key} {ca} {sa} {cb} {sb}"));
                Ok(())
            },
        )
        .uid("totals")
        .write_text_file(args.required("output")?);
    Ok(())
}

fn the_two_streams(env: &mut Env, args: &Args) -> Result<(Stream<Value>, Stream<Value>), String> {
    let n: u64 = args.parse_or("n", 1000)?;
    Ok((timed(env, args, n, |i| (i % KEYS, 3 * i as i64, i))?, timed(env, args, n, |j| (j % KEYS, 5 * j as i64, j))?))
}

fn window_join(env: &mut Env, args: &Args) -> Result<(), String> {
    let (a, b) = the_two_streams(env, args)?;
    let processing = args.get("time") == Some("processing");
    let window = match (args.get_or("window", "tumbling"), processing) {
        ("tumbling", false) => Window::tumbling_event_time(50),
        ("sliding", false) => Window::sliding_event_time(50, 20),
        ("session", false) => Window::session_event_time(12),
        ("tumbling", true) => Window::tumbling_processing_time(60_000),
        (w, _) => return Err(format!("--window {w}: tumbling, sliding or session")),
    };
    a.join(b)
        .where_key(|v: &Value| v.0)
        .equal_to(|v: &Value| v.0)
        .window(window)
        .apply(|a: Value, b: Value| format!("{} {}", a.2, b.2))
        .write_text_file(args.required("output")?);
    Ok(())
}

fn interval_join(env: &mut Env, args: &Args) -> Result<(), String> {
    let (a, b) = the_two_streams(env, args)?;
    a.key_by(|v: &Value| v.0)
        .interval_join(b.key_by(|v: &Value| v.0))
        .between(-7, 11)
        .process(|ctx: &mut Ctx<String>, a: Value, b: Value| {
            ctx.collect(format!("{} {}", a.2, b.2));
            Ok(())
        })
        .write_text_file(args.required("output")?);
    Ok(())
}

/// A first stream, two values a second, whose last value is behind the watermark by the
/// time it comes; a second stream that has ended by then.
fn late_streams(env: &mut Env) -> (Stream<Value>, Stream<Value>) {
    let first = [(1, 100, 0), (1, 100_000, 1), (1, 50, 2)];
    let a = env.generate_at_rate(3, 2, move |i| first[i as usize]).assign_timestamps(1, 0);
    let b = env.from_elements(vec![(1u64, 60i64, 0u64), (1, 95, 1), (1, 105, 2)]).assign_timestamps(1, 0);
    (a, b)
}

fn late_interval_join(env: &mut Env, args: &Args) -> Result<(), String> {
    let (a, b) = late_streams(env);
    a.key_by(|v: &Value| v.0)
        .interval_join(b.key_by(|v: &Value| v.0))
        .between(-10, 10)
        .process(|ctx: &mut Ctx<String>, a: Value, b: Value| {
            ctx.collect(format!("{} {}", a.2, b.2));
            Ok(())
        })
        .write_text_file(args.required("output")?);
    Ok(())
}

fn late_window_join(env: &mut Env, args: &Args) -> Result<(), String> {
    let (a, b) = late_streams(env);
    a.join(b)
        .where_key(|v: &Value| v.0)
        .equal_to(|v: &Value| v.0)
        .window(Window::tumbling_event_time(1000))
        .apply(|a: Value, b: Value| format!("{} {}", a.2, b.2))
        .write_text_file(args.required("output")?);
    Ok(())
}

fn broadcast_rules(env: &mut Env, args: &Args) -> Result<(), String> {
    let n: u64 = args.parse_or("n", 1000)?;
    let values = timed(env, args, n, |i| (i % KEYS, i as i64, i))?;
    let rules = env.from_elements(vec![(0u64, 0i64, 100u64), (1, 0, 3), (2, 0, 4), (3, 0, 5), (4, 0, 6), (0, 0, 2), (4, 0, 0)]);
    let rules = rules.assign_timestamps(1, 0).broadcast_state();
    values
        .key_by(|v: &Value| v.0)
        .connect_broadcast(rules)
        .process_with_timers(
            |ctx: &mut KeyedCtx<u64, String>, _, (_, _, i): Value| {
                let sum = ctx.value_state::<u64>("sum");
                sum.set(&(sum.get()?.unwrap_or(0) + i))?;
                ctx.register_event_time_timer(i64::MAX - 1)
            },
            |_: &mut Ctx<String>, broadcast: &Broadcast, (key, _, multiplier): Value| {
                let rules = broadcast.map_state::<u64, u64>("rules");
                match multiplier {
                    0 => rules.remove(&key),
                    m => rules.put(&key, &m),
                }
            },
            |ctx: &mut KeyedCtx<u64, String>, broadcast: &ReadOnlyBroadcast, _timer: Timer| {
                let key = ctx.key();
                let sum = ctx.value_state::<u64>("sum").get()?.unwrap_or(0);
                let multiplier = broadcast.map_state::<u64, u64>("rules").get(&key)?;
                ctx.collect(format!("{key} {sum} {}", multiplier.map_or("none".to_string(), |m| m.to_string())));
                Ok(())
            },
        )
        .uid("rules")
        .write_text_file(args.required("output")?);
    Ok(())
}

fn broadcast_copies(env: &mut Env, args: &Args) -> Result<(), String> {
    let n: u64 = args.parse_or("n", 1000)?;
    let numbers = env.generate(n, |i| i);
    let rules = env.from_elements(vec!["a".to_string(), "b".into(), "c".into()]).broadcast_state();
    numbers
        .connect_broadcast(rules)
        .process(
            |ctx: &mut Ctx<String>, _, x: u64| {
                ctx.collect(format!("n{x}"));
                Ok(())
            },
            |ctx: &mut Ctx<String>, broadcast: &Broadcast, rule: String| {
                let seen = broadcast.map_state::<String, bool>("seen");
                seen.put(&rule, &true)?;
                ctx.collect(format!("rule {rule} {}", seen.entries()?.len()));
                Ok(())
            },
        )
        .write_text_file(args.required("output")?);
    Ok(())
}

/// `short-and-long --n N --rate R --output DIR`: two pipelines in one job, `a`, `b` into
/// `DIR/short` (ends at once) and `0..N` at `R` a second into `DIR/long`.
fn short_and_long(env: &mut Env, args: &Args) -> Result<(), String> {
    let n: u64 = args.parse_or("n", 1000)?;
    let rate: u64 = args.parse_or("rate", 1000)?;
    env.from_elements(vec!["a".to_string(), "b".into()]).write_text_file(out(args, "short")?);
    env.generate_at_rate(n, rate, |i| i).map(|i: u64| i.to_string()).write_text_file(out(args, "long")?);
    Ok(())
}

eddy_sdk::entries! {
    "short-and-long" => short_and_long,
    "broadcast-rules" => broadcast_rules,
    "broadcast-copies" => broadcast_copies,
    "union" => union,
    "co-map" => co_map,
    "co-process" => co_process,
    "window-join" => window_join,
    "interval-join" => interval_join,
    "late-interval-join" => late_interval_join,
    "late-window-join" => late_window_join,
}

//! Deterministic jobs exercising the SDK's features, for the host's integration tests.
//! Every entry prints its results; expected outputs are noted per entry.

use eddy_sdk::prelude::*;

/// 20 `(name, amount)` records over three keys, shared by the keyed entries.
fn pairs() -> Vec<(String, i64)> {
    let keys = ["apple", "banana", "cherry"];
    (0..20i64)
        .map(|i| (keys[(i * 7 % 3) as usize].to_string(), (i * 5 % 7) - 2))
        .collect()
}

/// `elements`: "alpha", "beta", "gamma", "délta" upper-cased → ALPHA BETA GAMMA DÉLTA.
fn elements(env: &mut Env, _: &Args) -> Result<(), String> {
    let words = ["alpha", "beta", "gamma", "délta"]
        .map(String::from)
        .to_vec();
    env.from_elements(words)
        .map(|s: String| s.to_uppercase())
        .name("upper")
        .print();
    Ok(())
}

/// `generate --n N` (default 10): squares of the even numbers below N, e.g. 0 4 16 36 64.
fn generate(env: &mut Env, args: &Args) -> Result<(), String> {
    let n: u64 = args.parse_or("n", 10)?;
    env.generate(n, |i| i)
        .filter(|x: &u64| x % 2 == 0)
        .name("even")
        .map(|x: u64| x * x)
        .name("square")
        .print();
    Ok(())
}

/// `keyed-state`: per key, a running total (value state), the history of amounts (list
/// state) and the number of distinct amounts (map state of amount → occurrences). One line
/// per record: `{key} total={t} history={h:?} distinct={d}`.
fn keyed_state(env: &mut Env, _: &Args) -> Result<(), String> {
    env.from_elements(pairs())
        .key_by(|(name, _): &(String, i64)| name.clone())
        .process(
            |ctx: &mut KeyedCtx<String, String>, (_, amount): (String, i64)| {
                let total = ctx.value_state::<i64>("total");
                let t = total.get()?.unwrap_or(0) + amount;
                total.set(&t)?;

                let history = ctx.list_state::<i64>("history");
                history.add(&amount)?;
                let h = history.get()?;

                let seen = ctx.map_state::<i64, u32>("seen");
                let n = seen.get(&amount)?.unwrap_or(0);
                seen.put(&amount, &(n + 1))?;
                let d = seen.entries()?.len();

                let key = ctx.key();
                ctx.collect(format!("{key} total={t} history={h:?} distinct={d}"));
                Ok(())
            },
        )
        .name("stateful")
        .uid("stateful-v1")
        .print();
    Ok(())
}

/// `reduce`: running sum of the amounts per key, printed as `key sum`.
fn reduce(env: &mut Env, _: &Args) -> Result<(), String> {
    env.from_elements(pairs())
        .key_by(|(name, _): &(String, i64)| name.clone())
        .reduce(|(k, a): (String, i64), (_, b): (String, i64)| (k, a + b))
        .name("sum-by-reduce")
        .map(|(k, v): (String, i64)| format!("{k} {v}"))
        .print();
    Ok(())
}

/// `min-max-count --agg min|max|count` (default count): the host's built-in aggregates
/// over the amounts per key.
fn min_max_count(env: &mut Env, args: &Args) -> Result<(), String> {
    let keyed = env
        .from_elements(pairs())
        .key_by(|(name, _): &(String, i64)| name.clone());
    match args.get_or("agg", "count") {
        "min" => keyed.min(1).print(),
        "max" => keyed.max(1).print(),
        "count" => keyed
            .count()
            .map(|(k, n): (String, u64)| format!("{k} {n}"))
            .print(),
        other => {
            return Err(format!(
                "unknown --agg '{other}'; expected min, max or count"
            ))
        }
    };
    Ok(())
}

fn min(env: &mut Env, _: &Args) -> Result<(), String> {
    min_max_count(env, &Args::parse(["--agg", "min"]))
}

fn max(env: &mut Env, _: &Args) -> Result<(), String> {
    min_max_count(env, &Args::parse(["--agg", "max"]))
}

fn count(env: &mut Env, _: &Args) -> Result<(), String> {
    min_max_count(env, &Args::parse(["--agg", "count"]))
}

/// `parallel`: planner options. 0..1000 → map (parallelism 2, slot group "other") →
/// rebalance → process tagging the value → print; prints `n=<i*2>` for every i.
fn parallel(env: &mut Env, _: &Args) -> Result<(), String> {
    env.set_parallelism(3)
        .set_max_parallelism(64)
        .set_job_name("parallel features");
    env.generate(1000, |i| i)
        .rebalance()
        .map(|x: u64| x * 2)
        .name("double")
        .uid("double")
        .set_parallelism(2)
        .slot_sharing_group("other")
        .rebalance()
        .process(|ctx: &mut Ctx<String>, x: u64| {
            ctx.collect(format!("n={x}"));
            Ok(())
        })
        .name("tag")
        .print()
        .set_parallelism(1)
        .name("out");
    Ok(())
}

/// `slow --delay-ms D [--parallelism P]`: an endless fast source feeding, across slot-sharing groups (so
/// across TaskManagers when each has one slot), an operator that sleeps D ms per record.
/// Only back-pressure keeps the source from filling memory. `--parallelism P` (1) runs
/// P subtasks of each (the statistics benchmark's many reporting subtasks).
fn slow(env: &mut Env, args: &Args) -> Result<(), String> {
    let delay: u64 = args.parse_or("delay-ms", 1)?;
    let parallelism: u32 = args.parse_or("parallelism", 1)?;
    env.set_parallelism(parallelism).set_max_parallelism(parallelism.max(128));
    env.generate(u64::MAX, |i| format!("{i:0>90}"))
        .rebalance()
        .filter(move |_: &String| {
            std::thread::sleep(std::time::Duration::from_millis(delay));
            false
        })
        .name("slow")
        .slot_sharing_group("slow");
    Ok(())
}

eddy_sdk::entries! {
    "elements" => elements,
    "generate" => generate,
    "keyed-state" => keyed_state,
    "reduce" => reduce,
    "min-max-count" => min_max_count,
    "min" => min,
    "max" => max,
    "count" => count,
    "parallel" => parallel,
    "slow" => slow,
}

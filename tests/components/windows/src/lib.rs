//! Event-time windows over out-of-order events, for `tests/windows.rs`, which computes the
//! expected output independently. Every entry prints one line per window firing and one
//! `late …` line per record too late for all its windows.

use eddy_sdk::prelude::*;

/// `(key, timestamp ms, n)`.
type Event = (String, i64, i64);

include!("../events.rs");

/// Watermarks trail the largest timestamp by this much.
const OUT_OF_ORDERNESS: u64 = 3;
/// Late records within this much of a fired window update it.
const LATENESS: u64 = 5;

/// `windows --window tumbling|sliding|session|processing --fn count|sum|reduce|process`:
/// tumbling 10 ms, sliding 10 ms every 5 ms, sessions with a 4 ms gap (event time), or
/// tumbling 10 ms processing-time windows. Lines: `{fn} {key} end={end} n={n}`, or for
/// process `process {key} {start}..{end} {sorted values}`, and `late {key} {ts} {n}`.
/// With `--all`, every event's key is `all` and the windows are `window_all`'s (no late lines).
fn windows(env: &mut Env, args: &Args) -> Result<(), String> {
    let window = match args.get_or("window", "tumbling") {
        "tumbling" => Window::tumbling_event_time(10),
        "sliding" => Window::sliding_event_time(10, 5),
        "session" => Window::session_event_time(4),
        "processing" => Window::tumbling_processing_time(10),
        other => return Err(format!("unknown --window '{other}'")),
    };
    let all = args.has("all");
    let events: Vec<Event> = EVENTS.iter().map(|&(k, ts, n)| (if all { "all" } else { k }.to_string(), ts, n)).collect();
    if all {
        return windows_over_all(env, args, window, events);
    }
    let windowed = env
        .from_elements(events)
        .assign_timestamps(1, OUT_OF_ORDERNESS)
        .key_by(|(k, _, _): &Event| k.clone())
        .window(window)
        .allowed_lateness(LATENESS);
    windowed
        .late_data()
        .map(|(k, ts, n): Event| format!("late {k} {ts} {n}"))
        .print();
    let line = |f: &'static str| {
        move |ctx: &mut Ctx<String>, (k, _, n): Event| {
            let end = ctx.timestamp().ok_or("window results carry a timestamp")? + 1;
            ctx.collect(format!("{f} {k} end={end} n={n}"));
            Ok(())
        }
    };
    match args.get_or("fn", "count") {
        "count" => windowed
            .count()
            .process(|ctx: &mut Ctx<String>, (k, n): (String, u64)| {
                let end = ctx.timestamp().ok_or("window results carry a timestamp")? + 1;
                ctx.collect(format!("count {k} end={end} n={n}"));
                Ok(())
            })
            .print(),
        "sum" => windowed.sum(2).process(line("sum")).print(),
        "reduce" => windowed
            .reduce(|(k, ts, a): Event, (_, _, b): Event| (k, ts, a + b))
            .process(line("reduce"))
            .print(),
        "process" => windowed
            .process(|ctx: &mut Ctx<String>, key: String, w: TimeWindow, values: Vec<Event>| {
                let mut ns: Vec<i64> = values.iter().map(|e| e.2).collect();
                ns.sort();
                ctx.collect(format!("process {key} {}..{} {ns:?}", w.start, w.end));
                Ok(())
            })
            .print(),
        other => return Err(format!("unknown --fn '{other}'")),
    };
    Ok(())
}

/// The `--all` variant of `windows`: the same events and lines through `window_all`, whose
/// allowed lateness keeps it in one subtask (late firings would count twice if pre-aggregated).
fn windows_over_all(env: &mut Env, args: &Args, window: Window, events: Vec<Event>) -> Result<(), String> {
    let windowed = env.from_elements(events).assign_timestamps(1, OUT_OF_ORDERNESS).window_all(window).allowed_lateness(LATENESS);
    let line = |f: &'static str| {
        move |ctx: &mut Ctx<String>, (k, _, n): Event| {
            let end = ctx.timestamp().ok_or("window results carry a timestamp")? + 1;
            ctx.collect(format!("{f} {k} end={end} n={n}"));
            Ok(())
        }
    };
    let lines = match args.get_or("fn", "count") {
        "count" => windowed.count().process(|ctx: &mut Ctx<String>, n: u64| {
            let end = ctx.timestamp().ok_or("window results carry a timestamp")? + 1;
            ctx.collect(format!("count all end={end} n={n}"));
            Ok(())
        }),
        "sum" => windowed.sum(2).process(line("sum")),
        "reduce" => windowed.reduce(|(k, ts, a): Event, (_, _, b): Event| (k, ts, a + b)).process(line("reduce")),
        "process" => windowed.process(|ctx: &mut Ctx<String>, w: TimeWindow, values: Vec<Event>| {
            let mut ns: Vec<i64> = values.iter().map(|e| e.2).collect();
            ns.sort();
            ctx.collect(format!("process all {}..{} {ns:?}", w.start, w.end));
            Ok(())
        }),
        other => return Err(format!("unknown --fn '{other}'")),
    };
    lines.print();
    Ok(())
}

/// The event time of value `i` of `window-all`: runs of 100 values 1 ms apart, 11 ms between runs.
fn all_time(i: u64) -> i64 {
    (i + 10 * (i / 100)) as i64
}

/// `window-all --n N [--rate R] [--output DIR] --window tumbling|sliding|sliding-uneven|session|processing --fn count|sum|reduce|process`:
/// values `0..N` at [`all_time`] in windows over the whole stream: tumbling 50 ms, sliding
/// 60 (or 50: not pre-aggregated) ms every 20 ms, sessions with a 5 ms gap, or tumbling 50 ms in processing time. Lines:
/// `{fn} end={end} {n or sum}`, or for process `process {start}..{end} {count} {max}`.
fn window_all(env: &mut Env, args: &Args) -> Result<(), String> {
    let n: u64 = args.parse_or("n", 1000)?;
    let window = match args.get_or("window", "tumbling") {
        "tumbling" => Window::tumbling_event_time(50),
        "sliding" => Window::sliding_event_time(60, 20),
        "sliding-uneven" => Window::sliding_event_time(50, 20),
        "session" => Window::session_event_time(5),
        "processing" => Window::tumbling_processing_time(50),
        other => return Err(format!("unknown --window '{other}'")),
    };
    let values = match args.get("rate") {
        Some(rate) => env.generate_at_rate(n, rate.parse().map_err(|_| format!("--rate {rate}: not a number"))?, |i| (i, all_time(i))),
        None => env.generate(n, |i| (i, all_time(i))),
    };
    let windowed = values.assign_timestamps(1, 0).map(|(i, _): (u64, i64)| i).window_all(window);
    let line = |f: &'static str| {
        move |ctx: &mut Ctx<String>, x: u64| {
            let end = ctx.timestamp().ok_or("window results carry a timestamp")? + 1;
            ctx.collect(format!("{f} end={end} {x}"));
            Ok(())
        }
    };
    let lines = match args.get_or("fn", "count") {
        "count" => windowed.count().process(line("count")),
        "sum" => windowed.sum(Field::Whole).process(line("sum")),
        "reduce" => windowed.reduce(|a: u64, b: u64| a + b).process(line("reduce")),
        "process" => windowed.process(|ctx: &mut Ctx<String>, w: TimeWindow, values: Vec<u64>| {
            ctx.collect(format!("process {}..{} {} {}", w.start, w.end, values.len(), values.iter().max().unwrap()));
            Ok(())
        }),
        other => return Err(format!("unknown --fn '{other}'")),
    };
    match args.get("output") {
        Some(dir) => lines.write_text_file(dir),
        None => lines.print(),
    };
    Ok(())
}

eddy_sdk::entries! {
    "windows" => windows,
    "window-all" => window_all,
}

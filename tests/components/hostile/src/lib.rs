//! Misbehaving jobs for the host's sandbox tests. Each entry is
//! `from_elements([1, 2, 3]) → map(…) → print`, with the offending map named distinctively so
//! tests can check that the failure names the operator.
//!
//! | entry          | map name  | behaviour                                            |
//! |----------------|-----------|------------------------------------------------------|
//! | `trap`         | `explode` | panics with "boom on purpose" (a trap)               |
//! | `spin`         | `spin`    | loops forever (CPU deadline)                         |
//! | `bomb`         | `bomb`    | allocates 1 MiB blocks forever (memory cap)          |
//! | `open-file`    | `snoop`   | reads /etc/passwd, expecting the sandbox to refuse   |
//! | `bad-plan`     | -         | the job function fails: "this plan always fails"     |
//! | `log-and-count`| `log-and-count` | logs, counts "seen", prints to stdout; passes values |
//! | `state-fill`   | `fill`    | `--keys N --bytes B`: value state "v" of keys 0..N set to B `x`s |
//! | `timers`       | `timers`  | `--timers N`: key 0 registers event-time timers 1..=N |
//! | `counters`     | `counters`| `--counters N`: adds to counters c0..cN-1 (on record 1) |
//! | `log-flood`    | `flood`   | `--lines N --bytes B [--stdout]`: N lines of B `x`s (on record 1) |
//! | `sleep`        | `sleep`   | `--secs S`: sleeps S seconds in a WASI call            |
//! | `ext-value`    | `ext`     | emits a MessagePack extension value, which JSON has no form for |

use std::hint::black_box;

use eddy_sdk::prelude::*;

fn numbers(env: &mut Env) -> Stream<u64> {
    env.from_elements(vec![1u64, 2, 3])
}

fn trap(env: &mut Env, _: &Args) -> Result<(), String> {
    numbers(env)
        .map(|x: u64| -> u64 {
            if black_box(true) {
                panic!("boom on purpose");
            }
            x
        })
        .name("explode")
        .print();
    Ok(())
}

fn spin(env: &mut Env, _: &Args) -> Result<(), String> {
    numbers(env)
        .map(|x: u64| -> u64 {
            let mut i = 0u64;
            // black_box makes every iteration observable, so the loop cannot be removed.
            while black_box(true) {
                i = black_box(i.wrapping_add(x));
            }
            i
        })
        .name("spin")
        .print();
    Ok(())
}

fn bomb(env: &mut Env, _: &Args) -> Result<(), String> {
    numbers(env)
        .map(|x: u64| -> u64 {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            while black_box(true) {
                // Touch the block so that the pages are really committed.
                hoard.push(black_box(vec![x as u8; 1 << 20]));
                black_box(&mut hoard);
            }
            hoard.len() as u64
        })
        .name("bomb")
        .print();
    Ok(())
}

fn open_file(env: &mut Env, _: &Args) -> Result<(), String> {
    numbers(env)
        .map(|_: u64| {
            std::fs::read_to_string("/etc/passwd")
                .expect("cannot read /etc/passwd")
                .len() as u64
        })
        .name("snoop")
        .print();
    Ok(())
}

fn bad_plan(env: &mut Env, _: &Args) -> Result<(), String> {
    numbers(env).print();
    Err("this plan always fails".into())
}

fn log_and_count(env: &mut Env, _: &Args) -> Result<(), String> {
    numbers(env)
        .map(|x: u64| {
            info(&format!("saw {x}"));
            counter("seen", 1);
            println!("guest stdout line");
            x
        })
        .name("log-and-count")
        .print();
    Ok(())
}

fn state_fill(env: &mut Env, args: &Args) -> Result<(), String> {
    let keys: u64 = args.parse_or("keys", 4)?;
    let bytes: usize = args.parse_or("bytes", 1024)?;
    env.generate(keys, |i| i)
        .key_by(|i: &u64| *i)
        .process(move |ctx: &mut KeyedCtx<u64, u64>, i: u64| {
            ctx.value_state::<String>("v").set(&"x".repeat(bytes))?;
            ctx.collect(i);
            Ok(())
        })
        .name("fill")
        .print();
    Ok(())
}

fn timers(env: &mut Env, args: &Args) -> Result<(), String> {
    let n: i64 = args.parse_or("timers", 3)?;
    env.generate(1, |i| i)
        .key_by(|i: &u64| *i)
        .process_with_timers(
            move |ctx: &mut KeyedCtx<u64, u64>, i: u64| {
                for t in 1..=n {
                    ctx.register_event_time_timer(t)?;
                }
                ctx.collect(i);
                Ok(())
            },
            |_: &mut KeyedCtx<u64, u64>, _| Ok(()),
        )
        .name("timers")
        .print();
    Ok(())
}

fn counters(env: &mut Env, args: &Args) -> Result<(), String> {
    let n: u64 = args.parse_or("counters", 3)?;
    numbers(env)
        .map(move |x: u64| {
            for c in 0..n * (x == 1) as u64 {
                counter(&format!("c{c}"), 1);
            }
            x
        })
        .name("counters")
        .print();
    Ok(())
}

fn log_flood(env: &mut Env, args: &Args) -> Result<(), String> {
    let lines: u64 = args.parse_or("lines", 4)?;
    let bytes: usize = args.parse_or("bytes", 255)?;
    let stdout = args.has("stdout");
    numbers(env)
        .map(move |x: u64| {
            let line = "x".repeat(bytes);
            for _ in 0..lines * (x == 1) as u64 {
                if stdout {
                    println!("{line}");
                } else {
                    info(&line);
                }
            }
            x
        })
        .name("flood")
        .print();
    Ok(())
}

fn sleep(env: &mut Env, args: &Args) -> Result<(), String> {
    let secs: u64 = args.parse_or("secs", 60)?;
    numbers(env)
        .map(move |x: u64| {
            std::thread::sleep(std::time::Duration::from_secs(secs));
            x
        })
        .name("sleep")
        .print();
    Ok(())
}

/// A value that MessagePack writes as an extension type (rmp-serde's `_ExtStruct`): a
/// valid MessagePack value that the host cannot turn into JSON for the print sink.
struct Extension;

impl serde::Serialize for Extension {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        struct Payload;
        impl serde::Serialize for Payload {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeTuple;
                struct Bytes;
                impl serde::Serialize for Bytes {
                    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                        s.serialize_bytes(&[1, 2, 3])
                    }
                }
                let mut t = s.serialize_tuple(2)?;
                t.serialize_element(&5i8)?;
                t.serialize_element(&Bytes)?;
                t.end()
            }
        }
        s.serialize_newtype_struct("_ExtStruct", &Payload)
    }
}

fn ext_value(env: &mut Env, _: &Args) -> Result<(), String> {
    numbers(env).map(|_: u64| Extension).name("ext").print();
    Ok(())
}

eddy_sdk::entries! {
    "trap" => trap,
    "spin" => spin,
    "bomb" => bomb,
    "open-file" => open_file,
    "bad-plan" => bad_plan,
    "log-and-count" => log_and_count,
    "state-fill" => state_fill,
    "timers" => timers,
    "counters" => counters,
    "log-flood" => log_flood,
    "sleep" => sleep,
    "ext-value" => ext_value,
}

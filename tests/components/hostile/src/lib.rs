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

eddy_sdk::entries! {
    "trap" => trap,
    "spin" => spin,
    "bomb" => bomb,
    "open-file" => open_file,
    "bad-plan" => bad_plan,
    "log-and-count" => log_and_count,
}

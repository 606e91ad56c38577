//! Stateful jobs over a replayable, rate-limited sequence, for the
//! checkpoint, recovery and savepoint tests. Every record `i` belongs to key
//! `i % keys` and is that key's record number `i / keys`.

use eddy_sdk::prelude::*;

struct Settings {
    n: u64,
    keys: u64,
    rate: u64,
    output: String,
}

fn settings(args: &Args) -> Result<Settings, String> {
    Ok(Settings {
        n: args.parse_or("n", 100_000)?,
        keys: args.parse_or("keys", 100)?,
        rate: args.parse_or("rate", 20_000)?,
        output: args.required("output")?.to_string(),
    })
}

/// Per key `i % keys`, value state counts the records and sums them; every
/// record `i` becomes the line `key seq count sum` (seq: `i / keys`).
fn count_and_sum(numbers: Stream<u64>, keys: u64) -> Stream<String> {
    numbers
        .key_by(move |i: &u64| i % keys)
        .process(move |ctx: &mut KeyedCtx<u64, String>, i: u64| {
            let acc = ctx.value_state::<(u64, u64)>("count-and-sum");
            let (count, sum) = acc.get()?.unwrap_or((0, 0));
            let (count, sum) = (count + 1, sum + i);
            acc.set(&(count, sum))?;
            let key = ctx.key();
            ctx.collect(format!("{key} {} {count} {sum}", i / keys));
            Ok(())
        })
        .name("count-and-sum")
        .uid("count-and-sum")
}

/// `sequence-check --n N --keys K --rate R --output DIR`: per key, value
/// state counts the records and sums them; every record writes
/// `key seq count sum` to DIR. Exactly-once shows as: for each key the seqs
/// are `0..n_k` once each, and the counts `1..=n_k` once each.
fn sequence_check(env: &mut Env, args: &Args) -> Result<(), String> {
    let s = settings(args)?;
    count_and_sum(env.generate_at_rate(s.n, s.rate, |i| i).uid("sequence"), s.keys).write_text_file(s.output);
    Ok(())
}

/// `kafka-sequence-check --brokers B --topic T --keys K (--output DIR |
/// --kafka-out TOPIC [--guarantee at-least-once]) [--secret NAME] [--group G]`:
/// `sequence-check` over a Kafka topic of JSON numbers `i` (produced by the
/// test): the same per-key count and sum, each record writing `key seq count
/// sum` to the two-phase file sink or to a Kafka topic; offsets committed to
/// group G on completed checkpoints.
fn kafka_sequence_check(env: &mut Env, args: &Args) -> Result<(), String> {
    use eddy_sdk::kafka::{KafkaSink, KafkaSource};
    let brokers = args.required("brokers")?.to_string();
    let keys: u64 = args.parse_or("keys", 100)?;
    let secret = args.get("secret");
    let source = KafkaSource::new(brokers.clone(), [args.required("topic")?]).json();
    let source = match secret {
        Some(name) => source.secret(name),
        None => source,
    };
    let source = match args.get("group") {
        Some(group) => source.group(group),
        None => source,
    };
    let lines = count_and_sum(env.read_kafka::<u64>(source).uid("kafka"), keys);
    match args.get("kafka-out") {
        Some(topic) => {
            let sink = KafkaSink::new(brokers, topic);
            let sink = match secret {
                Some(name) => sink.secret(name),
                None => sink,
            };
            let sink = if args.get("guarantee") == Some("at-least-once") { sink.at_least_once() } else { sink };
            lines.write_kafka(sink)
        }
        None => lines.write_text_file(args.required("output")?),
    };
    Ok(())
}

/// `totals --n N --keys K --rate R --output DIR`: the final count and sum
/// per key twice over: a Wasm `reduce` (host keyed state) into `DIR/reduce`
/// and the built-in `sum` (host aggregate, combined before the exchange)
/// into `DIR/sum`. Lines `key count sum` and `key sum`.
fn totals(env: &mut Env, args: &Args) -> Result<(), String> {
    let s = settings(args)?;
    let keys = s.keys;
    let numbers = env.generate_at_rate(s.n, s.rate, |i| i).uid("sequence");
    numbers
        .clone()
        .map(move |i: u64| (i % keys, 1u64, i))
        .key_by(|t: &(u64, u64, u64)| t.0)
        .reduce(|a: (u64, u64, u64), b: (u64, u64, u64)| (a.0, a.1 + b.1, a.2 + b.2))
        .uid("reduce")
        .map(|(k, c, s): (u64, u64, u64)| format!("{k} {c} {s}"))
        .write_text_file(format!("{}/reduce", s.output));
    numbers
        .map(move |i: u64| (i % keys, i))
        .key_by(|t: &(u64, u64)| t.0)
        .sum(1)
        .uid("sum")
        .map(|(k, s): (u64, u64)| format!("{k} {s}"))
        .write_text_file(format!("{}/sum", s.output));
    Ok(())
}

/// `big-state --n N --keys K --value-bytes B --rate R`: keeps a B-byte
/// value per key in value state (K × B bytes in all), for the checkpoint
/// benchmark; emits nothing.
fn big_state(env: &mut Env, args: &Args) -> Result<(), String> {
    let n: u64 = args.parse_or("n", 2_000_000)?;
    let keys: u64 = args.parse_or("keys", 1_000_000)?;
    let bytes: usize = args.parse_or("value-bytes", 1000)?;
    let rate: u64 = args.parse_or("rate", 1_000_000)?;
    let blob = "x".repeat(bytes);
    env.generate_at_rate(n, rate, |i| i)
        .key_by(move |i: &u64| i % keys)
        .process(move |ctx: &mut KeyedCtx<u64, String>, _: u64| ctx.value_state::<String>("blob").set(&blob))
        .uid("big-state")
        .print();
    Ok(())
}

/// `timers --n N --rate R`: records `i` over keys `i % 3`. Per key: on its
/// first record an event-time timer at 1000 and a processing-time timer
/// 100 ms later; state `recent` lives 50 ms (TTL), `count` forever. Prints
/// `expired K` when a record finds `recent` gone, `processing K` and
/// `event K 1000 count=C` when the timers fire (event time reaches 1000 only
/// with the final watermark, after every record).
fn timers(env: &mut Env, args: &Args) -> Result<(), String> {
    let n: u64 = args.parse_or("n", 21)?;
    let rate: u64 = args.parse_or("rate", 10)?;
    env.generate_at_rate(n, rate, |i| i)
        .key_by(|i: &u64| i % 3)
        .process_with_timers(
            |ctx: &mut KeyedCtx<u64, String>, _: u64| {
                let count = ctx.value_state::<u64>("count");
                let c = count.get()?.unwrap_or(0) + 1;
                count.set(&c)?;
                let recent = ctx.value_state::<bool>("recent").with_ttl(std::time::Duration::from_millis(50));
                if c == 1 {
                    ctx.register_event_time_timer(1000)?;
                    ctx.register_processing_time_timer(ctx.current_processing_time() + 100)?;
                } else if recent.get()?.is_none() {
                    let key = ctx.key();
                    ctx.collect(format!("expired {key}"));
                }
                recent.set(&true)
            },
            |ctx: &mut KeyedCtx<u64, String>, timer: Timer| {
                let key = ctx.key();
                match timer.domain {
                    TimeDomain::EventTime => {
                        let c = ctx.value_state::<u64>("count").get()?.unwrap_or(0);
                        ctx.collect(format!("event {key} {} count={c}", timer.timestamp));
                    }
                    TimeDomain::ProcessingTime => ctx.collect(format!("processing {key}")),
                }
                Ok(())
            },
        )
        .print();
    Ok(())
}

eddy_sdk::entries! {
    "timers" => timers,
    "kafka-sequence-check" => kafka_sequence_check,
    "sequence-check" => sequence_check,
    "totals" => totals,
    "big-state" => big_state,
}

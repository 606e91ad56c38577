//! Word count, the "hello world" of stream processing, as an Eddy job component.
//!
//! - `word-count --input FILE [--output DIR]`: counts the words of a text file.
//! - `stream-word-count [--host H] [--port P]`: running counts of the lines of a socket
//!   (try `nc -lk 7777`).
//! - `kafka-word-count --brokers HOST:PORT --input TOPIC --output TOPIC [--window-ms W]`:
//!   words of a Kafka topic counted per tumbling event-time window (Kafka timestamps), into
//!   another topic at least once, keyed by word (see docs/kafka.md).
//! - `tokenize`: an operator entry (lines in, words out) for jobs that mix components
//!   (`examples/mixed/job.toml`).
//!
//! Both print (or write) `word count` lines: `word-count` each word's final count,
//! `stream-word-count` every update of a count as lines arrive.

use eddy_sdk::prelude::*;

/// The counting both entries share: lines in, `word count` lines out, one per update of a
/// word's count (in a bounded job, only each word's final count).
fn count_words(lines: Stream<String>) -> Stream<String> {
    words(lines)
        .key_by(|word: &String| word.clone())
        .count()
        .name("count")
        .map(|(word, n): (String, u64)| format!("{word} {n}"))
        .name("format")
}

fn word_count(env: &mut Env, args: &Args) -> Result<(), String> {
    let input = args.required("input")?;
    let counts = count_words(env.read_text_file(input));
    match args.get("output") {
        Some(path) => counts.write_text_file(path),
        None => counts.print(),
    };
    Ok(())
}

/// Lines in, their words out.
fn words(lines: Stream<String>) -> Stream<String> {
    lines.flat_map(|line: String| eddy_sdk::text::words(&line).collect::<Vec<_>>()).name("tokenize")
}

fn tokenize(env: &mut Env, _args: &Args) -> Result<(), String> {
    words(env.input());
    Ok(())
}

fn stream_word_count(env: &mut Env, args: &Args) -> Result<(), String> {
    let host = args.get_or("host", "localhost");
    let port: u16 = args.parse_or("port", 7777)?;
    env.set_job_name(format!("stream word count ({host}:{port})"));
    count_words(env.socket_text_stream(host, port)).print();
    Ok(())
}

/// Reads lines of `--input`, counts words per `--window-ms` (default 1 s)
/// tumbling window of their records' Kafka timestamps, watermarks
/// `--out-of-orderness-ms` behind (default 0), a partition idle after
/// `--idle-ms` (default 1 s) not holding them back; writes `{"word","end","n"}`
/// keyed by word into `--output`, flushed on every checkpoint.
fn kafka_word_count(env: &mut Env, args: &Args) -> Result<(), String> {
    use eddy_sdk::kafka::{KafkaOut, KafkaSink, KafkaSource};
    let brokers = args.required("brokers")?;
    let window: u64 = args.parse_or("window-ms", 1000)?;
    let lines = env
        .read_kafka::<String>(KafkaSource::new(brokers, [args.required("input")?]))
        .uid("kafka-input")
        .assign_watermarks(args.parse_or("out-of-orderness-ms", 0)?)
        .with_idleness(args.parse_or("idle-ms", 1000)?);
    words(lines)
        .key_by(|word: &String| word.clone())
        .window(Window::tumbling_event_time(window))
        .count()
        .uid("window-counts")
        .process(|ctx: &mut Ctx<KafkaOut>, (word, n): (String, u64)| {
            let end = ctx.timestamp().ok_or("window results carry a timestamp")? + 1;
            let value = serde_json::json!({ "word": word, "end": end, "n": n });
            ctx.collect(KafkaOut { key: Some(word.into()), value: Some(value), ..KafkaOut::default() });
            Ok(())
        })
        .write_kafka(KafkaSink::new(brokers, args.required("output")?).envelope().at_least_once());
    Ok(())
}

eddy_sdk::entries! {
    "word-count" => word_count,
    "stream-word-count" => stream_word_count,
    "kafka-word-count" => kafka_word_count,
    "tokenize" => tokenize,
}

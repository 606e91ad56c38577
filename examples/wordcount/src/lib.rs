//! Word count, the "hello world" of stream processing, as an Eddy job component.
//!
//! - `word-count --input FILE [--output DIR]`: counts the words of a text file.
//! - `stream-word-count [--host H] [--port P]`: running counts of the lines of a socket
//!   (try `nc -lk 7777`).
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

eddy_sdk::entries! {
    "word-count" => word_count,
    "stream-word-count" => stream_word_count,
    "tokenize" => tokenize,
}

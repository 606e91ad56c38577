//! Word count, the "hello world" of stream processing, as an Eddy job component.
//!
//! - `word-count --input FILE [--output DIR]`: counts the words of a text file.
//! - `stream-word-count [--host H] [--port P]`: running counts of the lines of a socket
//!   (try `nc -lk 7777`).
//!
//! Both print (or write) `word count` lines, one per update of a word's count.

use eddy_sdk::prelude::*;

/// Splits lines into `(word, 1)` pairs; shared by both entries so they count alike.
fn tokenize(line: String) -> Vec<(String, i64)> {
    eddy_sdk::text::words(&line).map(|w| (w, 1i64)).collect()
}

fn word_count(env: &mut Env, args: &Args) -> Result<(), String> {
    let input = args.required("input")?;
    let counts = env
        .read_text_file(input)
        .flat_map(tokenize)
        .name("tokenize")
        .key_by(|(word, _): &(String, i64)| word.clone())
        .sum(1)
        .name("count")
        .map(|(word, n): (String, i64)| format!("{word} {n}"))
        .name("format");
    match args.get("output") {
        Some(path) => counts.write_text_file(path),
        None => counts.print(),
    };
    Ok(())
}

fn stream_word_count(env: &mut Env, args: &Args) -> Result<(), String> {
    let host = args.get_or("host", "localhost");
    let port: u16 = args.parse_or("port", 7777)?;
    env.set_job_name(format!("stream word count ({host}:{port})"));
    env.socket_text_stream(host, port)
        .flat_map(tokenize)
        .name("tokenize")
        .key_by(|(word, _): &(String, i64)| word.clone())
        .sum(1)
        .name("count")
        .map(|(word, n): (String, i64)| format!("{word} {n}"))
        .name("format")
        .print();
    Ok(())
}

eddy_sdk::entries! {
    "word-count" => word_count,
    "stream-word-count" => stream_word_count,
}

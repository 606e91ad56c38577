"""Word count, the "hello world" of stream processing, as an Eddy job in Python: the same
graph and output as the Rust example (examples/wordcount/src/lib.rs).

- ``word-count --input FILE [--output DIR]``: counts the words of a text file.
- ``stream-word-count [--host H] [--port P]``: running counts of the lines of a socket
  (try ``nc -lk 7777``).

Build and run::

    guest-sdk/python/build.sh examples/python/wordcount.py target/wordcount-py.wasm
    target/release/eddy run -c word-count target/wordcount-py.wasm --input examples/wordcount/sample.txt
"""

import eddy


def count_words(lines):
    """Lines in, ``word count`` lines out, one per update of a word's count (in a bounded
    job, only each word's final count)."""
    return (lines
            .flat_map(eddy.text.words).name("tokenize")
            .key_by(lambda word: word)
            .count().name("count")
            .map(lambda wc: f"{wc[0]} {wc[1]}").name("format"))


@eddy.entry("word-count")
def word_count(env, args):
    counts = count_words(env.read_text_file(args.required("input")))
    output = args.get("output")
    if output is not None:
        counts.write_text_file(output)
    else:
        counts.print()


@eddy.entry("stream-word-count")
def stream_word_count(env, args):
    host = args.get_or("host", "localhost")
    port = args.parse_or("port", 7777)
    env.set_job_name(f"stream word count ({host}:{port})")
    count_words(env.socket_text_stream(host, port)).print()

// Word count, the "hello world" of stream processing, as an Eddy job in JavaScript: the same
// graph and output as the Rust example (examples/wordcount/src/lib.rs).
//
// - `word-count --input FILE [--output DIR]`: counts the words of a text file.
// - `stream-word-count [--host H] [--port P]`: running counts of the lines of a socket
//   (try `nc -lk 7777`).
//
// Build: guest-sdk/js/build.sh examples/js/wordcount.js target/js/wordcount.wasm
// Run:   target/release/eddy run -c word-count target/js/wordcount.wasm --input examples/wordcount/sample.txt

import { entry, words } from "eddy";

/** Lines in, `word count` lines out, one per update of a word's count (bounded: the final ones). */
function countWords(lines) {
  return lines
    .flatMap((line) => words(line))
    .name("tokenize")
    .keyBy((word) => word)
    .count()
    .name("count")
    .map(([word, n]) => `${word} ${n}`)
    .name("format");
}

entry("word-count", (env, args) => {
  const counts = countWords(env.readTextFile(args.required("input")));
  const output = args.get("output");
  if (output !== undefined) counts.writeTextFile(output);
  else counts.print();
});

entry("stream-word-count", (env, args) => {
  const host = args.getOr("host", "localhost");
  const port = args.parseOr("port", 7777);
  env.setJobName(`stream word count (${host}:${port})`);
  countWords(env.socketTextStream(host, port)).print();
});

/*
 * eddy.h — the C SDK for Eddy operators.
 *
 * A C program becomes an Eddy job component (world `job` of wit/eddy.wit) by listing its
 * entries with EDDY_ENTRIES and building each entry's graph in a job function. This SDK
 * implements the planner and operator exports over the bindings that wit-bindgen's C
 * generator makes from the WIT, the same way the Rust SDK does (guest-sdk/src/runtime.rs):
 *
 *   - running a job function records both the job graph (what `planner.plan` returns) and
 *     the registry of user operators (`wasm(n)` vertices, n = order of registration);
 *   - `operator.open` re-runs the same job function, which must therefore be deterministic,
 *     and fuses the chosen registry entries into one chain: emitting from operator i calls
 *     operator i+1 directly, and what the last one emits is framed into the output batch.
 *
 * Values and keys are JSON bytes (wit/README.md); the JSON helpers below read and write
 * the common cases without a JSON library.
 *
 * Errors: every function that can fail returns an int, 0 for success and -1 for failure,
 * after recording a message with eddy_error(). User functions pass that -1 on (typically
 * `return eddy_error("...")`), and the SDK turns it into the export's error result, which
 * fails the task with the operator's name and the message. Nothing in the SDK traps except
 * running out of memory inside the generated bindings.
 *
 * Memory: record pointers handed to an operator are valid only during the call; data an
 * operator keeps (its `data` pointer) is best allocated with eddy_alloc() in the job
 * function, which ties it to the instance.
 */
#ifndef EDDY_H
#define EDDY_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------ errors */

/* Records the error message (printf format) that the current export call returns, and
 * returns -1 so that `return eddy_error(...)` fails the calling function. */
int eddy_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The message recorded by the last eddy_error() ("" if none). */
const char *eddy_last_error(void);

/* ----------------------------------------------------------------- buffers */

/* A growable byte buffer (malloc'd). Zero-initialise it: `eddy_buf b = {0};`. */
typedef struct eddy_buf {
    uint8_t *ptr;
    size_t len;
    size_t cap;
} eddy_buf;

int eddy_buf_reserve(eddy_buf *b, size_t extra);
int eddy_buf_push(eddy_buf *b, const void *bytes, size_t n);
int eddy_buf_push_str(eddy_buf *b, const char *s);
int eddy_buf_push_byte(eddy_buf *b, uint8_t byte);
void eddy_buf_free(eddy_buf *b);

/* ------------------------------------------------------- records and batches */

/* One record: slices of the batch it came from (wit/README.md, "Batch framing"). */
typedef struct eddy_record {
    bool has_key;
    const uint8_t *key; /* JSON of the key, when has_key */
    size_t key_len;
    bool has_timestamp;
    int64_t timestamp; /* event time, ms, when has_timestamp */
    const uint8_t *value; /* JSON */
    size_t value_len;
} eddy_record;

/* Walks the records of a batch without copying. */
typedef struct eddy_reader {
    const uint8_t *at;
    const uint8_t *end;
} eddy_reader;

void eddy_reader_init(eddy_reader *r, const uint8_t *batch, size_t len);
/* 1: *out is the next record; 0: the batch ended; -1: malformed batch (error recorded). */
int eddy_reader_next(eddy_reader *r, eddy_record *out);

/* Appends one record to a batch in the framing. */
int eddy_batch_append(eddy_buf *batch, const eddy_record *r);

/* ------------------------------------------------------------------- JSON */

/* Reads a value that must be a JSON string (whitespace around it allowed) into `out`
 * (appended, UTF-8): unescapes \" \\ \/ \b \f \n \r \t and \uXXXX (with surrogate pairs).
 * Fails with "expected a JSON string, got ..." for any other value. */
int eddy_json_read_string(const uint8_t *json, size_t len, eddy_buf *out);

/* Appends `s` (UTF-8) as a JSON string, escaped as serde_json does: `"` and `\`, control
 * characters as \b \f \n \r \t or \u00XX; everything else, non-ASCII too, as is. `s` may
 * point into `out` itself (e.g. text just read into the same buffer). */
int eddy_json_write_string(eddy_buf *out, const uint8_t *s, size_t len);

/* Reads a value that must be a JSON integer (no fraction or exponent) fitting an int64. */
int eddy_json_read_i64(const uint8_t *json, size_t len, int64_t *out);

/* Appends a JSON integer. */
int eddy_json_write_i64(eddy_buf *out, int64_t v);

/* Number of code points of UTF-8 text. */
size_t eddy_utf8_count(const uint8_t *s, size_t len);

/* --------------------------------------------------------------- arguments */

/* Job arguments, parsed as Flink's ParameterTool (and the Rust SDK's Args): `--key value`,
 * `--key=value`, `-key value`, a bare `--flag` is "true", negative numbers are values, a
 * later option overrides an earlier one, everything after `--` is positional. */
typedef struct eddy_args eddy_args;

/* The value of --name, or NULL. */
const char *eddy_arg(const eddy_args *args, const char *name);
/* The value of --name, or `fallback`. */
const char *eddy_arg_or(const eddy_args *args, const char *name, const char *fallback);
/* The value of --name into *out; fails with "missing required argument --name". */
int eddy_arg_required(const eddy_args *args, const char *name, const char **out);
/* --name as an unsigned integer, `fallback` when absent; a malformed value is an error. */
int eddy_arg_u64(const eddy_args *args, const char *name, uint64_t fallback, uint64_t *out);
/* Positional arguments (not options or option values), in order. */
size_t eddy_arg_positional_count(const eddy_args *args);
const char *eddy_arg_positional(const eddy_args *args, size_t i);

/* --------------------------------------------------------------- operators */

/* What an operator function sees besides its input record. */
typedef struct eddy_ctx eddy_ctx;

/* An operator: called once per input record; emits any number of records through `ctx`.
 * Returns 0, or -1 after eddy_error(). */
typedef int (*eddy_process_fn)(eddy_ctx *ctx, const eddy_record *in);

/* The `data` pointer given when the operator was added to the graph. */
void *eddy_data(eddy_ctx *ctx);

/* A scratch buffer of this operator, emptied before each call: build output values here. */
eddy_buf *eddy_scratch(eddy_ctx *ctx);

/* Emits a record downstream (to the next fused operator, or into the output batch). */
int eddy_emit(eddy_ctx *ctx, const eddy_record *r);

/* Emits `value` (JSON) with the key and timestamp of `in`, as a map does. */
int eddy_emit_value(eddy_ctx *ctx, const eddy_record *in, const uint8_t *value, size_t len);

/* The subtask this instance runs as. */
typedef struct eddy_subtask {
    uint32_t index;
    uint32_t parallelism;
    uint32_t max_parallelism;
} eddy_subtask;
eddy_subtask eddy_subtask_info(void);

/* ----------------------------------------------------------- keyed state */

/* In a keyed operator (eddy_keyed_operator) the state functions apply to the key of the
 * record being processed: the SDK tells the host that key (set-current-key) the first
 * time state is touched for it. Values are bytes; by convention JSON. */

/* 1 and the value in `out` (replacing its contents); 0 when the key has none; -1 error. */
int eddy_value_get(eddy_ctx *ctx, const char *state, eddy_buf *out);
int eddy_value_set(eddy_ctx *ctx, const char *state, const uint8_t *value, size_t len);
int eddy_value_clear(eddy_ctx *ctx, const char *state);

/* Sets the key the host's state functions apply to (host import set-current-key); fails
 * when the key does not belong to this subtask. Keyed operators need not call it. */
int eddy_set_current_key(const uint8_t *key, size_t len);

/* ------------------------------------------------------------- host calls */

typedef enum eddy_level {
    EDDY_TRACE,
    EDDY_DEBUG,
    EDDY_INFO,
    EDDY_WARN,
    EDDY_ERROR,
} eddy_level;

/* Writes a line into the task's log (printf format). */
void eddy_log(eddy_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Adds to a named counter of this subtask (shown in job metrics). */
void eddy_counter_add(const char *name, uint64_t delta);

/* ------------------------------------------------------------ job graphs */

/* The environment a job function builds its graph on. Builder functions return the new
 * vertex's id; they cannot fail (an allocation failure is reported when building ends). */
typedef struct eddy_env eddy_env;

/* The records of the job this entry is spliced into: an entry whose graph starts here is
 * an operator entry (for `eddy run job.toml`); it cannot run as a job on its own. */
uint32_t eddy_input(eddy_env *env);
/* Lines of a text file as JSON strings (bounded). */
uint32_t eddy_read_text_file(eddy_env *env, const char *path);
/* The numbers 0..count as JSON values (bounded, split across subtasks). */
uint32_t eddy_sequence(eddy_env *env, uint64_t count);

/* A user operator (`wasm(n)` vertex, n = registry index) reading `from` through a forward
 * edge (a rebalance edge when both parallelisms are set and differ, as in Flink). */
uint32_t eddy_operator(eddy_env *env, uint32_t from, const char *name, eddy_process_fn fn,
                       void *data);
/* A keyed user operator: `keyed`, reading `from` through a hash edge, so one subtask sees
 * all records of a key; the records must carry keys. Its state functions apply to each
 * record's key. */
uint32_t eddy_keyed_operator(eddy_env *env, uint32_t from, const char *name,
                             eddy_process_fn fn, void *data);

/* Sinks: values to standard output, or as lines into part files under `dir`. */
uint32_t eddy_print(eddy_env *env, uint32_t from);
uint32_t eddy_write_text_file(eddy_env *env, uint32_t from, const char *dir);

/* An operator entry in one call: `input` (vertex 0) -> the operator named `name`
 * (vertex 1, registry index 0); keyed: hash edge and `keyed` vertex, else forward. */
uint32_t eddy_operator_entry(eddy_env *env, const char *name, eddy_process_fn fn, void *data,
                             bool keyed);

/* Zeroed memory for an operator's `data` that lives exactly as long as the operators built
 * on `env` (an instance: from `open` on). NULL, with the error recorded, when out of memory. */
void *eddy_alloc(eddy_env *env, size_t size);

/* Vertex and job settings. */
void eddy_set_parallelism(eddy_env *env, uint32_t vertex, uint32_t parallelism);
void eddy_set_uid(eddy_env *env, uint32_t vertex, const char *uid);
void eddy_set_job_parallelism(eddy_env *env, uint32_t parallelism);
void eddy_set_max_parallelism(eddy_env *env, uint32_t max_parallelism);
void eddy_set_job_name(eddy_env *env, const char *name);

/* --------------------------------------------------------------- entries */

/* A job function: builds the graph of one entry from the job arguments; returns 0, or -1
 * after eddy_error() (e.g. a missing argument), which planning reports to the user. */
typedef int (*eddy_job_fn)(eddy_env *env, const eddy_args *args);

typedef struct eddy_entry {
    const char *name;
    eddy_job_fn job;
} eddy_entry;

/* The component's entries; define them once with EDDY_ENTRIES. */
extern const eddy_entry eddy_entries[];
extern const size_t eddy_entry_count;

/* EDDY_ENTRIES({"name", job_fn}, ...) defines the entries `planner.entries` lists. */
#define EDDY_ENTRIES(...)                                                                  \
    const eddy_entry eddy_entries[] = {__VA_ARGS__};                                         \
    const size_t eddy_entry_count = sizeof(eddy_entries) / sizeof(eddy_entries[0])

#ifdef __cplusplus
}
#endif
#endif /* EDDY_H */

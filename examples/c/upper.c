/*
 * upper.c — string operators in C, as operator entries for jobs that mix components
 * (`eddy run job.toml`, e.g. examples/c/words.toml) and as small jobs of their own.
 *
 * Operator entries (graph `input -> operator`; they cannot run alone):
 *   - upper:                values are JSON strings; emits each one upper-cased. ASCII only:
 *                           a-z become A-Z, every other character (é, ß, ...) is kept as is.
 *   - length-filter [--min N]: keeps the JSON string values of at least N code points
 *                           (default 4).
 *   - key-by-value:         sets each record's key to its value, so that a following keyed
 *                           entry sees all equal values in one subtask.
 *   - running-count [--max-parallelism N]: keyed (its input edge is hashed and the records
 *                           must carry keys, e.g. from key-by-value): per key, counts the
 *                           records in value state and emits [key, count] for each one.
 *                           N sets the job's key groups unless the job file sets them.
 *
 * Jobs:
 *   - upper-file --input FILE [--output DIR]: the lines of FILE upper-cased.
 *   - count-lines --input FILE: every distinct line with the running count of its
 *                           occurrences, i.e. key-by-value then running-count.
 *
 * Build: guest-sdk/c/build.sh examples/c/upper.c target/wasm32-wasip2/component/upper_c.wasm
 */
#include "eddy.h"

/* ---------------------------------------------------------------- operators */

/* upper: the value's string with a-z upper-cased (ASCII only). */
static int upper(eddy_ctx *ctx, const eddy_record *in) {
    eddy_buf *text = eddy_scratch(ctx);
    if (eddy_json_read_string(in->value, in->value_len, text)) return -1;
    for (size_t i = 0; i < text->len; i++)
        if (text->ptr[i] >= 'a' && text->ptr[i] <= 'z') text->ptr[i] -= 'a' - 'A';
    /* The JSON goes after the text in the same buffer. */
    size_t text_len = text->len;
    if (eddy_json_write_string(text, text->ptr, text_len)) return -1;
    return eddy_emit_value(ctx, in, text->ptr + text_len, text->len - text_len);
}

/* length-filter: keeps strings of at least *min code points, forwarding the bytes as they
 * came. */
static int length_filter(eddy_ctx *ctx, const eddy_record *in) {
    const uint64_t *min = eddy_data(ctx);
    eddy_buf *text = eddy_scratch(ctx);
    if (eddy_json_read_string(in->value, in->value_len, text)) return -1;
    if (eddy_utf8_count(text->ptr, text->len) < *min) return 0;
    return eddy_emit(ctx, in);
}

/* key-by-value: the record, keyed by its value. */
static int key_by_value(eddy_ctx *ctx, const eddy_record *in) {
    eddy_record out = *in;
    out.has_key = true;
    out.key = in->value;
    out.key_len = in->value_len;
    return eddy_emit(ctx, &out);
}

/* running-count: [key, n] where n counts the key's records so far (state "count"). */
static int running_count(eddy_ctx *ctx, const eddy_record *in) {
    eddy_buf *out = eddy_scratch(ctx);
    int64_t count = 0;
    int found = eddy_value_get(ctx, "count", out);
    if (found < 0 || (found && eddy_json_read_i64(out->ptr, out->len, &count))) return -1;
    count++;
    out->len = 0;
    if (eddy_json_write_i64(out, count)) return -1;
    if (eddy_value_set(ctx, "count", out->ptr, out->len)) return -1;
    out->len = 0;
    if (eddy_buf_push_byte(out, '[') || eddy_buf_push(out, in->key, in->key_len) ||
        eddy_buf_push_byte(out, ',') || eddy_json_write_i64(out, count) ||
        eddy_buf_push_byte(out, ']'))
        return -1;
    return eddy_emit_value(ctx, in, out->ptr, out->len);
}

/* ------------------------------------------------------------------ entries */

static int upper_entry(eddy_env *env, const eddy_args *args) {
    (void)args;
    eddy_operator_entry(env, "upper", upper, NULL, false);
    return 0;
}

static int length_filter_entry(eddy_env *env, const eddy_args *args) {
    uint64_t *min = eddy_alloc(env, sizeof *min);
    if (!min || eddy_arg_u64(args, "min", 4, min)) return -1;
    eddy_operator_entry(env, "length-filter", length_filter, min, false);
    return 0;
}

static int key_by_value_entry(eddy_env *env, const eddy_args *args) {
    (void)args;
    eddy_operator_entry(env, "key-by-value", key_by_value, NULL, false);
    return 0;
}

static int running_count_entry(eddy_env *env, const eddy_args *args) {
    uint64_t key_groups;
    if (eddy_arg_u64(args, "max-parallelism", 0, &key_groups)) return -1;
    if (key_groups > UINT32_MAX) return eddy_error("--max-parallelism is at most %u", UINT32_MAX);
    if (key_groups) eddy_set_max_parallelism(env, (uint32_t)key_groups);
    eddy_operator_entry(env, "running-count", running_count, NULL, true);
    return 0;
}

static int upper_file(eddy_env *env, const eddy_args *args) {
    const char *input, *output = eddy_arg(args, "output");
    if (eddy_arg_required(args, "input", &input)) return -1;
    uint32_t lines = eddy_read_text_file(env, input);
    uint32_t upper_lines = eddy_operator(env, lines, "upper", upper, NULL);
    if (output) eddy_write_text_file(env, upper_lines, output);
    else eddy_print(env, upper_lines);
    return 0;
}

static int count_lines(eddy_env *env, const eddy_args *args) {
    const char *input;
    if (eddy_arg_required(args, "input", &input)) return -1;
    uint32_t lines = eddy_read_text_file(env, input);
    uint32_t keyed = eddy_operator(env, lines, "key-by-value", key_by_value, NULL);
    uint32_t counts = eddy_keyed_operator(env, keyed, "running-count", running_count, NULL);
    eddy_print(env, counts);
    return 0;
}

EDDY_ENTRIES(
    {"upper", upper_entry},
    {"length-filter", length_filter_entry},
    {"key-by-value", key_by_value_entry},
    {"running-count", running_count_entry},
    {"upper-file", upper_file},
    {"count-lines", count_lines},
);

/*
 * Native unit tests of the C SDK: framing, JSON, arguments, graph building, and the
 * planner and operator exports driven directly (as the generated bindings would call them)
 * with the operators of examples/c/upper.c, against a fake host (value state in memory).
 *
 * Built by guest-sdk/c/test.sh with the host's C compiler (under AddressSanitizer when
 * available), not for wasm: it includes eddy.c to reach its internals and replaces the
 * host imports and the binding helpers it calls.
 */
#include "../eddy.c"

#include <stdio.h>

/* ------------------------------------------------------------- test kit */

static int passed, failed;

#define CHECK(cond)                                                                          \
    do {                                                                                     \
        if (cond) passed++;                                                                  \
        else {                                                                               \
            failed++;                                                                        \
            fprintf(stderr, "FAILED %s:%d: %s (last error: %s)\n", __FILE__, __LINE__, #cond,  \
                    eddy_last_error());                                                      \
        }                                                                                    \
    } while (0)

static bool bytes_eq(const uint8_t *p, size_t n, const char *s) {
    return n == strlen(s) && (n == 0 || memcmp(p, s, n) == 0);
}

#define BUF_EQ(buf, s) bytes_eq((buf).ptr, (buf).len, s)
#define ERROR_IS(s) (strcmp(eddy_last_error(), s) == 0)

static const uint8_t *u8(const char *s) { return (const uint8_t *)s; }

/* A malloc'd WIT string, as the bindings hand to exports (which own it). */
static job_string_t owned(const char *s) {
    job_string_t out = {malloc(strlen(s) + 1), strlen(s)};
    memcpy(out.ptr, s, out.len);
    return out;
}

static job_list_string_t owned_args(int n, const char **tokens) {
    job_list_string_t out = {malloc(sizeof(job_string_t) * (n ? n : 1)), (size_t)n};
    for (int i = 0; i < n; i++) out.ptr[i] = owned(tokens[i]);
    return out;
}

/* ---------------------------------------- binding helpers and a fake host */

void job_string_free(job_string_t *s) {
    free(s->ptr);
    s->ptr = NULL;
    s->len = 0;
}
void job_list_string_free(job_list_string_t *l) {
    for (size_t i = 0; i < l->len; i++) job_string_free(&l->ptr[i]);
    free(l->ptr);
    l->ptr = NULL;
    l->len = 0;
}
void job_list_u32_free(job_list_u32_t *l) {
    free(l->ptr);
    l->ptr = NULL;
    l->len = 0;
}
void job_list_u8_free(job_list_u8_t *l) {
    free(l->ptr);
    l->ptr = NULL;
    l->len = 0;
}
void eddy_stream_types_batch_free(eddy_stream_types_batch_t *b) {
    free(b->ptr);
    b->ptr = NULL;
    b->len = 0;
}

/* Value state: (key, state) -> value, for a handful of entries. */
static struct {
    char key[64], state[32];
    uint8_t value[64];
    size_t value_len;
} fake_state[32];
static size_t fake_entries, set_key_calls;
static char fake_key[64];
static char last_log[256];

bool eddy_stream_host_set_current_key(job_list_u8_t *key, job_string_t *err) {
    set_key_calls++;
    snprintf(fake_key, sizeof fake_key, "%.*s", (int)key->len, (const char *)key->ptr);
    if (strcmp(fake_key, "\"elsewhere\"") == 0) {
        *err = owned("key \"elsewhere\" belongs to key group 7, not to this subtask");
        return false;
    }
    return true;
}

static int fake_find(const job_string_t *state) {
    for (size_t i = 0; i < fake_entries; i++)
        if (strcmp(fake_state[i].key, fake_key) == 0 &&
            bytes_eq(state->ptr, state->len, fake_state[i].state))
            return (int)i;
    return -1;
}

bool eddy_stream_host_value_get(job_string_t *state, job_list_u8_t *ret) {
    int i = fake_find(state);
    if (i < 0) return false;
    ret->len = fake_state[i].value_len;
    ret->ptr = malloc(ret->len ? ret->len : 1);
    memcpy(ret->ptr, fake_state[i].value, ret->len);
    return true;
}

void eddy_stream_host_value_set(job_string_t *state, job_list_u8_t *value) {
    int i = fake_find(state);
    if (i < 0) {
        i = (int)fake_entries++;
        snprintf(fake_state[i].key, sizeof fake_state[i].key, "%s", fake_key);
        snprintf(fake_state[i].state, sizeof fake_state[i].state, "%.*s", (int)state->len,
                 (const char *)state->ptr);
    }
    memcpy(fake_state[i].value, value->ptr, value->len);
    fake_state[i].value_len = value->len;
}

void eddy_stream_host_value_clear(job_string_t *state) {
    int i = fake_find(state);
    if (i >= 0) fake_state[i] = fake_state[--fake_entries];
}

void eddy_stream_host_log(eddy_stream_host_level_t level, job_string_t *message) {
    snprintf(last_log, sizeof last_log, "%d %.*s", level, (int)message->len,
             (const char *)message->ptr);
}

void eddy_stream_host_counter_add(job_string_t *name, uint64_t delta) {
    (void)name;
    (void)delta;
}

/* --------------------------------------------------------------- framing */

static void test_framing(void) {
    eddy_buf b = {0};
    eddy_record a = {.value = u8("\"x\""), .value_len = 3};
    eddy_record k = {.has_key = true, .key = u8("\"k\""), .key_len = 3, .has_timestamp = true,
                     .timestamp = -5, .value = u8("[1,2]"), .value_len = 5};
    eddy_record empty = {.has_key = true, .key = u8(""), .key_len = 0, .value = u8(""), .value_len = 0};
    CHECK(eddy_batch_append(&b, &a) == 0);
    CHECK(eddy_batch_append(&b, &k) == 0);
    CHECK(eddy_batch_append(&b, &empty) == 0);
    CHECK(b.len == (1 + 4 + 3) + (1 + 8 + 4 + 3 + 4 + 5) + (1 + 4 + 4));
    /* The framing of wit/README.md, byte for byte. */
    CHECK(b.ptr[0] == 0 && b.ptr[1] == 3 && b.ptr[2] == 0 && b.ptr[5] == '"');
    CHECK(b.ptr[8] == 3 && b.ptr[9] == 0xFB && b.ptr[16] == 0xFF && b.ptr[17] == 3);

    eddy_reader r;
    eddy_record got;
    eddy_reader_init(&r, b.ptr, b.len);
    CHECK(eddy_reader_next(&r, &got) == 1);
    CHECK(!got.has_key && !got.has_timestamp && bytes_eq(got.value, got.value_len, "\"x\""));
    CHECK(eddy_reader_next(&r, &got) == 1);
    CHECK(got.has_key && bytes_eq(got.key, got.key_len, "\"k\"") && got.has_timestamp &&
          got.timestamp == -5 && bytes_eq(got.value, got.value_len, "[1,2]"));
    CHECK(eddy_reader_next(&r, &got) == 1);
    CHECK(got.has_key && got.key_len == 0 && got.value_len == 0);
    CHECK(eddy_reader_next(&r, &got) == 0);

    /* Every cut inside a record is malformed, never read past the end. */
    for (size_t cut = 9; cut < 8 + 25; cut++) {
        eddy_reader_init(&r, b.ptr, cut);
        CHECK(eddy_reader_next(&r, &got) == 1);
        CHECK(eddy_reader_next(&r, &got) == -1);
        CHECK(strstr(eddy_last_error(), "malformed batch: a record ends inside its") != NULL);
    }
    uint8_t side[] = {4, 1, 0, 0, 0, '1'};
    eddy_reader_init(&r, side, sizeof side);
    CHECK(eddy_reader_next(&r, &got) == -1);
    CHECK(ERROR_IS("malformed batch: a record has unknown flag bits 0x04"));
    eddy_buf_free(&b);
}

/* ------------------------------------------------------------------ JSON */

static bool reads_as(const char *json, const char *want) {
    eddy_buf b = {0};
    bool ok = eddy_json_read_string(u8(json), strlen(json), &b) == 0 && BUF_EQ(b, want);
    eddy_buf_free(&b);
    return ok;
}

static bool read_fails(const char *json, const char *error) {
    eddy_buf b = {0};
    bool ok = eddy_json_read_string(u8(json), strlen(json), &b) == -1 && ERROR_IS(error);
    eddy_buf_free(&b);
    return ok;
}

static bool writes_as(const char *text, size_t len, const char *want) {
    eddy_buf b = {0};
    bool ok = eddy_json_write_string(&b, u8(text), len) == 0 && BUF_EQ(b, want);
    eddy_buf_free(&b);
    return ok;
}

static void test_json(void) {
    CHECK(reads_as("\"plain\"", "plain"));
    CHECK(reads_as(" \"\" \n", ""));
    CHECK(reads_as("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"", "a\"b\\c/d\b\f\n\r\t"));
    CHECK(reads_as("\"caf\\u00e9 caf\xc3\xa9 \\u00C9\"", "caf\xc3\xa9 caf\xc3\xa9 \xc3\x89"));
    CHECK(reads_as("\"\\u20ac \\ud83d\\ude00\"", "\xe2\x82\xac \xf0\x9f\x98\x80"));
    eddy_buf nul = {0};
    CHECK(eddy_json_read_string(u8("\"a\\u0000b\""), 10, &nul) == 0 && nul.len == 3 && nul.ptr[1] == 0);
    eddy_buf_free(&nul);
    CHECK(read_fails("42", "expected a JSON string, got 42"));
    CHECK(read_fails("[\"a\"]", "expected a JSON string, got [\"a\"]"));
    CHECK(read_fails("\"unterminated", "expected a JSON string, got \"unterminated"));
    CHECK(read_fails("\"\"\"", "expected a JSON string, got \"\"\""));
    CHECK(read_fails("\"bad \\x escape\"", "expected a JSON string, got \"bad \\x escape\""));
    CHECK(read_fails("\"raw\ttab\"", "expected a JSON string, got \"raw\ttab\""));
    CHECK(read_fails("\"\\ud83d alone\"", "invalid JSON string: lone leading surrogate \\uD83D"));
    CHECK(read_fails("\"\\ude00\"", "invalid JSON string: lone trailing surrogate \\uDE00"));
    CHECK(read_fails("\"ends in \\\"", "expected a JSON string, got \"ends in \\\""));
    CHECK(read_fails("\"", "expected a JSON string, got \""));

    CHECK(writes_as("plain", 5, "\"plain\""));
    CHECK(writes_as("", 0, "\"\""));
    CHECK(writes_as("q\"b\\s\b\f\n\r\t", 10, "\"q\\\"b\\\\s\\b\\f\\n\\r\\t\""));
    CHECK(writes_as("\x01\x1f\x7f", 3, "\"\\u0001\\u001f\x7f\""));
    CHECK(writes_as("\0", 1, "\"\\u0000\""));
    CHECK(writes_as("caf\xc3\xa9 \xf0\x9f\x98\x80 /", 12, "\"caf\xc3\xa9 \xf0\x9f\x98\x80 /\""));

    /* Writing text that lives in the output buffer itself, across a reallocation. */
    eddy_buf b = {0};
    for (int i = 0; i < 100; i++) eddy_buf_push_str(&b, "ab\"");
    size_t text_len = b.len;
    CHECK(b.cap < text_len * 2);
    CHECK(eddy_json_write_string(&b, b.ptr, text_len) == 0);
    CHECK(b.len == text_len + 2 + 400);
    CHECK(memcmp(b.ptr + text_len, "\"ab\\\"ab\\\"", 9) == 0 && b.ptr[b.len - 1] == '"');
    /* And round trip through read. */
    eddy_buf back = {0};
    CHECK(eddy_json_read_string(b.ptr + text_len, b.len - text_len, &back) == 0);
    CHECK(back.len == text_len && memcmp(back.ptr, b.ptr, text_len) == 0);
    eddy_buf_free(&back);
    eddy_buf_free(&b);

    int64_t v;
    CHECK(eddy_json_read_i64(u8("0"), 1, &v) == 0 && v == 0);
    CHECK(eddy_json_read_i64(u8(" -42 "), 5, &v) == 0 && v == -42);
    CHECK(eddy_json_read_i64(u8("9223372036854775807"), 19, &v) == 0 && v == INT64_MAX);
    CHECK(eddy_json_read_i64(u8("-9223372036854775808"), 20, &v) == 0 && v == INT64_MIN);
    CHECK(eddy_json_read_i64(u8("9223372036854775808"), 19, &v) == -1);
    CHECK(ERROR_IS("JSON integer out of range: 9223372036854775808"));
    CHECK(eddy_json_read_i64(u8("01"), 2, &v) == -1);
    CHECK(eddy_json_read_i64(u8("1.5"), 3, &v) == -1 && ERROR_IS("expected a JSON integer, got 1.5"));
    CHECK(eddy_json_read_i64(u8("-"), 1, &v) == -1);
    CHECK(eddy_json_read_i64(u8(""), 0, &v) == -1);
    b = (eddy_buf){0};
    CHECK(eddy_json_write_i64(&b, INT64_MIN) == 0 && BUF_EQ(b, "-9223372036854775808"));
    eddy_buf_free(&b);

    CHECK(eddy_utf8_count(u8("na\xc3\xafve \xf0\x9f\x98\x80"), 11) == 7);
    CHECK(eddy_utf8_count(u8(""), 0) == 0);
}

/* ------------------------------------------------------------- arguments */

static void test_args(void) {
    const char *tokens[] = {"pos1", "--min", "5", "--name=a=b", "-v", "--delta", "-5", "--flag",
                            "--min", "7", "pos2", "--", "--not-an-option", "x"};
    job_list_string_t wit = owned_args(14, tokens);
    eddy_args a;
    CHECK(args_from_wit(&wit, &a) == 0);
    CHECK(strcmp(eddy_arg(&a, "min"), "7") == 0); /* a later option overrides */
    CHECK(strcmp(eddy_arg(&a, "name"), "a=b") == 0);
    CHECK(strcmp(eddy_arg(&a, "v"), "true") == 0);
    CHECK(strcmp(eddy_arg(&a, "delta"), "-5") == 0);
    CHECK(strcmp(eddy_arg(&a, "flag"), "true") == 0);
    CHECK(eddy_arg(&a, "absent") == NULL);
    CHECK(strcmp(eddy_arg_or(&a, "absent", "dflt"), "dflt") == 0);
    CHECK(eddy_arg_positional_count(&a) == 4);
    CHECK(strcmp(eddy_arg_positional(&a, 0), "pos1") == 0);
    CHECK(strcmp(eddy_arg_positional(&a, 1), "pos2") == 0);
    CHECK(strcmp(eddy_arg_positional(&a, 2), "--not-an-option") == 0);
    CHECK(eddy_arg_positional(&a, 4) == NULL);
    uint64_t n;
    CHECK(eddy_arg_u64(&a, "min", 1, &n) == 0 && n == 7);
    CHECK(eddy_arg_u64(&a, "absent", 4, &n) == 0 && n == 4);
    CHECK(eddy_arg_u64(&a, "delta", 4, &n) == -1);
    CHECK(ERROR_IS("invalid value '-5' for --delta: expected a non-negative integer"));
    const char *s;
    CHECK(eddy_arg_required(&a, "input", &s) == -1 && ERROR_IS("missing required argument --input"));
    args_free(&a);

    const char *big[] = {"--n", "18446744073709551616"};
    wit = owned_args(2, big);
    CHECK(args_from_wit(&wit, &a) == 0);
    CHECK(eddy_arg_u64(&a, "n", 0, &n) == -1);
    CHECK(ERROR_IS("invalid value '18446744073709551616' for --n: number too large"));
    args_free(&a);
}

/* ---------------------------------------------------------- graph building */

static int noop(eddy_ctx *ctx, const eddy_record *in) { return eddy_emit(ctx, in); }

static int parallel_job(eddy_env *env, const eddy_args *args) {
    (void)args;
    eddy_set_job_parallelism(env, 2);
    uint32_t src = eddy_read_text_file(env, "in.txt");
    eddy_set_parallelism(env, src, 1);
    uint32_t a = eddy_operator(env, src, "a", noop, NULL);     /* 1 -> 2: rebalance */
    uint32_t b = eddy_keyed_operator(env, a, "b", noop, NULL); /* hash stays */
    uint32_t c = eddy_operator(env, b, "c", noop, NULL);       /* 2 -> 2: forward */
    eddy_set_uid(env, c, "c-uid");
    eddy_write_text_file(env, c, "/out");
    return 0;
}

static int bad_vertex_job(eddy_env *env, const eddy_args *args) {
    (void)args;
    eddy_print(env, 7);
    return 0;
}

static int empty_job(eddy_env *env, const eddy_args *args) {
    (void)env;
    (void)args;
    return 0;
}

static int silent_failure_job(eddy_env *env, const eddy_args *args) {
    (void)env;
    (void)args;
    return -1;
}

/* What post-return would free of a returned job graph. */
static void graph_free(eddy_stream_types_job_graph_t *g) {
    for (size_t i = 0; i < g->vertices.len; i++) {
        eddy_stream_types_vertex_t *v = &g->vertices.ptr[i];
        job_string_free(&v->name);
        if (v->uid.is_some) job_string_free(&v->uid.val);
        if (v->kind.tag == EDDY_STREAM_TYPES_VERTEX_KIND_FILE_SOURCE) job_string_free(&v->kind.val.file_source);
        if (v->kind.tag == EDDY_STREAM_TYPES_VERTEX_KIND_FILE_SINK) job_string_free(&v->kind.val.file_sink);
    }
    free(g->vertices.ptr);
    free(g->edges.ptr);
    job_string_free(&g->name);
}

static void test_graph_building(void) {
    eddy_args none = {0};
    eddy_env env;
    CHECK(build_job(parallel_job, "p", &none, &env) == 0);
    CHECK(env.n_vertices == 5 && env.n_edges == 4 && env.n_registry == 3);
    CHECK(env.edges[0].partitioning == EDDY_STREAM_TYPES_PARTITIONING_REBALANCE);
    CHECK(env.edges[1].partitioning == EDDY_STREAM_TYPES_PARTITIONING_HASH);
    CHECK(env.edges[2].partitioning == EDDY_STREAM_TYPES_PARTITIONING_FORWARD);
    CHECK(env.vertices[2].keyed && !env.vertices[1].keyed && env.vertices[3].wasm == 2);

    eddy_stream_types_job_graph_t g;
    CHECK(to_wit_graph(&env, &g) == 0);
    CHECK(bytes_eq(g.name.ptr, g.name.len, "p") && g.parallelism.is_some && g.parallelism.val == 2);
    CHECK(!g.max_parallelism.is_some);
    CHECK(g.vertices.ptr[0].kind.tag == EDDY_STREAM_TYPES_VERTEX_KIND_FILE_SOURCE);
    CHECK(bytes_eq(g.vertices.ptr[0].kind.val.file_source.ptr, g.vertices.ptr[0].kind.val.file_source.len, "in.txt"));
    CHECK(g.vertices.ptr[0].parallelism.is_some && g.vertices.ptr[0].parallelism.val == 1);
    CHECK(g.vertices.ptr[3].uid.is_some && bytes_eq(g.vertices.ptr[3].uid.val.ptr, g.vertices.ptr[3].uid.val.len, "c-uid"));
    CHECK(g.vertices.ptr[4].kind.tag == EDDY_STREAM_TYPES_VERTEX_KIND_FILE_SINK);
    CHECK(bytes_eq(g.vertices.ptr[4].name.ptr, g.vertices.ptr[4].name.len, "File Sink"));
    graph_free(&g);
    env_free(&env);

    CHECK(build_job(bad_vertex_job, "b", &none, &env) == -1 && ERROR_IS("vertex 7 does not exist"));
    env_free(&env);
    CHECK(build_job(empty_job, "e", &none, &env) == -1 && ERROR_IS("job 'e' defines no operators"));
    env_free(&env);
    CHECK(build_job(silent_failure_job, "s", &none, &env) == -1);
    CHECK(ERROR_IS("entry 's' failed without a message"));
    env_free(&env);
}

/* -------------------------------------------- the exports, with upper.c */

typedef struct {
    bool ok;
    eddy_stream_types_job_graph_t graph;
    char error[512];
} plan_result;

static plan_result plan(const char *entry, int argc, const char **argv) {
    plan_result r;
    memset(&r, 0, sizeof r);
    job_string_t e = owned(entry), err = {0};
    job_list_string_t args = owned_args(argc, argv);
    r.ok = exports_eddy_stream_planner_plan(&e, &args, &r.graph, &err);
    if (!r.ok) {
        snprintf(r.error, sizeof r.error, "%.*s", (int)err.len, (const char *)err.ptr);
        job_string_free(&err);
    }
    return r;
}

static void plan_free(plan_result *r) {
    if (r->ok) graph_free(&r->graph);
}

/* The operator-entry shape: Input (0) -> NAME (1, wasm 0), forward or hash. */
static bool is_operator_entry(const plan_result *r, const char *name, bool keyed) {
    const eddy_stream_types_job_graph_t *g = &r->graph;
    if (!r->ok || g->vertices.len != 2 || g->edges.len != 1) return false;
    const eddy_stream_types_vertex_t *in = &g->vertices.ptr[0], *op = &g->vertices.ptr[1];
    const eddy_stream_types_edge_t *e = &g->edges.ptr[0];
    return in->id == 0 && in->kind.tag == EDDY_STREAM_TYPES_VERTEX_KIND_INPUT &&
           bytes_eq(in->name.ptr, in->name.len, "Input") && !in->keyed && op->id == 1 &&
           op->kind.tag == EDDY_STREAM_TYPES_VERTEX_KIND_WASM && op->kind.val.wasm == 0 &&
           bytes_eq(op->name.ptr, op->name.len, name) && op->keyed == keyed &&
           !op->per_key_updates && !op->uid.is_some && !op->parallelism.is_some &&
           e->source == 0 && e->target == 1 && !e->side_output &&
           e->partitioning == (keyed ? EDDY_STREAM_TYPES_PARTITIONING_HASH
                                     : EDDY_STREAM_TYPES_PARTITIONING_FORWARD) &&
           bytes_eq(g->name.ptr, g->name.len, name) && !g->parallelism.is_some;
}

static void test_planner(void) {
    job_list_string_t entries;
    exports_eddy_stream_planner_entries(&entries);
    CHECK(entries.len == 6 && bytes_eq(entries.ptr[0].ptr, entries.ptr[0].len, "upper"));
    job_list_string_free(&entries);

    plan_result r = plan("upper", 0, NULL);
    CHECK(is_operator_entry(&r, "upper", false));
    plan_free(&r);
    const char *min[] = {"--min", "2"};
    r = plan("length-filter", 2, min);
    CHECK(is_operator_entry(&r, "length-filter", false));
    plan_free(&r);
    r = plan("running-count", 0, NULL);
    CHECK(is_operator_entry(&r, "running-count", true));
    plan_free(&r);

    const char *input[] = {"--input", "sample.txt"};
    r = plan("upper-file", 2, input);
    CHECK(r.ok && r.graph.vertices.len == 3 && r.graph.edges.len == 2);
    CHECK(r.ok && r.graph.vertices.ptr[2].kind.tag == EDDY_STREAM_TYPES_VERTEX_KIND_PRINT_SINK);
    plan_free(&r);

    r = plan("nope", 0, NULL);
    CHECK(!r.ok && strcmp(r.error, "unknown entry 'nope'; this component offers: upper, "
                                   "length-filter, key-by-value, running-count, upper-file, "
                                   "count-lines") == 0);
    r = plan("upper-file", 0, NULL);
    CHECK(!r.ok && strcmp(r.error, "missing required argument --input") == 0);
    const char *bad[] = {"--min", "four"};
    r = plan("length-filter", 2, bad);
    CHECK(!r.ok && strcmp(r.error, "invalid value 'four' for --min: expected a non-negative integer") == 0);
}

static bool open_chain(const char *entry, int argc, const char **argv, int n, const uint32_t *ops,
                       char *error) {
    job_string_t e = owned(entry), err = {0};
    job_list_string_t args = owned_args(argc, argv);
    job_list_u32_t list = {malloc(sizeof(uint32_t) * (n ? n : 1)), (size_t)n};
    memcpy(list.ptr, ops, sizeof(uint32_t) * n);
    eddy_stream_types_subtask_info_t sub = {1, 2, 128};
    bool ok = exports_eddy_stream_operator_open(&e, &args, &list, &sub, &err);
    if (!ok) {
        snprintf(error, 512, "%.*s", (int)err.len, (const char *)err.ptr);
        job_string_free(&err);
    }
    return ok;
}

/* Runs one batch of records with these values (and keys, when given) through the chain;
 * the emitted values joined by '|' (with "key=" before each when keyed) into `out`. */
static bool process(int n, const char **values, const char **keys, char *out) {
    eddy_buf in = {0};
    for (int i = 0; i < n; i++) {
        eddy_record r = {.value = u8(values[i]), .value_len = strlen(values[i]),
                         .has_timestamp = true, .timestamp = 1000 + i};
        if (keys) r.has_key = true, r.key = u8(keys[i]), r.key_len = strlen(keys[i]);
        eddy_batch_append(&in, &r);
    }
    eddy_stream_types_batch_t batch = {in.ptr, in.len}, ret = {0};
    job_string_t err = {0};
    bool ok = exports_eddy_stream_operator_process(&batch, &ret, &err);
    out[0] = 0;
    if (!ok) {
        snprintf(out, 512, "error: %.*s", (int)err.len, (const char *)err.ptr);
        job_string_free(&err);
        return false;
    }
    eddy_reader reader;
    eddy_record r;
    eddy_reader_init(&reader, ret.ptr, ret.len);
    int i = 0;
    while (eddy_reader_next(&reader, &r) == 1) {
        size_t used = strlen(out);
        /* Outputs keep the input's timestamp (and key). */
        if (!r.has_timestamp || r.timestamp < 1000) return false;
        if (r.has_key)
            snprintf(out + used, 512 - used, "%s%.*s=%.*s", i ? "|" : "", (int)r.key_len,
                     (const char *)r.key, (int)r.value_len, (const char *)r.value);
        else
            snprintf(out + used, 512 - used, "%s%.*s", i ? "|" : "", (int)r.value_len,
                     (const char *)r.value);
        i++;
    }
    free(ret.ptr);
    return true;
}

static bool batch_call_fails(const char *error) {
    eddy_stream_types_batch_t ret = {0};
    job_string_t err = {0};
    bool failed_ = !exports_eddy_stream_operator_close(&ret, &err);
    bool ok = failed_ && bytes_eq(err.ptr, err.len, error);
    job_string_free(&err);
    return ok;
}

static void test_operators(void) {
    char out[512], error[512];
    CHECK(batch_call_fails("operator.open has not succeeded on this instance"));

    const uint32_t first[] = {0};
    CHECK(open_chain("upper", 0, NULL, 1, first, error));
    const char *words[] = {"\"az AZ `{@[ 09\"", "\"Caf\\u00e9 ol\xc3\xa9 \\\"q\\\"\"", "\"\""};
    CHECK(process(3, words, NULL, out) && strcmp(out, "\"AZ AZ `{@[ 09\"|\"CAF\xc3\xa9 OL\xc3\xa9 \\\"Q\\\"\"|\"\"") == 0);
    const char *number[] = {"\"fine\"", "42"};
    CHECK(!process(2, number, NULL, out) && strcmp(out, "error: expected a JSON string, got 42") == 0);
    CHECK(process(0, NULL, NULL, out) && strcmp(out, "") == 0);
    eddy_stream_types_batch_t ret = {0};
    job_string_t err = {0};
    CHECK(exports_eddy_stream_operator_on_watermark(5, &ret, &err) && ret.len == 0);
    CHECK(exports_eddy_stream_operator_close(&ret, &err) && ret.len == 0);

    const char *min3[] = {"--min", "3"};
    CHECK(open_chain("length-filter", 2, min3, 1, first, error));
    const char *lengths[] = {"\"ab\"", "\"abc\"", "\"\xc3\xa9\xc3\xa9\"", "\"\xc3\xa9\xc3\xa9\xc3\xa9\"", "\"\\u00e9\\u00e9\""};
    CHECK(process(5, lengths, NULL, out) && strcmp(out, "\"abc\"|\"\xc3\xa9\xc3\xa9\xc3\xa9\"") == 0);
    CHECK(open_chain("length-filter", 0, NULL, 1, first, error)); /* default 4 */
    const char *four[] = {"\"abc\"", "\"abcd\""};
    CHECK(process(2, four, NULL, out) && strcmp(out, "\"abcd\"") == 0);

    /* A fused chain of two registry entries: key-by-value, then running-count. */
    const uint32_t both[] = {0, 1};
    const char *input[] = {"--input", "x"};
    CHECK(open_chain("count-lines", 2, input, 2, both, error));
    const char *lines[] = {"\"a\"", "\"b\"", "\"a\"", "\"a\""};
    set_key_calls = 0;
    CHECK(process(4, lines, NULL, out));
    CHECK(strcmp(out, "\"a\"=[\"a\",1]|\"b\"=[\"b\",1]|\"a\"=[\"a\",2]|\"a\"=[\"a\",3]") == 0);
    CHECK(set_key_calls == 3); /* the key is set only when it changes */
    CHECK(process(1, lines, NULL, out) && strcmp(out, "\"a\"=[\"a\",4]") == 0);
    CHECK(set_key_calls == 4); /* and again after each call: the host owns it between calls */

    CHECK(open_chain("running-count", 0, NULL, 1, first, error));
    const char *vals[] = {"1", "2"}, *keys[] = {"\"b\"", "\"elsewhere\""};
    CHECK(process(1, vals, keys, out) && strcmp(out, "\"b\"=[\"b\",2]") == 0);
    CHECK(!process(2, vals, keys, out));
    CHECK(strcmp(out, "error: key \"elsewhere\" belongs to key group 7, not to this subtask") == 0);
    CHECK(!process(1, vals, NULL, out));
    CHECK(strstr(out, "error: keyed operator received a record without a key") == out);

    CHECK(!open_chain("upper", 0, NULL, 1, (const uint32_t[]){1}, error));
    CHECK(strcmp(error, "operator 1 does not exist: entry 'upper' has 1 operators") == 0);
    CHECK(batch_call_fails("operator.open has not succeeded on this instance"));
    CHECK(!open_chain("count-lines", 2, input, 2, (const uint32_t[]){1, 1}, error));
    CHECK(strcmp(error, "operator 1 selected twice") == 0);
    CHECK(!open_chain("nope", 0, NULL, 1, first, error));
    CHECK(strncmp(error, "unknown entry 'nope'", 20) == 0);

    eddy_log(EDDY_WARN, "n=%d", 3);
    CHECK(strcmp(last_log, "3 n=3") == 0);
}

int main(void) {
    test_framing();
    test_json();
    test_args();
    test_graph_building();
    test_planner();
    test_operators();
    printf("%d passed, %d failed\n", passed, failed);
    return failed != 0;
}

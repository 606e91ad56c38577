/*
 * eddy.c — the C SDK's implementation: framing, JSON helpers, arguments, the graph
 * builder, and the planner and operator exports over wit-bindgen's C bindings (job.h).
 *
 * It mirrors the Rust SDK (guest-sdk/src/{frame,args,graph,runtime,ops,ctx}.rs) so that the
 * same program shape gives the same graph (vertex kinds, names, edges, flags, registry
 * indices) and the host treats a C job exactly like a Rust one.
 *
 * Ownership under the C bindings: arguments of an export are owned by the callee (freed
 * here); what an export returns is freed by the generated post-return functions with
 * free(), so every returned string, list and batch is malloc'd here.
 */
#include "eddy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "job.h"

/* ================================================================= errors */

static char error_message[2048];

int eddy_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    va_end(ap);
    return -1;
}

const char *eddy_last_error(void) { return error_message; }

static int out_of_memory(void) { return eddy_error("out of memory"); }

/* A malloc'd copy of `s` as a WIT string; an empty string owns no memory. */
static job_string_t wit_string(const char *s) {
    job_string_t out = {NULL, 0};
    size_t n = s ? strlen(s) : 0;
    if (n > 0 && (out.ptr = malloc(n)) != NULL) {
        memcpy(out.ptr, s, n);
        out.len = n;
    }
    return out;
}

/* The export's error result: the recorded message. */
static void take_error(job_string_t *err) {
    *err = wit_string(error_message[0] ? error_message : "failed without an error message (eddy_error was not called)");
    error_message[0] = 0;
}

/* A NUL-terminated malloc'd copy of the `n` bytes at `s`. */
static char *dup_n(const void *s, size_t n) {
    char *out = malloc(n + 1);
    if (out) {
        memcpy(out, s, n);
        out[n] = 0;
    }
    return out;
}

/* A NUL-terminated malloc'd copy of a WIT string. */
static char *c_string(const job_string_t *s) { return dup_n(s->ptr, s->len); }

static char *dup_str(const char *s) { return dup_n(s, strlen(s)); }

/* ================================================================ buffers */

int eddy_buf_reserve(eddy_buf *b, size_t extra) {
    if (b->cap - b->len >= extra) return 0;
    size_t want = b->len + extra;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < want) cap *= 2;
    uint8_t *p = realloc(b->ptr, cap);
    if (!p) return out_of_memory();
    b->ptr = p;
    b->cap = cap;
    return 0;
}

int eddy_buf_push(eddy_buf *b, const void *bytes, size_t n) {
    if (eddy_buf_reserve(b, n)) return -1;
    if (n) memcpy(b->ptr + b->len, bytes, n);
    b->len += n;
    return 0;
}

int eddy_buf_push_str(eddy_buf *b, const char *s) { return eddy_buf_push(b, s, strlen(s)); }

int eddy_buf_push_byte(eddy_buf *b, uint8_t byte) {
    if (b->len == b->cap && eddy_buf_reserve(b, 1)) return -1;
    b->ptr[b->len++] = byte;
    return 0;
}

void eddy_buf_free(eddy_buf *b) {
    free(b->ptr);
    b->ptr = NULL;
    b->len = b->cap = 0;
}

/* ========================================================= batch framing */

enum { FLAG_KEY = 1, FLAG_TIMESTAMP = 2 };

void eddy_reader_init(eddy_reader *r, const uint8_t *batch, size_t len) {
    r->at = batch;
    r->end = batch + len;
}

static uint32_t read_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Takes a 4-byte length and that many bytes from *p; false when they run past `end`. */
static bool take_slice(const uint8_t **p, const uint8_t *end, const uint8_t **ptr, size_t *len) {
    if ((size_t)(end - *p) < 4) return false;
    size_t n = read_u32(*p);
    if ((size_t)(end - *p) - 4 < n) return false;
    *ptr = *p + 4;
    *len = n;
    *p += 4 + n;
    return true;
}

int eddy_reader_next(eddy_reader *r, eddy_record *out) {
    if (r->at == r->end) return 0;
    const uint8_t *start = r->at, *p = r->at;
    /* The batch's first byte is not known here; offsets are relative to this record. */
    uint8_t flags = *p++;
    if (flags & ~(FLAG_KEY | FLAG_TIMESTAMP))
        return eddy_error("malformed batch: a record has unknown flag bits 0x%02x", flags);
    const char *what = "timestamp";
    out->has_timestamp = flags & FLAG_TIMESTAMP;
    out->timestamp = 0;
    if (out->has_timestamp) {
        if ((size_t)(r->end - p) < 8) goto truncated;
        uint64_t t = 0;
        for (int i = 7; i >= 0; i--) t = t << 8 | p[i];
        out->timestamp = (int64_t)t;
        p += 8;
    }
    out->has_key = flags & FLAG_KEY;
    out->key = NULL;
    out->key_len = 0;
    if (out->has_key) {
        what = "key";
        if (!take_slice(&p, r->end, &out->key, &out->key_len)) goto truncated;
    }
    what = "value";
    if (!take_slice(&p, r->end, &out->value, &out->value_len)) goto truncated;
    r->at = p;
    return 1;
truncated:
    return eddy_error("malformed batch: a record ends inside its %s (%zu bytes were left)", what,
                      (size_t)(r->end - start));
}

/* Puts a 4-byte length and the `n` bytes at `s` at `p`; returns the end. */
static uint8_t *put_slice(uint8_t *p, const uint8_t *s, size_t n) {
    for (int i = 0; i < 4; i++) *p++ = (uint32_t)n >> (8 * i);
    memcpy(p, s, n);
    return p + n;
}

int eddy_batch_append(eddy_buf *b, const eddy_record *r) {
    if (r->key_len > UINT32_MAX || r->value_len > UINT32_MAX)
        return eddy_error("a record key or value is larger than 4 GiB");
    size_t n = 1 + (r->has_timestamp ? 8 : 0) + (r->has_key ? 4 + r->key_len : 0) + 4 +
               r->value_len;
    if (eddy_buf_reserve(b, n)) return -1;
    uint8_t *p = b->ptr + b->len;
    *p++ = (r->has_key ? FLAG_KEY : 0) | (r->has_timestamp ? FLAG_TIMESTAMP : 0);
    if (r->has_timestamp) {
        uint64_t t = (uint64_t)r->timestamp;
        for (int i = 0; i < 8; i++) *p++ = t >> (8 * i);
    }
    if (r->has_key) p = put_slice(p, r->key, r->key_len);
    put_slice(p, r->value, r->value_len);
    b->len += n;
    return 0;
}

/* =================================================================== JSON */

static bool is_ws(uint8_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Narrows [*p, *end) to leave out whitespace at either side. */
static void trim_ws(const uint8_t **p, const uint8_t **end) {
    while (*p < *end && is_ws(**p)) ++*p;
    while (*end > *p && is_ws((*end)[-1])) --*end;
}

/* For messages: at most 60 bytes of the value, as text. */
static int snippet_len(size_t len) { return len > 60 ? 60 : (int)len; }

static int not_a(const char *what, const uint8_t *json, size_t len) {
    return eddy_error("expected a JSON %s, got %.*s%s", what, snippet_len(len), (const char *)json,
                      len > 60 ? "..." : "");
}

static int hex4(const uint8_t *p, uint32_t *out) {
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        uint8_t c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    *out = v;
    return 0;
}

static int push_utf8(eddy_buf *out, uint32_t cp) {
    uint8_t b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = 0xC0 | cp >> 6;
        b[1] = 0x80 | (cp & 0x3F);
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = 0xE0 | cp >> 12;
        b[1] = 0x80 | (cp >> 6 & 0x3F);
        b[2] = 0x80 | (cp & 0x3F);
        n = 3;
    } else {
        b[0] = 0xF0 | cp >> 18;
        b[1] = 0x80 | (cp >> 12 & 0x3F);
        b[2] = 0x80 | (cp >> 6 & 0x3F);
        b[3] = 0x80 | (cp & 0x3F);
        n = 4;
    }
    return eddy_buf_push(out, b, n);
}

int eddy_json_read_string(const uint8_t *json, size_t len, eddy_buf *out) {
    const uint8_t *p = json, *end = json + len;
    trim_ws(&p, &end);
    if (end - p < 2 || *p != '"' || end[-1] != '"') return not_a("string", json, len);
    p++;
    end--;
    if (eddy_buf_reserve(out, (size_t)(end - p))) return -1;
    while (p < end) {
        /* Copy the run up to the next escape in one go. */
        const uint8_t *run = p;
        while (p < end && *p != '\\' && *p != '"' && *p >= 0x20) p++;
        if (eddy_buf_push(out, run, (size_t)(p - run))) return -1;
        if (p == end) break;
        if (*p != '\\') return not_a("string", json, len); /* raw quote or control char */
        if (end - p < 2) return not_a("string", json, len);
        uint8_t c = p[1];
        p += 2;
        uint8_t plain;
        switch (c) {
        case '"': plain = '"'; break;
        case '\\': plain = '\\'; break;
        case '/': plain = '/'; break;
        case 'b': plain = '\b'; break;
        case 'f': plain = '\f'; break;
        case 'n': plain = '\n'; break;
        case 'r': plain = '\r'; break;
        case 't': plain = '\t'; break;
        case 'u': {
            uint32_t cp, low;
            if (end - p < 4 || hex4(p, &cp)) return not_a("string", json, len);
            p += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF)
                return eddy_error("invalid JSON string: lone trailing surrogate \\u%04X", cp);
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                if (end - p < 6 || p[0] != '\\' || p[1] != 'u' || hex4(p + 2, &low) ||
                    low < 0xDC00 || low > 0xDFFF)
                    return eddy_error("invalid JSON string: lone leading surrogate \\u%04X", cp);
                p += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            }
            if (push_utf8(out, cp)) return -1;
            continue;
        }
        default: return not_a("string", json, len);
        }
        if (eddy_buf_push_byte(out, plain)) return -1;
    }
    return 0;
}

/* Bytes of the JSON escape of `c`, or 1 when it stands for itself. */
static size_t escaped_len(uint8_t c) {
    if (c == '"' || c == '\\') return 2;
    if (c >= 0x20) return 1;
    return (c == '\b' || c == '\f' || c == '\n' || c == '\r' || c == '\t') ? 2 : 6;
}

int eddy_json_write_string(eddy_buf *out, const uint8_t *s, size_t len) {
    static const char hex[] = "0123456789abcdef";
    /* Reserve the exact size first, so that nothing reallocates while writing: `s` may then
     * point into `out` itself (re-aimed after the reservation). */
    size_t n = 2;
    for (size_t i = 0; i < len; i++) n += escaped_len(s[i]);
    size_t offset = SIZE_MAX;
    uintptr_t at = (uintptr_t)s, base = (uintptr_t)out->ptr;
    if (out->ptr && at >= base && at < base + out->cap) offset = (size_t)(at - base);
    if (eddy_buf_reserve(out, n)) return -1;
    if (offset != SIZE_MAX) s = out->ptr + offset;
    uint8_t *w = out->ptr + out->len;
    *w++ = '"';
    if (n == len + 2) {
        memcpy(w, s, len); /* nothing to escape */
        w += len;
    } else {
        for (size_t i = 0; i < len; i++) {
            uint8_t c = s[i];
            if (escaped_len(c) == 1) {
                *w++ = c;
                continue;
            }
            *w++ = '\\';
            switch (c) {
            case '"': *w++ = '"'; break;
            case '\\': *w++ = '\\'; break;
            case '\b': *w++ = 'b'; break;
            case '\f': *w++ = 'f'; break;
            case '\n': *w++ = 'n'; break;
            case '\r': *w++ = 'r'; break;
            case '\t': *w++ = 't'; break;
            default:
                memcpy(w, "u00", 3);
                w[3] = hex[c >> 4];
                w[4] = hex[c & 15];
                w += 5;
            }
        }
    }
    *w++ = '"';
    out->len += n;
    return 0;
}

int eddy_json_read_i64(const uint8_t *json, size_t len, int64_t *out) {
    const uint8_t *p = json, *end = json + len;
    trim_ws(&p, &end);
    bool neg = p < end && *p == '-';
    if (neg) p++;
    if (p == end || (*p == '0' && end - p > 1)) return not_a("integer", json, len);
    uint64_t v = 0, limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9') return not_a("integer", json, len);
        uint64_t d = *p - '0';
        if (v > (limit - d) / 10) return eddy_error("JSON integer out of range: %.*s", snippet_len(len), (const char *)json);
        v = v * 10 + d;
    }
    *out = neg ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

int eddy_json_write_i64(eddy_buf *out, int64_t v) {
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%lld", (long long)v);
    return eddy_buf_push(out, digits, (size_t)n);
}

size_t eddy_utf8_count(const uint8_t *s, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += (s[i] & 0xC0) != 0x80;
    return n;
}

/* ============================================================= arguments */

struct eddy_args {
    char **names, **values; /* options; a later one overrides, so lookups go backwards */
    size_t n_options;
    char **positional;
    size_t n_positional;
};

/* Whether `token` is a number (then it is a value, as in Flink: `--delta -5`). */
static bool is_number(const char *token) {
    if (!*token || is_ws((uint8_t)*token)) return false;
    const char *digits = token + (*token == '-' || *token == '+');
    if (digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) return false;
    char *end;
    errno = 0;
    strtod(token, &end);
    return *end == 0;
}

/* The option name of `token` (`--name` or `-name`), or NULL when it is a value. */
static const char *option_name(const char *token) {
    const char *name = token[0] == '-' ? token + 1 + (token[1] == '-') : NULL;
    if (!name || !*name || is_number(token)) return NULL;
    return name;
}

static int add_option(eddy_args *a, const char *name, size_t name_len, const char *value) {
    char **names = realloc(a->names, (a->n_options + 1) * sizeof *names);
    if (names) a->names = names;
    char **values = realloc(a->values, (a->n_options + 1) * sizeof *values);
    if (values) a->values = values;
    char *n = dup_n(name, name_len), *v = dup_str(value);
    if (!names || !values || !n || !v) return out_of_memory();
    a->names[a->n_options] = n;
    a->values[a->n_options++] = v;
    return 0;
}

static int add_positional(eddy_args *a, const char *token) {
    char **p = realloc(a->positional, (a->n_positional + 1) * sizeof *p);
    if (!p) return out_of_memory();
    a->positional = p;
    if (!(p[a->n_positional] = dup_str(token))) return out_of_memory();
    a->n_positional++;
    return 0;
}

static int parse_args(eddy_args *a, char **tokens, size_t n) {
    for (size_t i = 0; i < n;) {
        const char *token = tokens[i++];
        if (strcmp(token, "--") == 0) {
            for (; i < n; i++)
                if (add_positional(a, tokens[i])) return -1;
            break;
        }
        const char *name = option_name(token);
        if (!name) {
            if (add_positional(a, token)) return -1;
            continue;
        }
        const char *eq = strchr(name, '=');
        int rc;
        if (eq) rc = add_option(a, name, (size_t)(eq - name), eq + 1);
        else if (i < n && !option_name(tokens[i]) && strcmp(tokens[i], "--") != 0)
            rc = add_option(a, name, strlen(name), tokens[i++]);
        else rc = add_option(a, name, strlen(name), "true");
        if (rc) return -1;
    }
    return 0;
}

const char *eddy_arg(const eddy_args *a, const char *name) {
    for (size_t i = a->n_options; i-- > 0;)
        if (strcmp(a->names[i], name) == 0) return a->values[i];
    return NULL;
}

const char *eddy_arg_or(const eddy_args *a, const char *name, const char *fallback) {
    const char *v = eddy_arg(a, name);
    return v ? v : fallback;
}

int eddy_arg_required(const eddy_args *a, const char *name, const char **out) {
    if (!(*out = eddy_arg(a, name))) return eddy_error("missing required argument --%s", name);
    return 0;
}

int eddy_arg_u64(const eddy_args *a, const char *name, uint64_t fallback, uint64_t *out) {
    const char *v = eddy_arg(a, name);
    if (!v) {
        *out = fallback;
        return 0;
    }
    uint64_t n = 0;
    const char *p = *v == '+' ? v + 1 : v;
    if (!*p) goto bad;
    for (; *p; p++) {
        if (*p < '0' || *p > '9') goto bad;
        if (n > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
            return eddy_error("invalid value '%s' for --%s: number too large", v, name);
        n = n * 10 + (uint64_t)(*p - '0');
    }
    *out = n;
    return 0;
bad:
    return eddy_error("invalid value '%s' for --%s: expected a non-negative integer", v, name);
}

size_t eddy_arg_positional_count(const eddy_args *a) { return a->n_positional; }

const char *eddy_arg_positional(const eddy_args *a, size_t i) {
    return i < a->n_positional ? a->positional[i] : NULL;
}

/* ===================================================== the graph builder */

typedef enum {
    K_INPUT,
    K_FILE_SOURCE,
    K_SEQUENCE,
    K_WASM,
    K_PRINT,
    K_FILE_SINK,
} vertex_kind;

typedef struct {
    char *name;
    char *uid;        /* NULL: none */
    vertex_kind kind;
    char *path;       /* file source / sink */
    uint64_t count;   /* sequence */
    uint32_t wasm;    /* registry index */
    uint32_t parallelism; /* 0: not set */
    bool keyed;
} vertex;

typedef struct {
    uint32_t source, target;
    eddy_stream_types_partitioning_t partitioning;
} edge;

typedef struct {
    eddy_process_fn fn;
    void *data;
    bool keyed;
} operator_slot;

struct eddy_env {
    char *name;
    vertex *vertices;
    size_t n_vertices;
    edge *edges;
    size_t n_edges;
    operator_slot *registry;
    size_t n_registry;
    void **allocations; /* eddy_alloc's, freed with the env */
    size_t n_allocations;
    uint32_t parallelism, max_parallelism; /* 0: not set */
    char error[256];                       /* the first builder error */
};

#define NO_VERTEX UINT32_MAX

static void builder_error(eddy_env *env, const char *message, uint32_t detail) {
    if (!env->error[0]) snprintf(env->error, sizeof env->error, message, detail);
}

/* A copy of `s`; NULL when out of memory (then the error is recorded). */
static char *env_dup(eddy_env *env, const char *s) {
    char *out = dup_str(s);
    if (!out) builder_error(env, "out of memory", 0);
    return out;
}

static uint32_t add_vertex(eddy_env *env, const char *name, vertex_kind kind) {
    vertex *v = realloc(env->vertices, (env->n_vertices + 1) * sizeof *v);
    if (!v) {
        builder_error(env, "out of memory", 0);
        return NO_VERTEX;
    }
    env->vertices = v;
    char *n = env_dup(env, name);
    if (!n) return NO_VERTEX;
    v += env->n_vertices;
    memset(v, 0, sizeof *v);
    v->name = n;
    v->kind = kind;
    return (uint32_t)env->n_vertices++;
}

static bool valid(eddy_env *env, uint32_t id) {
    if (id < env->n_vertices) return true;
    if (id != NO_VERTEX) builder_error(env, "vertex %u does not exist", id);
    return false;
}

static void add_edge(eddy_env *env, uint32_t source, uint32_t target,
                     eddy_stream_types_partitioning_t partitioning) {
    edge *e = realloc(env->edges, (env->n_edges + 1) * sizeof *e);
    if (!e) {
        builder_error(env, "out of memory", 0);
        return;
    }
    env->edges = e;
    e[env->n_edges++] = (edge){source, target, partitioning};
}

/* A vertex reading `from`; NO_VERTEX when `from` is not a vertex (error recorded). */
static uint32_t add_downstream(eddy_env *env, uint32_t from, const char *name, vertex_kind kind,
                               eddy_stream_types_partitioning_t partitioning) {
    if (!valid(env, from)) return NO_VERTEX;
    uint32_t id = add_vertex(env, name, kind);
    if (id != NO_VERTEX) add_edge(env, from, id, partitioning);
    return id;
}

uint32_t eddy_input(eddy_env *env) { return add_vertex(env, "Input", K_INPUT); }

uint32_t eddy_read_text_file(eddy_env *env, const char *path) {
    uint32_t id = add_vertex(env, "File Source", K_FILE_SOURCE);
    if (id != NO_VERTEX) env->vertices[id].path = env_dup(env, path);
    return id;
}

uint32_t eddy_sequence(eddy_env *env, uint64_t count) {
    uint32_t id = add_vertex(env, "Sequence Source", K_SEQUENCE);
    if (id != NO_VERTEX) env->vertices[id].count = count;
    return id;
}

static uint32_t add_operator(eddy_env *env, uint32_t from, const char *name, eddy_process_fn fn,
                             void *data, bool keyed) {
    if (!fn) {
        builder_error(env, "operator without a function", 0);
        return NO_VERTEX;
    }
    operator_slot *r = realloc(env->registry, (env->n_registry + 1) * sizeof *r);
    if (!r) {
        builder_error(env, "out of memory", 0);
        return NO_VERTEX;
    }
    env->registry = r;
    uint32_t id = add_downstream(env, from, name, K_WASM,
                                 keyed ? EDDY_STREAM_TYPES_PARTITIONING_HASH
                                       : EDDY_STREAM_TYPES_PARTITIONING_FORWARD);
    if (id == NO_VERTEX) return NO_VERTEX;
    r[env->n_registry] = (operator_slot){fn, data, keyed};
    env->vertices[id].wasm = (uint32_t)env->n_registry++;
    env->vertices[id].keyed = keyed;
    return id;
}

uint32_t eddy_operator(eddy_env *env, uint32_t from, const char *name, eddy_process_fn fn,
                       void *data) {
    return add_operator(env, from, name, fn, data, false);
}

uint32_t eddy_keyed_operator(eddy_env *env, uint32_t from, const char *name, eddy_process_fn fn,
                             void *data) {
    return add_operator(env, from, name, fn, data, true);
}

uint32_t eddy_print(eddy_env *env, uint32_t from) {
    return add_downstream(env, from, "Print Sink", K_PRINT, EDDY_STREAM_TYPES_PARTITIONING_FORWARD);
}

uint32_t eddy_write_text_file(eddy_env *env, uint32_t from, const char *dir) {
    uint32_t id =
        add_downstream(env, from, "File Sink", K_FILE_SINK, EDDY_STREAM_TYPES_PARTITIONING_FORWARD);
    if (id != NO_VERTEX) env->vertices[id].path = env_dup(env, dir);
    return id;
}

uint32_t eddy_operator_entry(eddy_env *env, const char *name, eddy_process_fn fn, void *data,
                             bool keyed) {
    return add_operator(env, eddy_input(env), name, fn, data, keyed);
}

void *eddy_alloc(eddy_env *env, size_t size) {
    void **list = realloc(env->allocations, (env->n_allocations + 1) * sizeof *list);
    void *p = calloc(1, size ? size : 1);
    if (list) env->allocations = list;
    if (!list || !p) {
        free(p);
        out_of_memory();
        return NULL;
    }
    return list[env->n_allocations++] = p;
}

void eddy_set_parallelism(eddy_env *env, uint32_t vertex, uint32_t parallelism) {
    if (parallelism == 0) {
        builder_error(env, "parallelism must be at least 1", 0);
        return;
    }
    if (valid(env, vertex)) env->vertices[vertex].parallelism = parallelism;
}

void eddy_set_uid(eddy_env *env, uint32_t vertex, const char *uid) {
    if (!valid(env, vertex)) return;
    char *u = env_dup(env, uid);
    if (!u) return;
    free(env->vertices[vertex].uid);
    env->vertices[vertex].uid = u;
}

void eddy_set_job_parallelism(eddy_env *env, uint32_t parallelism) {
    if (parallelism == 0) {
        builder_error(env, "parallelism must be at least 1", 0);
        return;
    }
    env->parallelism = parallelism;
}

void eddy_set_max_parallelism(eddy_env *env, uint32_t max_parallelism) {
    if (max_parallelism == 0) {
        builder_error(env, "max parallelism must be at least 1", 0);
        return;
    }
    env->max_parallelism = max_parallelism;
}

void eddy_set_job_name(eddy_env *env, const char *name) {
    char *n = env_dup(env, name);
    if (!n) return;
    free(env->name);
    env->name = n;
}

static void env_free(eddy_env *env) {
    for (size_t i = 0; i < env->n_vertices; i++) {
        free(env->vertices[i].name);
        free(env->vertices[i].uid);
        free(env->vertices[i].path);
    }
    free(env->vertices);
    free(env->edges);
    free(env->registry);
    for (size_t i = 0; i < env->n_allocations; i++) free(env->allocations[i]);
    free(env->allocations);
    free(env->name);
    memset(env, 0, sizeof *env);
}

/* Runs job function `job` for entry `name` into `env`: the graph and the registry. `args`
 * must stay alive as long as the operators may use what the job function took from it. */
static int build_job(eddy_job_fn job, const char *name, const eddy_args *args, eddy_env *env) {
    memset(env, 0, sizeof *env);
    if (!(env->name = dup_str(name))) return out_of_memory();
    error_message[0] = 0;
    if (job(env, args))
        return error_message[0] ? -1 : eddy_error("entry '%s' failed without a message", name);
    if (env->error[0]) return eddy_error("%s", env->error);
    if (env->n_vertices == 0) return eddy_error("job '%s' defines no operators", env->name);
    /* A forward edge between vertices whose parallelisms are both known and differ becomes
     * a rebalance edge, as in Flink (subtask i to subtask i cannot work there). */
    for (size_t i = 0; i < env->n_edges; i++) {
        edge *e = &env->edges[i];
        uint32_t a = env->vertices[e->source].parallelism, b = env->vertices[e->target].parallelism;
        if (!a) a = env->parallelism;
        if (!b) b = env->parallelism;
        if (e->partitioning == EDDY_STREAM_TYPES_PARTITIONING_FORWARD && a && b && a != b)
            e->partitioning = EDDY_STREAM_TYPES_PARTITIONING_REBALANCE;
    }
    return 0;
}

/* Runs the component's entry `entry` (see build_job). */
static int build(const char *entry, const eddy_args *args, eddy_env *env) {
    for (size_t i = 0; i < eddy_entry_count; i++)
        if (strcmp(eddy_entries[i].name, entry) == 0)
            return build_job(eddy_entries[i].job, entry, args, env);
    char offered[1024] = "";
    for (size_t i = 0; i < eddy_entry_count; i++) {
        size_t used = strlen(offered);
        snprintf(offered + used, sizeof offered - used, "%s%s", i ? ", " : "", eddy_entries[i].name);
    }
    return eddy_error("unknown entry '%s'; this component offers: %s", entry, offered);
}

/* Parses the WIT argument list (and frees it, as the export owns it). */
static int args_from_wit(job_list_string_t *list, eddy_args *out) {
    memset(out, 0, sizeof *out);
    char **tokens = calloc(list->len ? list->len : 1, sizeof *tokens);
    int rc = tokens ? 0 : out_of_memory();
    for (size_t i = 0; rc == 0 && i < list->len; i++)
        if (!(tokens[i] = c_string(&list->ptr[i]))) rc = out_of_memory();
    if (rc == 0) rc = parse_args(out, tokens, list->len);
    for (size_t i = 0; tokens && i < list->len; i++) free(tokens[i]);
    free(tokens);
    job_list_string_free(list);
    return rc;
}

static void args_free(eddy_args *a) {
    for (size_t i = 0; i < a->n_options; i++) {
        free(a->names[i]);
        free(a->values[i]);
    }
    for (size_t i = 0; i < a->n_positional; i++) free(a->positional[i]);
    free(a->names);
    free(a->values);
    free(a->positional);
    memset(a, 0, sizeof *a);
}

/* ============================================================= planner */

void exports_eddy_stream_planner_entries(job_list_string_t *ret) {
    ret->len = 0;
    ret->ptr = malloc((eddy_entry_count ? eddy_entry_count : 1) * sizeof *ret->ptr);
    if (!ret->ptr) return;
    for (size_t i = 0; i < eddy_entry_count; i++) ret->ptr[ret->len++] = wit_string(eddy_entries[i].name);
}

/* The WIT form of the built graph; every string and list malloc'd (freed by post-return). */
static int to_wit_graph(const eddy_env *env, eddy_stream_types_job_graph_t *g) {
    memset(g, 0, sizeof *g);
    g->name = wit_string(env->name);
    g->parallelism = (job_option_u32_t){env->parallelism != 0, env->parallelism};
    g->max_parallelism = (job_option_u32_t){env->max_parallelism != 0, env->max_parallelism};
    /* Values are JSON text; the host turns MessagePack from other components into JSON first. */
    g->codec = EDDY_STREAM_TYPES_VALUE_CODEC_JSON;
    g->vertices.ptr = calloc(env->n_vertices, sizeof *g->vertices.ptr);
    g->edges.ptr = calloc(env->n_edges ? env->n_edges : 1, sizeof *g->edges.ptr);
    if (!g->vertices.ptr || !g->edges.ptr) return out_of_memory();
    g->vertices.len = env->n_vertices;
    for (size_t i = 0; i < env->n_vertices; i++) {
        const vertex *v = &env->vertices[i];
        eddy_stream_types_vertex_t *w = &g->vertices.ptr[i];
        w->id = (uint32_t)i;
        w->name = wit_string(v->name);
        if (v->uid) w->uid = (job_option_string_t){true, wit_string(v->uid)};
        w->parallelism = (job_option_u32_t){v->parallelism != 0, v->parallelism};
        w->keyed = v->keyed;
        switch (v->kind) {
        case K_INPUT: w->kind.tag = EDDY_STREAM_TYPES_VERTEX_KIND_INPUT; break;
        case K_FILE_SOURCE:
            w->kind.tag = EDDY_STREAM_TYPES_VERTEX_KIND_FILE_SOURCE;
            w->kind.val.file_source = wit_string(v->path);
            break;
        case K_SEQUENCE:
            w->kind.tag = EDDY_STREAM_TYPES_VERTEX_KIND_SEQUENCE_SOURCE;
            w->kind.val.sequence_source.count = v->count;
            break;
        case K_WASM:
            w->kind.tag = EDDY_STREAM_TYPES_VERTEX_KIND_WASM;
            w->kind.val.wasm = v->wasm;
            break;
        case K_PRINT: w->kind.tag = EDDY_STREAM_TYPES_VERTEX_KIND_PRINT_SINK; break;
        case K_FILE_SINK:
            w->kind.tag = EDDY_STREAM_TYPES_VERTEX_KIND_FILE_SINK;
            w->kind.val.file_sink = wit_string(v->path);
            break;
        }
    }
    g->edges.len = env->n_edges;
    for (size_t i = 0; i < env->n_edges; i++) {
        const edge *e = &env->edges[i];
        g->edges.ptr[i] = (eddy_stream_types_edge_t){e->source, e->target, e->partitioning, false, 0};
    }
    return 0;
}

bool exports_eddy_stream_planner_plan(job_string_t *entry, job_list_string_t *args,
                                      exports_eddy_stream_planner_job_graph_t *ret,
                                      job_string_t *err) {
    eddy_args parsed;
    eddy_env env;
    memset(&env, 0, sizeof env);
    char *name = c_string(entry);
    job_string_free(entry);
    int rc = args_from_wit(args, &parsed);
    if (rc == 0 && !name) rc = out_of_memory();
    if (rc == 0) rc = build(name, &parsed, &env);
    if (rc == 0) rc = to_wit_graph(&env, ret);
    env_free(&env);
    args_free(&parsed);
    free(name);
    if (rc) take_error(err);
    return rc == 0;
}

/* ========================================================== operators */

struct eddy_ctx {
    operator_slot op;
    eddy_buf scratch;
    size_t index;          /* position in the chain */
    const uint8_t *key;    /* the record key, in a keyed operator */
    size_t key_len;
};

static struct {
    bool open;
    eddy_env env;         /* kept: operators' data may point into what it built */
    eddy_args args;       /* kept: the job function may have handed out its strings */
    eddy_ctx *chain;
    size_t n_chain;
    eddy_subtask subtask;
    eddy_buf *out;        /* the output batch of the current call */
    eddy_buf host_key;    /* the key last given to set-current-key */
    bool host_key_set;    /* false at the start of every call: the host owns it between */
} instance;

void *eddy_data(eddy_ctx *ctx) { return ctx->op.data; }

eddy_buf *eddy_scratch(eddy_ctx *ctx) { return &ctx->scratch; }

eddy_subtask eddy_subtask_info(void) { return instance.subtask; }

/* Runs chain element `i` on one record. */
static int run_operator(size_t i, const eddy_record *r) {
    eddy_ctx *ctx = &instance.chain[i];
    ctx->scratch.len = 0;
    if (ctx->op.keyed) {
        if (!r->has_key)
            return eddy_error("keyed operator received a record without a key (its input must be "
                              "keyed, e.g. by a key_by upstream)");
        ctx->key = r->key;
        ctx->key_len = r->key_len;
    }
    return ctx->op.fn(ctx, r);
}

int eddy_emit(eddy_ctx *ctx, const eddy_record *r) {
    if (ctx->index + 1 < instance.n_chain) return run_operator(ctx->index + 1, r);
    return eddy_batch_append(instance.out, r);
}

int eddy_emit_value(eddy_ctx *ctx, const eddy_record *in, const uint8_t *value, size_t len) {
    eddy_record r = *in;
    r.value = value;
    r.value_len = len;
    return eddy_emit(ctx, &r);
}

bool exports_eddy_stream_operator_open(job_string_t *entry, job_list_string_t *args,
                                       job_list_u32_t *operators,
                                       exports_eddy_stream_operator_subtask_info_t *subtask,
                                       job_string_t *err) {
    /* A second open replaces the first instance's chain. */
    for (size_t i = 0; i < instance.n_chain; i++) eddy_buf_free(&instance.chain[i].scratch);
    free(instance.chain);
    env_free(&instance.env);
    args_free(&instance.args);
    instance.chain = NULL;
    instance.n_chain = 0;
    instance.open = false;

    char *name = c_string(entry);
    job_string_free(entry);
    int rc = args_from_wit(args, &instance.args);
    if (rc == 0 && !name) rc = out_of_memory();
    if (rc == 0) rc = build(name, &instance.args, &instance.env);
    if (rc == 0 && !(instance.chain = calloc(operators->len ? operators->len : 1, sizeof *instance.chain)))
        rc = out_of_memory();
    for (size_t i = 0; rc == 0 && i < operators->len; i++) {
        uint32_t index = operators->ptr[i];
        if (index >= instance.env.n_registry) {
            rc = eddy_error("operator %u does not exist: entry '%s' has %zu operators", index, name,
                            instance.env.n_registry);
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (operators->ptr[j] == index) rc = eddy_error("operator %u selected twice", index);
        instance.chain[i].op = instance.env.registry[index];
        instance.chain[i].index = i;
    }
    if (rc == 0) {
        instance.n_chain = operators->len;
        instance.subtask = (eddy_subtask){subtask->index, subtask->parallelism, subtask->max_parallelism};
        instance.open = true;
    }
    free(name);
    job_list_u32_free(operators);
    if (rc) take_error(err);
    return rc == 0;
}

/* Starts an export call that returns a batch. */
static int begin_call(eddy_buf *out) {
    instance.host_key_set = false;
    error_message[0] = 0;
    memset(out, 0, sizeof *out);
    if (!instance.open) return eddy_error("operator.open has not succeeded on this instance");
    instance.out = out;
    return 0;
}

/* Ends an export call: the batch, or the error. */
static bool end_call(int rc, eddy_buf *out, exports_eddy_stream_operator_batch_t *ret,
                     job_string_t *err) {
    instance.out = NULL;
    if (rc) {
        eddy_buf_free(out);
        take_error(err);
        return false;
    }
    if (out->len == 0) eddy_buf_free(out); /* post-return frees only non-empty lists */
    ret->ptr = out->ptr;
    ret->len = out->len;
    return true;
}

bool exports_eddy_stream_operator_process(exports_eddy_stream_operator_batch_t *input,
                                          exports_eddy_stream_operator_batch_t *ret,
                                          job_string_t *err) {
    eddy_buf out;
    int rc = begin_call(&out);
    /* Most operators emit about as much as they read: one reservation avoids regrowth. */
    if (rc == 0 && input->len) rc = eddy_buf_reserve(&out, input->len);
    eddy_reader reader;
    eddy_reader_init(&reader, input->ptr, input->len);
    eddy_record r;
    while (rc == 0) {
        int next = eddy_reader_next(&reader, &r);
        if (next <= 0) {
            rc = next;
            break;
        }
        rc = instance.n_chain ? run_operator(0, &r) : eddy_batch_append(&out, &r);
    }
    eddy_stream_types_batch_free(input);
    return end_call(rc, &out, ret, err);
}

/* The C SDK registers no timers and buffers nothing, so watermarks, timers and the end of
 * the input emit nothing; they still fail when the instance was not opened. */
bool exports_eddy_stream_operator_on_watermark(int64_t watermark,
                                               exports_eddy_stream_operator_batch_t *ret,
                                               job_string_t *err) {
    (void)watermark;
    eddy_buf out;
    return end_call(begin_call(&out), &out, ret, err);
}

bool exports_eddy_stream_operator_on_timer(job_list_u8_t *key, int64_t timestamp,
                                           exports_eddy_stream_operator_time_domain_t domain,
                                           exports_eddy_stream_operator_batch_t *ret,
                                           job_string_t *err) {
    (void)timestamp;
    (void)domain;
    job_list_u8_free(key);
    eddy_buf out;
    return end_call(begin_call(&out), &out, ret, err);
}

bool exports_eddy_stream_operator_close(exports_eddy_stream_operator_batch_t *ret,
                                        job_string_t *err) {
    eddy_buf out;
    return end_call(begin_call(&out), &out, ret, err);
}

/* ========================================================== keyed state */

int eddy_set_current_key(const uint8_t *key, size_t len) {
    job_list_u8_t k = {(uint8_t *)key, len};
    job_string_t err = {NULL, 0};
    instance.host_key_set = false;
    if (!eddy_stream_host_set_current_key(&k, &err)) {
        eddy_error("%.*s", (int)err.len, (const char *)err.ptr);
        job_string_free(&err);
        return -1;
    }
    instance.host_key.len = 0;
    if (eddy_buf_push(&instance.host_key, key, len)) return -1;
    instance.host_key_set = true;
    return 0;
}

/* Points the host's state functions at the current record's key, if not already there. */
static int ensure_key(eddy_ctx *ctx) {
    if (!ctx->op.keyed)
        return eddy_error("keyed state is only available in a keyed operator (eddy_keyed_operator)");
    if (instance.host_key_set && instance.host_key.len == ctx->key_len &&
        memcmp(instance.host_key.ptr, ctx->key, ctx->key_len) == 0)
        return 0;
    return eddy_set_current_key(ctx->key, ctx->key_len);
}

int eddy_value_get(eddy_ctx *ctx, const char *state, eddy_buf *out) {
    if (ensure_key(ctx)) return -1;
    job_string_t s = {(uint8_t *)state, strlen(state)};
    job_list_u8_t value = {NULL, 0};
    if (!eddy_stream_host_value_get(&s, &value)) return 0;
    out->len = 0;
    int rc = eddy_buf_push(out, value.ptr, value.len);
    job_list_u8_free(&value);
    return rc ? -1 : 1;
}

int eddy_value_set(eddy_ctx *ctx, const char *state, const uint8_t *value, size_t len) {
    if (ensure_key(ctx)) return -1;
    job_string_t s = {(uint8_t *)state, strlen(state)};
    job_list_u8_t v = {(uint8_t *)value, len};
    eddy_stream_host_value_set(&s, &v);
    return 0;
}

int eddy_value_clear(eddy_ctx *ctx, const char *state) {
    if (ensure_key(ctx)) return -1;
    job_string_t s = {(uint8_t *)state, strlen(state)};
    eddy_stream_host_value_clear(&s);
    return 0;
}

/* ========================================================== host calls */

void eddy_log(eddy_level level, const char *fmt, ...) {
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    job_string_t message = {(uint8_t *)line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1};
    eddy_stream_host_log((eddy_stream_host_level_t)level, &message);
}

void eddy_counter_add(const char *name, uint64_t delta) {
    job_string_t n = {(uint8_t *)name, strlen(name)};
    eddy_stream_host_counter_add(&n, delta);
}

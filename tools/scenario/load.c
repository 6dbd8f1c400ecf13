/*
 * load.c — reading a scenario file, checking it against FORMAT.md and
 * compiling it into the tree of scenario.h.
 *
 * The checks are tools/oracle/validate.js's, in the same order and with the
 * same messages where that is practical, so that the C runner and the oracle
 * refuse the same files. Its header lists the readings of FORMAT.md it makes;
 * in short:
 *   - a name is bound by at most one statement, and each use comes after its
 *     binding in a depth-first walk of the file (async/asyncgen bind after
 *     their body, then/catch/finally after their handlers, timeout/interval
 *     before their body). Uses that the walk cannot prove to run after the
 *     binding are checked again when they run (run.c checks every use);
 *   - await/return/throw/try/forawait stand directly in an async or asyncgen
 *     body (or a try block of one), yield only in an asyncgen body;
 *   - {"arg": true} stands in a handler (not finally) or an async/asyncgen body;
 *   - binding statements never stand in an interval or asyncgen body;
 *   - labels have no line breaks, numbers are JSON integers with |n| < 2^53,
 *     delays are 1..300.
 * The first problem found ends the check: one message, naming the statement
 * by its path in the file ("program[3][2]").
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

/* Number.isSafeInteger: |n| <= 2^53 - 1. */
#define SAFE_INT_MAX ((json_int_t)9007199254740991LL)

/* ---- the arena that holds a program's tree ---------------------------------- */

typedef struct chunk {
  struct chunk *next;
  size_t used, cap;
  max_align_t data[];
} chunk;

struct sc_arena {
  chunk *head;
};

#define ARENA_CHUNK ((size_t)16 << 10)

/* Zeroed memory that lives as long as the arena; NULL when memory runs out. */
static void *arena_alloc(sc_arena *a, size_t size) {
  size_t align = sizeof(max_align_t);
  size = (size + align - 1) / align * align;
  if (!a->head || a->head->cap - a->head->used < size) {
    size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
    chunk *c = malloc(sizeof *c + cap);
    if (!c) return NULL;
    c->next = a->head;
    c->used = 0;
    c->cap = cap;
    a->head = c;
  }
  void *p = (char *)a->head->data + a->head->used;
  a->head->used += size;
  memset(p, 0, size);
  return p;
}

static void arena_free(sc_arena *a) {
  if (!a) return;
  while (a->head) {
    chunk *c = a->head;
    a->head = c->next;
    free(c);
  }
  free(a);
}

/* ---- the compiler's state ----------------------------------------------------- */

/* The kind of function a statement stands in (validate.js's ctx.fn). */
typedef enum fn_kind { FN_MAIN, FN_CALLBACK, FN_HANDLER, FN_FINALLY, FN_ASYNC, FN_ASYNCGEN } fn_kind;

typedef struct ctx {
  fn_kind fn;
  const char *cb;        /* FN_CALLBACK: "micro", "timeout", "interval", "immediate" */
  const char *no_bind;   /* non-NULL: binding statements are refused here, and why */
  sc_stmt *body;         /* FN_ASYNC/FN_ASYNCGEN: the statement whose body this is */
  size_t try_depth;      /* try blocks enclosing this point within that body */
} ctx;

typedef struct slot_info {
  const char *name;      /* points into the document */
  size_t len;
  sc_kind kind;
  char *where;           /* the binding statement's path */
} slot_info;

typedef struct compiler {
  sc_program *prog;
  char *error;           /* the first problem, with its path */
  /* The path of the JSON node being checked, as "program[3][2]". */
  char *path;
  size_t path_len, path_cap;
  /* Bound names: slots in binding order, and an open-addressing index of them. */
  slot_info *slots;
  size_t n_slots, slots_cap;
  size_t *index;         /* slot + 1, or 0 for an empty cell */
  size_t index_cap;      /* a power of two, more than twice n_slots */
} compiler;

static void oom(compiler *c) {
  if (!c->error) c->error = sc_strdupf("out of memory");
}

/* Records the first problem, at the current path. Returns -1 for chaining. */
static int fail(compiler *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static int fail(compiler *c, const char *fmt, ...) {
  if (c->error) return -1;
  char msg[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  c->error = c->path_len ? sc_strdupf("%s: %s", c->path, msg) : sc_strdupf("%s", msg);
  if (!c->error) c->error = sc_strdupf("out of memory");
  return -1;
}

/* ---- paths ------------------------------------------------------------------------ */

/* Appends to the path; returns the length to restore with path_pop, or
 * (size_t)-1 when memory runs out. */
static size_t path_push(compiler *c, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static size_t path_push(compiler *c, const char *fmt, ...) {
  size_t mark = c->path_len;
  for (;;) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(c->path + c->path_len, c->path_cap - c->path_len, fmt, ap);
    va_end(ap);
    if (n < 0) return (size_t)-1;
    if ((size_t)n < c->path_cap - c->path_len) {
      c->path_len += (size_t)n;
      return mark;
    }
    size_t cap = (c->path_cap + (size_t)n + 1) * 2;
    char *p = realloc(c->path, cap);
    if (!p) {
      oom(c);
      return (size_t)-1;
    }
    c->path = p;
    c->path_cap = cap;
  }
}

static void path_pop(compiler *c, size_t mark) {
  c->path_len = mark;
  c->path[mark] = '\0';
}

/* A copy of the current path that lives with the program. */
static const char *path_keep(compiler *c) {
  char *p = arena_alloc(c->prog->arena, c->path_len + 1);
  if (!p) {
    oom(c);
    return NULL;
  }
  memcpy(p, c->path, c->path_len + 1);
  return p;
}

/* ---- describing JSON in messages ---------------------------------------------- */

/* validate.js's describe(): "null", "an array", "the string \"x\"", "number 5"... */
static const char *describe(json_t *v, char *buf, size_t cap) {
  switch (json_typeof(v)) {
    case JSON_NULL: return "null";
    case JSON_TRUE: return "boolean true";
    case JSON_FALSE: return "boolean false";
    case JSON_ARRAY: return json_array_size(v) ? "an array" : "an empty array";
    case JSON_OBJECT: return "an object";
    case JSON_INTEGER:
      snprintf(buf, cap, "number %" JSON_INTEGER_FORMAT, json_integer_value(v));
      return buf;
    case JSON_REAL:
      snprintf(buf, cap, "number %.17g", json_real_value(v));
      return buf;
    case JSON_STRING: {
      char *text = json_dumps(v, JSON_ENCODE_ANY);
      if (!text || strlen(text) > 40) snprintf(buf, cap, "a string");
      else snprintf(buf, cap, "the string %s", text);
      free(text);
      return buf;
    }
  }
  return "a value";
}

/* ---- names ------------------------------------------------------------------------ */

static size_t hash_name(const char *s, size_t len) {
  size_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

/* The slot of a bound name, or (size_t)-1. */
static size_t slot_find(const compiler *c, const char *s, size_t len) {
  if (!c->index_cap) return (size_t)-1;
  for (size_t i = hash_name(s, len) & (c->index_cap - 1);; i = (i + 1) & (c->index_cap - 1)) {
    size_t e = c->index[i];
    if (!e) return (size_t)-1;
    const slot_info *si = &c->slots[e - 1];
    if (si->len == len && memcmp(si->name, s, len) == 0) return e - 1;
  }
}

static void index_put(compiler *c, size_t slot) {
  const slot_info *si = &c->slots[slot];
  size_t i = hash_name(si->name, si->len) & (c->index_cap - 1);
  while (c->index[i]) i = (i + 1) & (c->index_cap - 1);
  c->index[i] = slot + 1;
}

/* Indexes slot (which is c->n_slots, about to be counted), keeping the table
 * at most half full. */
static int index_insert(compiler *c, size_t slot) {
  if (2 * (slot + 1) >= c->index_cap) {
    size_t cap = c->index_cap ? c->index_cap * 2 : 64;
    size_t *index = calloc(cap, sizeof *index);
    if (!index) return -1;
    free(c->index);
    c->index = index;
    c->index_cap = cap;
    for (size_t s = 0; s < slot; s++) index_put(c, s);
  }
  index_put(c, slot);
  return 0;
}

static bool name_ok(const char *s, size_t len) {
  if (len == 0 || s[0] < 'a' || s[0] > 'z') return false;
  for (size_t i = 1; i < len; i++) {
    char ch = s[i];
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_')) return false;
  }
  return true;
}

static int check_name(compiler *c, json_t *v, const char *what) {
  char buf[96];
  if (!json_is_string(v)) {
    return fail(c, "%s must be a name string, not %s", what, describe(v, buf, sizeof buf));
  }
  if (!name_ok(json_string_value(v), json_string_length(v))) {
    char *text = json_dumps(v, JSON_ENCODE_ANY);
    fail(c, "bad name %s (names match ^[a-z][a-z0-9_]*$)", text ? text : "?");
    free(text);
    return -1;
  }
  return 0;
}

static const char *kind_word(sc_kind k) {
  switch (k) {
    case SC_KIND_DEFERRED: return "a deferred";
    case SC_KIND_PROMISE: return "a promise";
    case SC_KIND_TIMER: return "a timer";
    case SC_KIND_GEN: return "an asyncgen";
  }
  return "?";
}

/* Binds name (already checked) to a new slot of the given kind. */
static int bind(compiler *c, json_t *name, sc_kind kind, size_t *slot) {
  if (check_name(c, name, "the name") != 0) return -1;
  const char *s = json_string_value(name);
  size_t len = json_string_length(name);
  size_t found = slot_find(c, s, len);
  if (found != (size_t)-1) {
    return fail(c, "name \"%s\" is bound twice (first at %s)", s, c->slots[found].where);
  }
  if (c->n_slots == c->slots_cap) {
    size_t cap = c->slots_cap ? c->slots_cap * 2 : 16;
    slot_info *p = realloc(c->slots, cap * sizeof *p);
    if (!p) return oom(c), -1;
    c->slots = p;
    c->slots_cap = cap;
  }
  char *where = strdup(c->path);
  if (!where) return oom(c), -1;
  c->slots[c->n_slots] = (slot_info){s, len, kind, where};
  if (index_insert(c, c->n_slots) != 0) {
    free(where);
    return oom(c), -1;
  }
  *slot = c->n_slots++;
  return 0;
}

/* A use of a name bound earlier, whose kind must be kind_a or kind_b. */
static int use(compiler *c, json_t *name, sc_kind kind_a, sc_kind kind_b, size_t *slot) {
  if (check_name(c, name, "the name") != 0) return -1;
  const char *s = json_string_value(name);
  size_t found = slot_find(c, s, json_string_length(name));
  if (found == (size_t)-1) return fail(c, "name \"%s\" is used before it is bound", s);
  const slot_info *si = &c->slots[found];
  if (si->kind != kind_a && si->kind != kind_b) {
    if (kind_a == kind_b) {
      return fail(c, "\"%s\" is %s (bound at %s), %s is needed here", s, kind_word(si->kind), si->where,
                  kind_word(kind_a));
    }
    return fail(c, "\"%s\" is %s (bound at %s), %s or %s is needed here", s, kind_word(si->kind), si->where,
                kind_word(kind_a), kind_word(kind_b));
  }
  *slot = found;
  return 0;
}

/* The first key of object that is not in known (a NULL-terminated list), or
 * NULL. Keys are compared with their lengths: a key may hold a NUL byte. */
static const char *unknown_key(json_t *object, const char *const *known) {
  for (void *it = json_object_iter(object); it; it = json_object_iter_next(object, it)) {
    const char *key = json_object_iter_key(it);
    size_t len = json_object_iter_key_len(it), i = 0;
    while (known[i] && !(strlen(known[i]) == len && memcmp(known[i], key, len) == 0)) i++;
    if (!known[i]) return key;
  }
  return NULL;
}

/* ---- values, labels, delays ------------------------------------------------------ */

static bool arg_allowed(const ctx *x) {
  return x->fn == FN_HANDLER || x->fn == FN_ASYNC || x->fn == FN_ASYNCGEN;
}

static int arg_value(compiler *c, json_t *flag, const ctx *x) {
  if (!json_is_true(flag)) return fail(c, "{\"arg\": ...} must be {\"arg\": true}");
  if (arg_allowed(x)) return 0;
  if (x->fn == FN_MAIN) return fail(c, "{\"arg\": true} is not allowed at top level");
  if (x->fn == FN_CALLBACK) return fail(c, "{\"arg\": true} is not allowed in a %s callback", x->cb);
  return fail(c, "{\"arg\": true} is not allowed in a finally handler (it takes no argument)");
}

static int object_value(compiler *c, json_t *v, const ctx *x, sc_value *out) {
  if (json_object_size(v) == 1) {
    if (json_object_get(v, "p")) {
      out->kind = SC_VAL_PROMISE;
      return use(c, json_object_get(v, "p"), SC_KIND_DEFERRED, SC_KIND_PROMISE, &out->slot);
    }
    if (json_object_get(v, "arg")) {
      out->kind = SC_VAL_ARG;
      return arg_value(c, json_object_get(v, "arg"), x);
    }
    if (json_object_get(v, "gen")) return fail(c, "{\"gen\": G} stands only as the source of forawait");
  }
  /* Named by its keys, as validate.js does: ["q"] */
  json_t *keys = json_array();
  for (void *it = json_object_iter(v); it && keys; it = json_object_iter_next(v, it)) {
    json_array_append_new(keys, json_stringn(json_object_iter_key(it), json_object_iter_key_len(it)));
  }
  char *text = keys ? json_dumps(keys, JSON_COMPACT) : NULL;
  fail(c, "unknown value object with keys %.120s (values are integers, strings, null, {\"p\": N}, "
       "{\"arg\": true})", text ? text : "?");
  free(text);
  json_decref(keys);
  return -1;
}

static int value(compiler *c, json_t *v, const ctx *x, sc_value *out) {
  char buf[96];
  *out = (sc_value){0};
  switch (json_typeof(v)) {
    case JSON_NULL:
      out->kind = SC_VAL_UNDEFINED;
      return 0;
    case JSON_STRING:
      out->kind = SC_VAL_STRING;
      out->s = json_string_value(v);
      out->len = json_string_length(v);
      return 0;
    case JSON_INTEGER: {
      json_int_t n = json_integer_value(v);
      if (n > SAFE_INT_MAX || n < -SAFE_INT_MAX) {
        return fail(c, "number %" JSON_INTEGER_FORMAT " is not an integer with |n| < 2^53", n);
      }
      out->kind = SC_VAL_INT;
      out->i = n;
      return 0;
    }
    case JSON_OBJECT:
      return object_value(c, v, x, out);
    default:
      return fail(c, "bad value: %s (values are integers, strings, null, {\"p\": N}, {\"arg\": true})",
                  describe(v, buf, sizeof buf));
  }
}

static int label(compiler *c, json_t *l, sc_text *out) {
  char buf[96];
  if (!json_is_string(l)) return fail(c, "a label must be a string, not %s", describe(l, buf, sizeof buf));
  out->s = json_string_value(l);
  out->len = json_string_length(l);
  if (memchr(out->s, '\n', out->len) || memchr(out->s, '\r', out->len)) {
    return fail(c, "a label must not contain a line break");
  }
  return 0;
}

static int delay(compiler *c, json_t *ms, int64_t *out) {
  char buf[96];
  if (!json_is_integer(ms) || json_integer_value(ms) < 1 || json_integer_value(ms) > 300) {
    return fail(c, "a delay must be an integer from 1 to 300 ms, not %s", describe(ms, buf, sizeof buf));
  }
  *out = json_integer_value(ms);
  return 0;
}

/* The values of a list, each at PATH[i]. */
static int value_list(compiler *c, json_t *list, const ctx *x, sc_value **items, size_t *n) {
  *n = json_array_size(list);
  *items = arena_alloc(c->prog->arena, (*n ? *n : 1) * sizeof **items);
  if (!*items) return oom(c), -1;
  for (size_t i = 0; i < *n; i++) {
    size_t mark = path_push(c, "[%zu]", i);
    if (mark == (size_t)-1 || value(c, json_array_get(list, i), x, &(*items)[i]) != 0) return -1;
    path_pop(c, mark);
  }
  return 0;
}

/* ---- blocks and handlers ------------------------------------------------------------ */

static int statement(compiler *c, json_t *s, const ctx *x, sc_stmt *out);

/* A list of statements, at the current path. */
static int block(compiler *c, json_t *list, const ctx *x, sc_block *out) {
  char buf[96];
  if (!json_is_array(list)) {
    return fail(c, "must be a list of statements, not %s", describe(list, buf, sizeof buf));
  }
  out->n = json_array_size(list);
  out->stmts = arena_alloc(c->prog->arena, (out->n ? out->n : 1) * sizeof *out->stmts);
  if (!out->stmts) return oom(c), -1;
  for (size_t i = 0; i < out->n; i++) {
    size_t mark = path_push(c, "[%zu]", i);
    if (mark == (size_t)-1 || statement(c, json_array_get(list, i), x, &out->stmts[i]) != 0) return -1;
    path_pop(c, mark);
  }
  return 0;
}

/* The block at PATH + suffix (".do", "[3]"). */
static int sub_block(compiler *c, const char *suffix, json_t *list, const ctx *x, sc_block *out) {
  size_t mark = path_push(c, "%s", suffix);
  if (mark == (size_t)-1 || block(c, list, x, out) != 0) return -1;
  path_pop(c, mark);
  return 0;
}

static int handler_fields(compiler *c, json_t *h) {
  static const char *const fields[] = {"log", "do", "ret", "throw", NULL};
  const char *key = unknown_key(h, fields);
  if (key) return fail(c, "unknown handler field \"%.100s\" (fields: log, do, ret, throw)", key);
  if (json_object_get(h, "ret") && json_object_get(h, "throw")) {
    return fail(c, "a handler has \"ret\" or \"throw\", not both");
  }
  return 0;
}

/* The handler at PATH[index]; NULL stays NULL for then's absent handlers. */
static int handler(compiler *c, json_t *h, size_t index, const ctx *x, bool is_finally, sc_handler **out) {
  char buf[96];
  size_t mark = path_push(c, "[%zu]", index);
  if (mark == (size_t)-1) return -1;
  if (!json_is_object(h)) {
    return fail(c, "a handler must be an object%s, not %s", is_finally ? "" : " or null",
                describe(h, buf, sizeof buf));
  }
  if (handler_fields(c, h) != 0) return -1;
  sc_handler *hd = arena_alloc(c->prog->arena, sizeof *hd);
  if (!hd) return oom(c), -1;
  ctx hx = {is_finally ? FN_FINALLY : FN_HANDLER, NULL, x->no_bind, NULL, 0};
  json_t *log = json_object_get(h, "log"), *body = json_object_get(h, "do");
  json_t *ret = json_object_get(h, "ret"), *thrown = json_object_get(h, "throw");
  size_t m2;
  if (log) {
    if ((m2 = path_push(c, ".log")) == (size_t)-1 || label(c, log, &hd->log) != 0) return -1;
    path_pop(c, m2);
    hd->has_log = true;
  }
  if (body && sub_block(c, ".do", body, &hx, &hd->body) != 0) return -1;
  if (ret || thrown) {
    hd->ret_kind = ret ? SC_RET_VALUE : SC_RET_THROW;
    if ((m2 = path_push(c, ret ? ".ret" : ".throw")) == (size_t)-1) return -1;
    if (value(c, ret ? ret : thrown, &hx, &hd->ret) != 0) return -1;
    path_pop(c, m2);
  }
  path_pop(c, mark);
  *out = hd;
  return 0;
}

/* ---- statements ---------------------------------------------------------------------- */

static const char *ctx_word(const ctx *x, char *buf, size_t cap) {
  switch (x->fn) {
    case FN_MAIN: return "top level";
    case FN_CALLBACK: snprintf(buf, cap, "a %s callback", x->cb); return buf;
    case FN_HANDLER: return "a handler";
    case FN_FINALLY: return "a finally handler";
    case FN_ASYNC: return "an async body";
    case FN_ASYNCGEN: return "an asyncgen body";
  }
  return "?";
}

static int need_async(compiler *c, const char *op, const ctx *x) {
  char buf[64];
  if (x->fn == FN_ASYNC || x->fn == FN_ASYNCGEN) return 0;
  return fail(c, "\"%s\" stands only in an async body (here: %s)", op, ctx_word(x, buf, sizeof buf));
}

/* The context of a callback block (micro, timeout, interval, immediate). */
static ctx callback_ctx(const ctx *x, const char *what, const char *no_bind) {
  ctx cx = {FN_CALLBACK, what, no_bind ? no_bind : x->no_bind, NULL, 0};
  return cx;
}

typedef int (*compile_fn)(compiler *c, json_t *s, const ctx *x, sc_stmt *out);

static int c_log(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  out->has_label = true;
  if (label(c, json_array_get(s, 1), &out->label) != 0) return -1;
  out->has_value = json_array_size(s) == 3;
  return out->has_value ? value(c, json_array_get(s, 2), x, &out->value) : 0;
}

static int c_deferred(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  (void)x;
  return bind(c, json_array_get(s, 1), SC_KIND_DEFERRED, &out->slot);
}

static int c_settle(compiler *c, json_t *s, const ctx *x, sc_stmt *out) { /* resolve, reject */
  if (use(c, json_array_get(s, 1), SC_KIND_DEFERRED, SC_KIND_DEFERRED, &out->slot) != 0) return -1;
  out->has_value = true;
  return value(c, json_array_get(s, 2), x, &out->value);
}

static int c_resolved(compiler *c, json_t *s, const ctx *x, sc_stmt *out) { /* resolved, rejected */
  if (check_name(c, json_array_get(s, 1), "the name") != 0) return -1;
  out->has_value = true;
  if (value(c, json_array_get(s, 2), x, &out->value) != 0) return -1;
  return bind(c, json_array_get(s, 1), SC_KIND_PROMISE, &out->slot);
}

static int c_then(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  if (check_name(c, json_array_get(s, 1), "the name") != 0) return -1;
  if (use(c, json_array_get(s, 2), SC_KIND_DEFERRED, SC_KIND_PROMISE, &out->src) != 0) return -1;
  json_t *ok = json_array_get(s, 3), *err = json_array_get(s, 4);
  if (!json_is_null(ok) && handler(c, ok, 3, x, false, &out->on_ok) != 0) return -1;
  if (!json_is_null(err) && handler(c, err, 4, x, false, &out->on_err) != 0) return -1;
  return bind(c, json_array_get(s, 1), SC_KIND_PROMISE, &out->slot);
}

static int c_catch_finally(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  bool is_finally = out->op == SC_FINALLY;
  if (check_name(c, json_array_get(s, 1), "the name") != 0) return -1;
  if (use(c, json_array_get(s, 2), SC_KIND_DEFERRED, SC_KIND_PROMISE, &out->src) != 0) return -1;
  sc_handler **h = is_finally ? &out->on_ok : &out->on_err;
  if (handler(c, json_array_get(s, 3), 3, x, is_finally, h) != 0) return -1;
  return bind(c, json_array_get(s, 1), SC_KIND_PROMISE, &out->slot);
}

static int c_combinator(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  char buf[96];
  json_t *list = json_array_get(s, 2);
  if (check_name(c, json_array_get(s, 1), "the name") != 0) return -1;
  if (!json_is_array(list)) {
    return fail(c, "\"%s\" takes a list of values, not %s", json_string_value(json_array_get(s, 0)),
                describe(list, buf, sizeof buf));
  }
  size_t mark = path_push(c, "[2]");
  if (mark == (size_t)-1 || value_list(c, list, x, &out->items, &out->n_items) != 0) return -1;
  path_pop(c, mark);
  return bind(c, json_array_get(s, 1), SC_KIND_PROMISE, &out->slot);
}

static int c_micro_immediate(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  ctx cx = callback_ctx(x, out->op == SC_MICRO ? "micro" : "immediate", NULL);
  return sub_block(c, "[1]", json_array_get(s, 1), &cx, &out->body);
}

static int c_timeout(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  ctx cx = callback_ctx(x, "timeout", NULL);
  if (delay(c, json_array_get(s, 2), &out->ms) != 0) return -1;
  if (bind(c, json_array_get(s, 1), SC_KIND_TIMER, &out->slot) != 0) return -1;
  return sub_block(c, "[3]", json_array_get(s, 3), &cx, &out->body);
}

static int c_interval(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  char buf[96];
  ctx cx = callback_ctx(x, "interval", "an interval body");
  json_t *count = json_array_get(s, 3);
  if (delay(c, json_array_get(s, 2), &out->ms) != 0) return -1;
  json_int_t n = json_is_integer(count) ? json_integer_value(count) : 0;
  if (n < 1 || n > SAFE_INT_MAX) {
    return fail(c, "an interval COUNT must be an integer >= 1, not %s", describe(count, buf, sizeof buf));
  }
  out->count = n;
  if (bind(c, json_array_get(s, 1), SC_KIND_TIMER, &out->slot) != 0) return -1;
  return sub_block(c, "[4]", json_array_get(s, 4), &cx, &out->body);
}

static int c_clear(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  (void)x;
  return use(c, json_array_get(s, 1), SC_KIND_TIMER, SC_KIND_TIMER, &out->slot);
}

static int c_async(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  bool gen = out->op == SC_ASYNCGEN;
  ctx bx = {gen ? FN_ASYNCGEN : FN_ASYNC, NULL, gen ? "an asyncgen body" : x->no_bind, out, 0};
  if (check_name(c, json_array_get(s, 1), "the name") != 0) return -1;
  if (sub_block(c, "[2]", json_array_get(s, 2), &bx, &out->body) != 0) return -1;
  return bind(c, json_array_get(s, 1), gen ? SC_KIND_GEN : SC_KIND_PROMISE, &out->slot);
}

static int c_await(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  if (need_async(c, "await", x) != 0) return -1;
  out->has_value = true;
  if (value(c, json_array_get(s, 1), x, &out->value) != 0) return -1;
  out->has_label = json_array_size(s) == 3;
  return out->has_label ? label(c, json_array_get(s, 2), &out->label) : 0;
}

static int c_return_throw(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  if (need_async(c, out->op == SC_RETURN ? "return" : "throw", x) != 0) return -1;
  out->in_try = x->try_depth > 0;
  out->has_value = true;
  return value(c, json_array_get(s, 1), x, &out->value);
}

static int c_try(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  if (need_async(c, "try", x) != 0) return -1;
  ctx tx = *x;
  tx.try_depth++;
  if (tx.body && tx.body->try_depth < tx.try_depth) tx.body->try_depth = tx.try_depth;
  if (sub_block(c, "[1]", json_array_get(s, 1), &tx, &out->body) != 0) return -1;
  return sub_block(c, "[2]", json_array_get(s, 2), x, &out->rescue);
}

static int c_forawait(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  char buf[96];
  json_t *src = json_array_get(s, 1);
  if (need_async(c, "forawait", x) != 0) return -1;
  if (json_is_array(src)) {
    size_t mark = path_push(c, "[1]");
    if (mark == (size_t)-1 || value_list(c, src, x, &out->items, &out->n_items) != 0) return -1;
    path_pop(c, mark);
  } else if (json_is_object(src) && json_object_size(src) == 1 && json_object_get(src, "gen")) {
    out->from_gen = true;
    if (use(c, json_object_get(src, "gen"), SC_KIND_GEN, SC_KIND_GEN, &out->src) != 0) return -1;
  } else {
    return fail(c, "the source of forawait is a list of values or {\"gen\": G}, not %s",
                describe(src, buf, sizeof buf));
  }
  out->has_label = true;
  return label(c, json_array_get(s, 2), &out->label);
}

static int c_yield(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  char buf[64];
  if (x->fn != FN_ASYNCGEN) {
    return fail(c, "\"yield\" stands only in an asyncgen body (here: %s)", ctx_word(x, buf, sizeof buf));
  }
  out->has_value = true;
  return value(c, json_array_get(s, 1), x, &out->value);
}

/* The statement table: name, op, whether it binds a name, its argument
 * counts (min..max, the statement's name not counted) and its compiler. */
typedef struct op_info {
  const char *name;
  sc_op op;
  bool binds;
  size_t min_args, max_args;
  compile_fn compile;
} op_info;

static const op_info OPS[] = {
    {"log", SC_LOG, false, 1, 2, c_log},
    {"deferred", SC_DEFERRED, true, 1, 1, c_deferred},
    {"resolve", SC_RESOLVE, false, 2, 2, c_settle},
    {"reject", SC_REJECT, false, 2, 2, c_settle},
    {"resolved", SC_RESOLVED, true, 2, 2, c_resolved},
    {"rejected", SC_REJECTED, true, 2, 2, c_resolved},
    {"then", SC_THEN, true, 4, 4, c_then},
    {"catch", SC_CATCH, true, 3, 3, c_catch_finally},
    {"finally", SC_FINALLY, true, 3, 3, c_catch_finally},
    {"all", SC_ALL, true, 2, 2, c_combinator},
    {"allSettled", SC_ALL_SETTLED, true, 2, 2, c_combinator},
    {"race", SC_RACE, true, 2, 2, c_combinator},
    {"any", SC_ANY, true, 2, 2, c_combinator},
    {"micro", SC_MICRO, false, 1, 1, c_micro_immediate},
    {"timeout", SC_TIMEOUT, true, 3, 3, c_timeout},
    {"interval", SC_INTERVAL, true, 4, 4, c_interval},
    {"clear", SC_CLEAR, false, 1, 1, c_clear},
    {"immediate", SC_IMMEDIATE, false, 1, 1, c_micro_immediate},
    {"async", SC_ASYNC, true, 2, 2, c_async},
    {"asyncgen", SC_ASYNCGEN, true, 2, 2, c_async},
    {"await", SC_AWAIT, false, 1, 2, c_await},
    {"return", SC_RETURN, false, 1, 1, c_return_throw},
    {"throw", SC_THROW, false, 1, 1, c_return_throw},
    {"try", SC_TRY, false, 2, 2, c_try},
    {"forawait", SC_FORAWAIT, false, 2, 2, c_forawait},
    {"yield", SC_YIELD, false, 1, 1, c_yield},
};

static const op_info *op_find(json_t *name) {
  for (size_t i = 0; i < sizeof OPS / sizeof OPS[0]; i++) {
    size_t len = strlen(OPS[i].name);
    if (len == json_string_length(name) && memcmp(OPS[i].name, json_string_value(name), len) == 0) {
      return &OPS[i];
    }
  }
  return NULL;
}

static int arity(compiler *c, const op_info *op, size_t args) {
  if (args >= op->min_args && args <= op->max_args) return 0;
  if (op->min_args != op->max_args) {
    return fail(c, "\"%s\" takes %zu or %zu arguments, got %zu", op->name, op->min_args, op->max_args,
                args);
  }
  return fail(c, "\"%s\" takes %zu argument%s, got %zu", op->name, op->min_args,
              op->min_args == 1 ? "" : "s", args);
}

static int statement(compiler *c, json_t *s, const ctx *x, sc_stmt *out) {
  char buf[96];
  if (!json_is_array(s) || json_array_size(s) == 0 || !json_is_string(json_array_get(s, 0))) {
    return fail(c, "a statement must be an array starting with its name, not %s",
                describe(s, buf, sizeof buf));
  }
  const op_info *op = op_find(json_array_get(s, 0));
  if (op && op->binds && x->no_bind) {
    return fail(c, "\"%s\" binds a name, so it may not stand in %s", op->name, x->no_bind);
  }
  if (!op) return fail(c, "unknown statement \"%.100s\"", json_string_value(json_array_get(s, 0)));
  if (arity(c, op, json_array_size(s) - 1) != 0) return -1;
  out->op = op->op;
  out->id = c->prog->n_stmts++;
  if (!(out->where = path_keep(c))) return -1;
  return op->compile(c, s, x, out);
}

/* ---- the file ---------------------------------------------------------------------------- */

/* validate.js refuses numbers written with a fraction or an exponent, wherever
 * they stand; jansson parses exactly those as reals. */
static int check_integers(compiler *c, json_t *v) {
  const char *key;
  json_t *item;
  size_t i;
  switch (json_typeof(v)) {
    case JSON_REAL:
      return fail(c, "number %.17g is not an integer (write integers without fraction or exponent)",
                  json_real_value(v));
    case JSON_ARRAY:
      json_array_foreach(v, i, item) {
        if (check_integers(c, item) != 0) return -1;
      }
      return 0;
    case JSON_OBJECT:
      json_object_foreach(v, key, item) {
        if (check_integers(c, item) != 0) return -1;
      }
      return 0;
    default:
      return 0;
  }
}

static int check_document(compiler *c, json_t *doc) {
  char buf[96];
  static const char *const keys[] = {"name", "program", NULL};
  if (!json_is_object(doc)) {
    return fail(c, "the file must hold a JSON object, not %s", describe(doc, buf, sizeof buf));
  }
  const char *key = unknown_key(doc, keys);
  if (key) return fail(c, "unknown top-level key \"%.100s\" (only \"name\" and \"program\")", key);
  json_t *name = json_object_get(doc, "name"), *program = json_object_get(doc, "program");
  if (name && !json_is_string(name)) {
    return fail(c, "name: must be a string, not %s", describe(name, buf, sizeof buf));
  }
  if (!program) return fail(c, "missing \"program\"");
  if (!json_is_array(program)) {
    return fail(c, "program: must be an array of statements, not %s", describe(program, buf, sizeof buf));
  }
  ctx top = {FN_MAIN, NULL, NULL, NULL, 0};
  size_t mark = path_push(c, "program");
  if (mark == (size_t)-1 || block(c, program, &top, &c->prog->main) != 0) return -1;
  path_pop(c, mark);
  return 0;
}

/* Reads the whole file. Returns its bytes (malloc'd) or NULL with *error. */
static char *read_file(const char *file, size_t *len, char **error) {
  FILE *f = fopen(file, "rb");
  if (!f) {
    *error = sc_strdupf("cannot read the file (%s)", strerror(errno));
    return NULL;
  }
  char *buf = NULL;
  size_t cap = 0;
  *len = 0;
  for (;;) {
    if (*len == cap) {
      cap = cap ? cap * 2 : 64 << 10;
      char *p = realloc(buf, cap);
      if (!p) break;
      buf = p;
    }
    size_t got = fread(buf + *len, 1, cap - *len, f);
    *len += got;
    if (got == 0) break;
  }
  if (ferror(f) || !feof(f)) {
    *error = sc_strdupf("cannot read the file (%s)", ferror(f) ? strerror(errno) : "out of memory");
    free(buf);
    buf = NULL;
  }
  fclose(f);
  return buf;
}

/* The length of the valid UTF-8 sequence at s[0..n), or 0 (WHATWG's decoder:
 * no overlongs, no surrogates, nothing above U+10FFFF). On 0, *bad receives
 * how many bytes form the maximal invalid subpart, which decodes as one U+FFFD. */
static size_t utf8_sequence(const unsigned char *s, size_t n, size_t *bad) {
  unsigned char c = s[0], lower = 0x80, upper = 0xBF;
  size_t need;
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    need = 1;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 2;
    if (c == 0xE0) lower = 0xA0;
    if (c == 0xED) upper = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 3;
    if (c == 0xF0) lower = 0x90;
    if (c == 0xF4) upper = 0x8F;
  } else {
    *bad = 1;
    return 0;
  }
  for (size_t i = 1; i <= need; i++) {
    if (i >= n || s[i] < lower || s[i] > upper) {
      *bad = i;
      return 0;
    }
    lower = 0x80;
    upper = 0xBF;
  }
  return need + 1;
}

/* Node.js reads the file as UTF-8, replacing each invalid sequence with
 * U+FFFD, and parses what it got; jansson refuses invalid UTF-8 outright. To
 * accept the same files, text is rewritten the same way (in place when it is
 * valid, which is the usual case). Returns text or a new buffer (and frees
 * text), or NULL when memory runs out. */
static char *utf8_replace_invalid(char *text, size_t *len) {
  const unsigned char *s = (const unsigned char *)text;
  size_t n = *len, i = 0, bad = 0;
  while (i < n) {
    size_t k = utf8_sequence(s + i, n - i, &bad);
    if (!k) break;
    i += k;
  }
  if (i == n) return text;
  char *out = malloc(n * 3 + 1); /* each invalid byte grows to at most 3 */
  if (!out) {
    free(text);
    return NULL;
  }
  size_t o = 0;
  for (i = 0; i < n;) {
    size_t k = utf8_sequence(s + i, n - i, &bad);
    if (k) {
      memcpy(out + o, s + i, k);
      o += k;
      i += k;
    } else {
      memcpy(out + o, "\xEF\xBF\xBD", 3);
      o += 3;
      i += bad;
    }
  }
  free(text);
  *len = o;
  return out;
}

/* Moves the compiler's name table into the program. */
static int keep_names(compiler *c) {
  sc_program *p = c->prog;
  p->n_slots = c->n_slots;
  p->names = calloc(c->n_slots ? c->n_slots : 1, sizeof *p->names);
  p->kinds = calloc(c->n_slots ? c->n_slots : 1, sizeof *p->kinds);
  if (!p->names || !p->kinds) return oom(c), -1;
  for (size_t i = 0; i < c->n_slots; i++) {
    p->names[i] = c->slots[i].name;
    p->kinds[i] = c->slots[i].kind;
  }
  return 0;
}

static void compiler_free(compiler *c) {
  for (size_t i = 0; i < c->n_slots; i++) free(c->slots[i].where);
  free(c->slots);
  free(c->index);
  free(c->path);
}

static int compile(compiler *c, const char *file) {
  size_t len;
  char *text = read_file(file, &len, &c->error);
  if (!text) return -1;
  if (!(text = utf8_replace_invalid(text, &len))) return oom(c), -1;
  /* A raw NUL byte is never valid JSON (in a string it must be escaped), but
   * jansson's reader lets one through between tokens. */
  const char *nul = memchr(text, '\0', len);
  if (nul) {
    fail(c, "not valid JSON (a NUL byte at offset %zu)", (size_t)(nul - text));
    free(text);
    return -1;
  }
  json_error_t jerr;
  json_t *doc = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &jerr);
  free(text);
  if (!doc) {
    return fail(c, "not valid JSON (%s at line %d column %d)", jerr.text, jerr.line, jerr.column);
  }
  c->prog->doc = doc;
  if (check_integers(c, doc) != 0 || check_document(c, doc) != 0) return -1;
  return keep_names(c);
}

int sc_load(const char *file, sc_program **out, char **error) {
  *out = NULL;
  sc_program *prog = calloc(1, sizeof *prog);
  compiler c = {0};
  c.prog = prog;
  c.path_cap = 256;
  c.path = calloc(1, c.path_cap);
  int rc = -1;
  if (!prog || !c.path || !(prog->file = strdup(file)) || !(prog->arena = calloc(1, sizeof *prog->arena))) {
    oom(&c);
  } else {
    rc = compile(&c, file);
  }
  compiler_free(&c);
  *error = c.error; /* NULL only when even the message could not be allocated */
  if (rc != 0 || c.error) {
    sc_program_free(prog);
    return -1;
  }
  *out = prog;
  return 0;
}

void sc_program_free(sc_program *prog) {
  if (!prog) return;
  arena_free(prog->arena);
  json_decref(prog->doc);
  free(prog->names);
  free(prog->kinds);
  free(prog->file);
  free(prog);
}

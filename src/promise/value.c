/*
 * value.c — the values promises settle with: construction, references,
 * accessors and printing.
 */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/alloc.h"
#include "promise/value.h"

/* The value model's promise: 16 bytes, passed in two registers. */
_Static_assert(sizeof(vow_value) == 16, "vow_value must stay 16 bytes");

/* ---- the static out-of-memory error ------------------------------------- */

/* Laid out as a vow__string, with the bytes inline so it can be static. */
static struct {
  vow_object h;
  uint32_t len;
  char data[14];
} nomem_text = {{VOW__IMMORTAL, VOW_STRING, {0}}, 13, "out of memory"};

static vow__error nomem_error = {
    {VOW__IMMORTAL, VOW_ERROR, {0}},
    VOW_ENOMEM,
    {.kind = VOW_STRING, .as.obj = &nomem_text.h},
    {0},
};

vow_value vow_error_nomem(void) {
  vow_value v = {0};
  v.kind = VOW_ERROR;
  v.as.obj = &nomem_error.h;
  return v;
}

static vow_value heap_value(vow_kind kind, vow_object *obj) {
  vow_value v = {0};
  v.kind = (uint8_t)kind;
  v.as.obj = obj;
  return v;
}

static void *object_new(size_t size, vow_kind kind) {
  vow_object *o = vow__calloc(1, size);
  if (!o) return NULL;
  o->refs = 1;
  o->kind = (uint8_t)kind;
  return o;
}

/* ---- references ------------------------------------------------------------ */

vow_value vow_ref(vow_value v) {
  return vow__ref(v);
}

void vow__object_free(vow_value v) {
  switch (v.kind) {
    case VOW_STRING:
      vow__free(v.as.obj);
      break;
    case VOW_ARRAY:
    case VOW_AGGREGATE: {
      vow__array *a = (vow__array *)v.as.obj;
      for (uint32_t i = 0; i < a->len; i++) vow_unref(a->items[i]);
      vow__free(a->items);
      vow__free(a);
      break;
    }
    case VOW_ERROR: {
      vow__error *e = (vow__error *)v.as.obj;
      vow_unref(e->message);
      vow_unref(e->cause);
      vow__free(e);
      break;
    }
    case VOW_SETTLED:
    case VOW_ITER: {
      vow__settled *s = (vow__settled *)v.as.obj;
      vow_unref(s->value);
      vow__free(s);
      break;
    }
    case VOW_POINTER: {
      vow__pointer *p = (vow__pointer *)v.as.obj;
      if (p->destroy) p->destroy(p->ptr);
      vow__free(p);
      break;
    }
    case VOW_PROMISE:
      vow__promise_destroy(v.as.promise);
      break;
    default:
      break;
  }
}

void vow_unref(vow_value v) {
  vow__unref(v);
}

/* ---- constructors ---------------------------------------------------------- */

vow_value vow_string_n(const char *s, size_t len) {
  if (len > UINT32_MAX - 1) return vow_error_nomem();
  vow__string *str = object_new(sizeof *str + len + 1, VOW_STRING);
  if (!str) return vow_error_nomem();
  str->len = (uint32_t)len;
  if (len) memcpy(str->data, s, len);
  str->data[len] = '\0';
  return heap_value(VOW_STRING, &str->h);
}

vow_value vow_string(const char *s) {
  return vow_string_n(s ? s : "", s ? strlen(s) : 0);
}

/* A string of what fmt and ap print, or an error value: VOW_ENOMEM, or
 * VOW_EINVAL when fmt cannot be printed (vsnprintf failed). */
static vow_value string_vformat(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static vow_value string_vformat(const char *fmt, va_list ap) {
  va_list again;
  va_copy(again, ap);
  int n = vsnprintf(NULL, 0, fmt, ap);
  if (n < 0) {
    va_end(again);
    return vow_error(VOW_EINVAL, "a format that cannot be printed");
  }
  vow__string *str = object_new(sizeof *str + (size_t)n + 1, VOW_STRING);
  if (str) vsnprintf(str->data, (size_t)n + 1, fmt, again);
  va_end(again);
  if (!str) return vow_error_nomem();
  str->len = (uint32_t)n;
  return heap_value(VOW_STRING, &str->h);
}

vow_value vow_stringf(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vow_value s = string_vformat(fmt, ap);
  va_end(ap);
  return s;
}

/* An error of code; message (a string) and cause are taken. */
static vow_value error_new(int code, vow_value message, vow_value cause) {
  vow__error *e = object_new(sizeof *e, VOW_ERROR);
  if (!e) {
    vow_unref(message);
    vow_unref(cause);
    return vow_error_nomem();
  }
  e->code = code;
  e->message = message;
  e->cause = cause;
  return heap_value(VOW_ERROR, &e->h);
}

vow_value vow_error_with_cause(int code, const char *message, vow_value cause) {
  return error_new(code, vow_string(message), cause);
}

vow_value vow_error(int code, const char *message) {
  return vow_error_with_cause(code, message, vow_undefined());
}

vow_value vow_errorf(int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vow_value message = string_vformat(fmt, ap);
  va_end(ap);
  if (message.kind == VOW_ERROR) return message; /* out of memory, or a bad format */
  return error_new(code, message, vow_undefined());
}

vow_value vow_array(size_t capacity) {
  vow__array *a = object_new(sizeof *a, VOW_ARRAY);
  if (!a) return vow_error_nomem();
  if (capacity > UINT32_MAX) capacity = UINT32_MAX;
  if (capacity) {
    a->items = vow__malloc(capacity * sizeof *a->items);
    if (!a->items) {
      vow__free(a);
      return vow_error_nomem();
    }
    a->cap = (uint32_t)capacity;
  }
  return heap_value(VOW_ARRAY, &a->h);
}

int vow_array_push(vow_value array, vow_value item) {
  if (array.kind != VOW_ARRAY || !array.as.obj) {
    vow_unref(item);
    return VOW_EINVAL;
  }
  vow__array *a = (vow__array *)array.as.obj;
  if (a->len == a->cap) {
    uint32_t cap = a->cap ? (a->cap > UINT32_MAX / 2 ? UINT32_MAX : a->cap * 2) : 4;
    vow_value *items = cap > a->len ? vow__realloc(a->items, (size_t)cap * sizeof *items) : NULL;
    if (!items) {
      vow_unref(item);
      return VOW_ENOMEM;
    }
    a->items = items;
    a->cap = cap;
  }
  a->items[a->len++] = item;
  return 0;
}

vow_value vow_pointer(void *ptr, void (*destroy)(void *ptr)) {
  vow__pointer *p = object_new(sizeof *p, VOW_POINTER);
  if (!p) {
    if (destroy) destroy(ptr);
    return vow_error_nomem();
  }
  p->ptr = ptr;
  p->destroy = destroy;
  return heap_value(VOW_POINTER, &p->h);
}

vow_value vow_promise_value(vow_promise *p) {
  if (!p) return vow_error_nomem();
  return heap_value(VOW_PROMISE, (vow_object *)p);
}

vow_value vow__settled_new(int fulfilled, vow_value value) {
  vow__settled *s = object_new(sizeof *s, VOW_SETTLED);
  if (!s) {
    vow_unref(value);
    return vow_error_nomem();
  }
  s->h.bits[0] = fulfilled ? 1 : 0;
  s->value = value;
  return heap_value(VOW_SETTLED, &s->h);
}

vow_value vow__iter_new(int done, vow_value value) {
  vow_value v = vow__settled_new(done, value);
  if (v.kind != VOW_SETTLED) return v;
  v.kind = VOW_ITER;
  v.as.obj->kind = VOW_ITER;
  return v;
}

vow_value vow__aggregate_new(vow_value errors) {
  if (errors.kind != VOW_ARRAY) return errors; /* out of memory building it */
  errors.kind = VOW_AGGREGATE;
  errors.as.obj->kind = VOW_AGGREGATE;
  return errors;
}

/* ---- accessors --------------------------------------------------------------- */

int64_t vow_as_int(vow_value v) {
  switch (v.kind) {
    case VOW_INT:
    case VOW_BOOL: return v.as.i;
    case VOW_DOUBLE: return (int64_t)v.as.d;
    default: return 0;
  }
}

double vow_as_double(vow_value v) {
  switch (v.kind) {
    case VOW_DOUBLE: return v.as.d;
    case VOW_INT: return (double)v.as.i;
    default: return 0.0;
  }
}

const char *vow_str(vow_value v) {
  return v.kind == VOW_STRING && v.as.obj ? ((vow__string *)v.as.obj)->data : "";
}

size_t vow_str_len(vow_value v) {
  return v.kind == VOW_STRING && v.as.obj ? ((vow__string *)v.as.obj)->len : 0;
}

size_t vow_array_len(vow_value v) {
  if ((v.kind != VOW_ARRAY && v.kind != VOW_AGGREGATE) || !v.as.obj) return 0;
  return ((vow__array *)v.as.obj)->len;
}

vow_value vow_array_get(vow_value v, size_t i) {
  if (i >= vow_array_len(v)) return vow_undefined();
  return ((vow__array *)v.as.obj)->items[i];
}

int vow_error_code(vow_value v) {
  if (v.kind == VOW_AGGREGATE) return VOW_EAGGREGATE;
  return v.kind == VOW_ERROR && v.as.obj ? ((vow__error *)v.as.obj)->code : 0;
}

const char *vow_error_message(vow_value v) {
  if (v.kind == VOW_AGGREGATE) return "All promises were rejected";
  return v.kind == VOW_ERROR && v.as.obj ? vow_str(((vow__error *)v.as.obj)->message) : "";
}

vow_value vow_error_cause(vow_value v) {
  return v.kind == VOW_ERROR && v.as.obj ? ((vow__error *)v.as.obj)->cause : vow_undefined();
}

int vow_settled_ok(vow_value v) {
  return v.kind == VOW_SETTLED && v.as.obj ? v.as.obj->bits[0] : 0;
}

vow_value vow_settled_value(vow_value v) {
  return v.kind == VOW_SETTLED && v.as.obj ? ((vow__settled *)v.as.obj)->value : vow_undefined();
}

int vow_iter_done(vow_value v) {
  return v.kind == VOW_ITER && v.as.obj ? v.as.obj->bits[0] : 0;
}

vow_value vow_iter_value(vow_value v) {
  return v.kind == VOW_ITER && v.as.obj ? ((vow__settled *)v.as.obj)->value : vow_undefined();
}

vow_promise *vow_as_promise(vow_value v) {
  return v.kind == VOW_PROMISE ? v.as.promise : NULL;
}

void *vow_as_pointer(vow_value v) {
  return v.kind == VOW_POINTER && v.as.obj ? ((vow__pointer *)v.as.obj)->ptr : NULL;
}

/* ---- printing ---------------------------------------------------------------- */

typedef struct out {
  char *buf;
  size_t cap;
  size_t len; /* what was needed, may exceed cap */
} out;

static void put(out *o, const char *s, size_t n) {
  if (o->len < o->cap) {
    size_t room = o->cap - o->len;
    memcpy(o->buf + o->len, s, n < room ? n : room);
  }
  o->len += n;
}

static void puts_(out *o, const char *s) { put(o, s, strlen(s)); }

static void put_json_string(out *o, const char *s, size_t n) {
  static const char hex[] = "0123456789abcdef";
  put(o, "\"", 1);
  for (size_t i = 0; i < n; i++) {
    unsigned char c = (unsigned char)s[i];
    switch (c) {
      case '"': puts_(o, "\\\""); break;
      case '\\': puts_(o, "\\\\"); break;
      case '\n': puts_(o, "\\n"); break;
      case '\r': puts_(o, "\\r"); break;
      case '\t': puts_(o, "\\t"); break;
      case '\b': puts_(o, "\\b"); break;
      case '\f': puts_(o, "\\f"); break;
      default:
        if (c < 0x20) {
          char u[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
          put(o, u, 6);
        } else {
          put(o, (const char *)&c, 1);
        }
    }
  }
  put(o, "\"", 1);
}

static void format_value(out *o, vow_value v, int depth);

static void format_items(out *o, vow_value v, int depth) {
  put(o, "[", 1);
  for (size_t i = 0, n = vow_array_len(v); i < n; i++) {
    if (i) put(o, ",", 1);
    format_value(o, vow_array_get(v, i), depth + 1);
  }
  put(o, "]", 1);
}

static void format_value(out *o, vow_value v, int depth) {
  char num[64];
  if (depth > 64) { /* arrays can hold themselves; printing must still end */
    puts_(o, "...");
    return;
  }
  switch (v.kind) {
    case VOW_UNDEFINED: puts_(o, "undefined"); break;
    case VOW_NULL: puts_(o, "null"); break;
    case VOW_BOOL: puts_(o, v.as.i ? "true" : "false"); break;
    case VOW_INT:
      snprintf(num, sizeof num, "%lld", (long long)v.as.i);
      puts_(o, num);
      break;
    case VOW_DOUBLE:
      snprintf(num, sizeof num, "%.17g", v.as.d);
      puts_(o, num);
      break;
    case VOW_STRING: put_json_string(o, vow_str(v), vow_str_len(v)); break;
    case VOW_ARRAY: format_items(o, v, depth); break;
    case VOW_AGGREGATE:
      puts_(o, "AggregateError");
      format_items(o, v, depth);
      break;
    case VOW_SETTLED:
      puts_(o, vow_settled_ok(v) ? "{fulfilled:" : "{rejected:");
      format_value(o, vow_settled_value(v), depth + 1);
      put(o, "}", 1);
      break;
    case VOW_ITER:
      puts_(o, "{value:");
      format_value(o, vow_iter_value(v), depth + 1);
      puts_(o, vow_iter_done(v) ? ",done:true}" : ",done:false}");
      break;
    case VOW_ERROR:
      snprintf(num, sizeof num, "Error(%s: ", vow_err_name(vow_error_code(v)));
      puts_(o, num);
      puts_(o, vow_error_message(v));
      put(o, ")", 1);
      break;
    case VOW_PROMISE: puts_(o, "<promise>"); break;
    case VOW_POINTER: puts_(o, "<pointer>"); break;
    default: puts_(o, "<?>"); break;
  }
}

size_t vow_value_format(vow_value v, char *buf, size_t cap) {
  out o = {buf, cap, 0};
  format_value(&o, v, 0);
  if (cap) buf[o.len < cap ? o.len : cap - 1] = '\0';
  return o.len;
}

int vow_value_print(FILE *stream, vow_value v) {
  char small[256];
  size_t n = vow_value_format(v, small, sizeof small);
  if (n < sizeof small) return fprintf(stream, "%s", small);
  char *big = vow__malloc(n + 1);
  if (!big) return -1;
  vow_value_format(v, big, n + 1);
  int r = fprintf(stream, "%s", big);
  vow__free(big);
  return r;
}

/*
 * scenario.h — vow-scenario's private interface: the checked form of a
 * conformance scenario (FORMAT.md, /work/shared/conformance/FORMAT.md) and the
 * two steps that use it.
 *
 *   load.c    reads a file, checks it against FORMAT.md as tools/oracle/validate.js
 *             does, and compiles it into the tree below (a "program");
 *   run.c     runs a program on a fresh vow loop and collects its log lines;
 *   print.c   the scenario's log: FORMAT's P(...) on top of vow_value_format;
 *   main.c    the command line.
 *
 * A program is immutable once loaded. Everything a run creates (the promises
 * and timers bound to names, async bodies' state, the log) belongs to the run.
 */
#ifndef VOW_SCENARIO_H
#define VOW_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <vow.h>

/* ---- the program ----------------------------------------------------------- */

/* What a name is bound to; fixed by its binding statement. */
typedef enum sc_kind {
  SC_KIND_DEFERRED, /* "deferred": a promise that resolve/reject may settle */
  SC_KIND_PROMISE,  /* any other promise */
  SC_KIND_TIMER,    /* "timeout" / "interval" */
  SC_KIND_GEN       /* "asyncgen": a generator definition */
} sc_kind;

/* A value V. Strings point into the loaded JSON document, which the program keeps. */
typedef enum sc_value_kind {
  SC_VAL_UNDEFINED, /* null */
  SC_VAL_INT,
  SC_VAL_STRING,
  SC_VAL_PROMISE,   /* {"p": N} */
  SC_VAL_ARG        /* {"arg": true} */
} sc_value_kind;

typedef struct sc_value {
  sc_value_kind kind;
  int64_t i;         /* SC_VAL_INT */
  const char *s;     /* SC_VAL_STRING: bytes (may hold NULs) */
  size_t len;
  size_t slot;       /* SC_VAL_PROMISE: the name's slot */
} sc_value;

/* A label L: bytes without line breaks (may hold NULs). */
typedef struct sc_text {
  const char *s;
  size_t len;
} sc_text;

struct sc_stmt;

typedef struct sc_block {
  struct sc_stmt *stmts;
  size_t n;
} sc_block;

typedef enum sc_ret_kind { SC_RET_NONE, SC_RET_VALUE, SC_RET_THROW } sc_ret_kind;

/* A handler H: (x) => { log(L + " " + P(x)); S; return RET } (finally: log(L)). */
typedef struct sc_handler {
  bool has_log;
  sc_text log;
  sc_block body;
  sc_ret_kind ret_kind;
  sc_value ret;
} sc_handler;

typedef enum sc_op {
  SC_LOG, SC_DEFERRED, SC_RESOLVE, SC_REJECT, SC_RESOLVED, SC_REJECTED,
  SC_THEN, SC_CATCH, SC_FINALLY,
  SC_ALL, SC_ALL_SETTLED, SC_RACE, SC_ANY,
  SC_MICRO, SC_TIMEOUT, SC_INTERVAL, SC_CLEAR, SC_IMMEDIATE,
  SC_ASYNC, SC_ASYNCGEN,
  SC_AWAIT, SC_RETURN, SC_THROW, SC_TRY, SC_FORAWAIT, SC_YIELD
} sc_op;

/* One statement. Which fields mean something depends on op (see load.c). */
typedef struct sc_stmt {
  sc_op op;
  size_t id;             /* 0..n_stmts-1: index of the run's per-statement context */
  const char *where;     /* "program[3][2]", for run-time errors */
  size_t slot;           /* the name bound (N, T, G) or used (resolve, reject, clear) */
  size_t src;            /* then/catch/finally: the source promise; forawait: the gen */
  bool has_label;        /* log, await */
  sc_text label;
  bool has_value;        /* log, resolve, reject, resolved, rejected, await, return, throw, yield */
  sc_value value;
  sc_handler *on_ok;     /* then (may be NULL), finally */
  sc_handler *on_err;    /* then (may be NULL), catch */
  sc_value *items;       /* combinators; forawait over an array */
  size_t n_items;
  bool from_gen;         /* forawait over {"gen": G} */
  int64_t ms;            /* timeout, interval */
  int64_t count;         /* interval */
  sc_block body;         /* micro, timeout, interval, immediate, async, asyncgen; try */
  sc_block rescue;       /* try: the catch block */
  bool in_try;           /* return: stands in a try block of its body */
  size_t try_depth;      /* async, asyncgen: deepest nesting of try blocks in the body */
} sc_stmt;

typedef struct sc_arena sc_arena;

typedef struct sc_program {
  char *file;            /* as named on the command line */
  void *doc;             /* the JSON document (json_t *) that strings point into */
  sc_arena *arena;       /* owns the tree */
  sc_block main;
  size_t n_stmts;        /* statements in the whole tree */
  size_t n_slots;        /* distinct names */
  const char **names;    /* slot -> name */
  sc_kind *kinds;        /* slot -> kind */
} sc_program;

/* Reads and checks FILE. Returns 0 and *out, or -1 and *error: a malloc'd
 * one-line message ("program[3][2]: ...", without the file name). */
int sc_load(const char *file, sc_program **out, char **error);
void sc_program_free(sc_program *prog);

/* Runs prog on a fresh loop and writes its log lines to out. Returns 0, or -1
 * with *error (malloc'd, without the file name) when the run goes wrong the way
 * the oracle refuses to go on (a name used before its binding ran, a value
 * FORMAT cannot print, ...); nothing is written then. */
int sc_run(const sc_program *prog, FILE *out, char **error);

/* ---- the log (print.c) ------------------------------------------------------ */

/* The oracle's limit: a scenario printing more lines than this is in error. */
#define SC_MAX_LINES 100000
/* A limit of ours on the bytes printed, so a small file cannot ask for
 * unbounded memory (an interval printing a long label many times). */
#define SC_MAX_OUTPUT ((size_t)256 << 20)

typedef struct sc_log {
  char *buf;
  size_t len, cap;
  size_t lines;
  /* FORMAT 1.1: the name a promise value v (or the run's stand-in for one, a
   * VOW_POINTER: see run.c) prints as, promise:NAME; NULL when it has none. */
  const char *(*promise_name)(void *ctx, vow_value v);
  void *promise_name_ctx;
} sc_log;

/* Each returns 0, or -1 with a malloc'd *error (a limit was passed, the value
 * cannot be printed, or memory ran out). */
int sc_log_line(sc_log *log, sc_text label, char **error);
int sc_log_value(sc_log *log, sc_text label, vow_value v, char **error);
void sc_log_free(sc_log *log);

/* A malloc'd printf; NULL only when memory runs out. */
char *sc_strdupf(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;

#endif /* VOW_SCENARIO_H */

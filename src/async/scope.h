/*
 * scope.h — cancel scopes' insides, shared with group.c and dump.c (internal).
 */
#ifndef VOW_SCOPE_H
#define VOW_SCOPE_H

#include "async/async.h"

typedef struct vow_group vow_group;

struct vow_scope {
  vow_loop *loop;
  vow__frame *frame;          /* the frame it was opened in */
  vow_scope *parent;          /* the frame's enclosing scope, or NULL */
  vow_abort_signal *signal;   /* aborts when the scope is cancelled (a reference) */
  vow_abort_signal *outer;    /* followed: the enclosing scope's signal, or the
                                 options' (a reference), or NULL */
  int64_t outer_id;
  vow_abort_signal *user;     /* followed: options.signal (a reference), or NULL */
  int64_t user_id;
  vow_timer deadline;         /* 0: none */
  vow_group *group;           /* set on a group child's root scope (group.c) */
  int embedded;               /* its memory is not scope.c's (a group child's) */
  int by_outer;               /* cancelled because the enclosing scope was */
};

/* Opens s as f's innermost scope, cancelled exactly when signal (borrowed; a
 * reference is kept) aborts: a group child's root scope. Nothing to fail. */
void vow__scope_enter(vow_scope *s, vow__frame *f, vow_abort_signal *signal);
/* Closes the innermost scope s of its frame (opened by vow__scope_enter). */
void vow__scope_leave(vow_scope *s);

/* group.c: the group's name (options.name, or "group"). */
const char *vow__group_name(const vow_group *g);

/* The error code an await inside a cancelled scope returns for its reason. */
int vow__scope_code(vow_value reason);

#endif

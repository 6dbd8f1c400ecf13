/*
 * list.h - the intrusive lists vow keeps of live objects, so that a loop's
 * teardown can find them (open streams, pending lookups, running children...).
 *
 * A list is a head pointer (T *, NULL when empty); an element of type T has
 * `T *prev, *next` fields of its own. Macros, so that every list stays typed
 * and an element needs no container_of to be found again.
 *
 * Invariants: head->prev == NULL; for every element x, x->next->prev == x
 * and x->prev->next == x when those exist; an element is in at most one list
 * at a time, and an unlinked element has prev == next == NULL. Whether an
 * element is linked at all is its owner's to record (a flag, or the state
 * pointer it was linked from): the macros assume it is, or is not, as named.
 */
#ifndef VOW_CORE_LIST_H
#define VOW_CORE_LIST_H

/* Links x, which is in no list, at the front of the list at head. */
#define VOW__LIST_PUSH(head, x)             \
  do {                                      \
    (x)->prev = NULL;                       \
    (x)->next = (head);                     \
    if ((x)->next) (x)->next->prev = (x);   \
    (head) = (x);                           \
  } while (0)

/* Unlinks x from the list at head, which holds it. */
#define VOW__LIST_UNLINK(head, x)                      \
  do {                                                 \
    if ((x)->prev) (x)->prev->next = (x)->next;        \
    else (head) = (x)->next;                           \
    if ((x)->next) (x)->next->prev = (x)->prev;        \
    (x)->prev = (x)->next = NULL;                      \
  } while (0)

#endif /* VOW_CORE_LIST_H */

/*
 * children.h — what child processes the test process has, read from /proc:
 * the "no zombie ever" check. A zombie is a child that exited and was never
 * reaped (state Z); a child still running is state R, S or D.
 */
#ifndef VOW_TEST_CHILDREN_H
#define VOW_TEST_CHILDREN_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

/* Counts the children of this process, and among them the zombies. */
static inline int children_count(int *zombies) {
  int n = 0, z = 0;
  DIR *d = opendir("/proc");
  if (!d) return -1;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[300], line[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    FILE *f = fopen(path, "r");
    if (!f) continue; /* gone meanwhile */
    size_t len = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[len] = '\0';
    /* "pid (comm) S ppid ...": comm may hold anything, so parse after the last ')'. */
    char *close = strrchr(line, ')');
    char state;
    int ppid;
    if (!close || sscanf(close + 1, " %c %d", &state, &ppid) != 2) continue;
    if (ppid != getpid()) continue;
    n++;
    if (state == 'Z') z++;
  }
  closedir(d);
  if (zombies) *zombies = z;
  return n;
}

/* Asserts that this process has no child at all: none running, none a
 * zombie — by /proc, and by waitpid(-1, WNOHANG), which would reap one. */
#define ASSERT_NO_CHILDREN()                                                         \
  do {                                                                               \
    int zombies_ = 0;                                                                \
    int n_ = children_count(&zombies_);                                              \
    cr_assert_eq(zombies_, 0, "%d zombie children", zombies_);                      \
    cr_assert_eq(n_, 0, "%d children still running", n_);                          \
    int st_;                                                                         \
    errno = 0;                                                                       \
    cr_assert_eq(waitpid(-1, &st_, WNOHANG), -1, "waitpid found a child");          \
    cr_assert_eq(errno, ECHILD, "no child at all (errno %d)", errno);               \
  } while (0)

#endif

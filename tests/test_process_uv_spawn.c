/*
 * test_process_uv_spawn.c — test_process.c again, with every child spawned by
 * uv_spawn: the path process.c takes where the kernel gives no pidfd
 * (before Linux 5.3, or under a seccomp filter). Criterion forks each test
 * from this process, so the choice made before main holds in all of them.
 */
#include "test_process.c"
#include "io/io.h"

__attribute__((constructor)) static void spawn_with_libuv(void) {
  vow__process_use_uv_spawn();
}

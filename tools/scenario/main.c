/*
 * vow-scenario — runs conformance scenarios (FORMAT.md) on vow.
 *
 *   vow-scenario FILE.json...          run each file, print its log lines
 *   vow-scenario --check FILE.json...  only check each file ("FILE: ok"), as
 *                                      tools/oracle/validate.js does
 *
 * Runs each file in turn, each on a fresh loop, and prints its log lines on
 * stdout: the lines `node tools/oracle/oracle.js FILE.json` prints. Exit 0.
 * A malformed file, or a run that goes wrong as the oracle refuses to go on
 * (a name used before its binding ran, a value FORMAT cannot print), gets one
 * line on stderr, "FILE: program[3][2]: problem", and exit status 2; the files
 * after it are not run. (--check goes on with the other files.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scenario.h"

/* Loads file and, unless check_only, runs it. Returns 0 or -1 (reported). */
static int do_file(const char *file, int check_only) {
  sc_program *prog;
  char *error;
  int rc = sc_load(file, &prog, &error);
  if (rc == 0 && !check_only) rc = sc_run(prog, stdout, &error);
  sc_program_free(prog);
  if (rc != 0) fprintf(stderr, "%s: %s\n", file, error ? error : "out of memory");
  else if (check_only) printf("%s: ok\n", file);
  free(error);
  return rc;
}

int main(int argc, char **argv) {
  int check_only = argc > 1 && strcmp(argv[1], "--check") == 0;
  if (argc < 2 + check_only) {
    fprintf(stderr, "usage: vow-scenario [--check] FILE.json...\n");
    return 2;
  }
  int status = 0;
  for (int i = 1 + check_only; i < argc; i++) {
    if (do_file(argv[i], check_only) != 0) {
      status = 2;
      if (!check_only) break;
    }
  }
  return status;
}

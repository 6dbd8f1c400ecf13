/*
 * vow-timeline TRACE.json [TITLE] > timeline.svg — draws a vow trace
 * (VOW_TRACE=FILE, or vow_trace_start) as a picture, one lane per task.
 */
#include <stdio.h>

#include "timeline.h"

int main(int argc, char **argv) {
  if (argc < 2 || argc > 3) {
    fprintf(stderr, "usage: vow-timeline TRACE.json [TITLE] > timeline.svg\n");
    return 2;
  }
  return vow_timeline_render(argv[1], stdout, argc == 3 ? argv[2] : NULL) == 0 ? 0 : 1;
}

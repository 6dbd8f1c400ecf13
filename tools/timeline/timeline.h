/*
 * timeline.h — draws a vow trace (Chrome trace-event JSON) as an SVG picture:
 * one lane per concurrent task, so parallel work is seen side by side.
 */
#ifndef VOW_TIMELINE_H
#define VOW_TIMELINE_H

#include <stdio.h>

/* Reads the trace at trace_path and writes the SVG to out. title may be NULL.
 * Returns 0, or -1 with a message on stderr naming the file and the problem. */
int vow_timeline_render(const char *trace_path, FILE *out, const char *title);

#endif

/*
 * error.c — names and descriptions of error codes: vow's own, then libuv's.
 */
#include <uv.h>

#include "vow.h"

const char *vow_strerror(int err) {
  switch (err) {
#define VOW__ERRNO_TEXT(name, code, text) case VOW_##name: return text;
    VOW_ERRNO_MAP(VOW__ERRNO_TEXT)
#undef VOW__ERRNO_TEXT
    case 0: return "success";
    default: break;
  }
  /* uv_strerror() allocates for unknown codes; the _r form writes to our buffer. */
  static _Thread_local char buf[80];
  return err < 0 ? uv_strerror_r(err, buf, sizeof buf) : "not an error code";
}

const char *vow_err_name(int err) {
  switch (err) {
#define VOW__ERRNO_NAME(name, code, text) case VOW_##name: return "VOW_" #name;
    VOW_ERRNO_MAP(VOW__ERRNO_NAME)
#undef VOW__ERRNO_NAME
    case 0: return "OK";
    default: break;
  }
  static _Thread_local char buf[40];
  return err < 0 ? uv_err_name_r(err, buf, sizeof buf) : "UNKNOWN";
}

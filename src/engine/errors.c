/*
 * errors.c: hark_strerror(), generated from the HARK_ERRORS table in hark.h,
 * and err_set (errors.h), which every engine file uses to write an error's
 * one-line reason.
 */
#include "errors.h"

#include <stdio.h>

#include "hark.h"

const char *hark_strerror(int code)
{
    switch (code) {
#define HARK_ERR_CASE(name, value, msg) \
    case HARK_##name:                   \
        return msg;
        HARK_ERRORS(HARK_ERR_CASE)
#undef HARK_ERR_CASE
    }
    return "unknown error";
}

void err_vset(char *err, size_t errlen, const char *fmt, va_list ap)
{
    if (!err || !errlen) return;
    vsnprintf(err, errlen, fmt, ap);
}

void err_set(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_vset(err, errlen, fmt, ap);
    va_end(ap);
}

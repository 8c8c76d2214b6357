/*
 * errors.c: hark_strerror(), generated from the HARK_ERRORS table in hark.h.
 */
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

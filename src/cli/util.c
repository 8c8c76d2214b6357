/*
 * util.c: what every subcommand of `hark` shares: the one-line error on
 * stderr, integer arguments, the name of a bad option, and the default
 * thread count. A leaf: it calls nothing of the command's.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("hark: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cli_parse_int(const char *s, int lo, int hi, int *out)
{
    char *end;
    long v;
    if (!s || !*s) return -1;
    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi) return -1;
    *out = (int)v;
    return 0;
}

const char *cli_bad_option(int argc, char **argv)
{
    static char buf[3];
    const char *arg = optind >= 1 && optind - 1 < argc ? argv[optind - 1] : "";
    if (!strncmp(arg, "--", 2)) return arg;
    if (optopt > 0 && optopt < 128) {
        buf[0] = '-';
        buf[1] = (char)optopt;
        buf[2] = 0;
        return buf;
    }
    return arg;
}

int cli_default_threads(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1) n = 1;
    if (n > 8) n = 8;
    return (int)n;
}

/*
 * fuzz_range.c: libFuzzer target for the Range header parser of GET
 * /<id>/<file> (parse_range in src/http/results.c).
 *
 * The first 8 bytes of the input give the file's size (any value from 0 to
 * 2^62), the rest, cut at its first NUL, is the header. The parser must
 * answer 1, 0 or -1; a range it takes lies inside the file, first <= last,
 * and written back as "bytes=first-last" it parses to the same range; an
 * empty file has no satisfiable range, and no header serves the whole file.
 * A broken expectation calls abort() so that the fuzzer records the input.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_NAME "range"
#include "fuzz_expect.h"
#include "internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t file_size = 0, first = -7, last = -7, again_first = -7, again_last = -7;
    uint64_t raw = 0;
    char again[64], *h;
    int kind;

    if (size < 8) return 0;
    memcpy(&raw, data, 8);
    file_size = (int64_t)(raw >> 2);
    h = malloc(size - 8 + 1);
    expect(h != NULL, "memory for the header");
    memcpy(h, data + 8, size - 8);
    h[size - 8] = 0;

    expect(parse_range(NULL, file_size, &first, &last) == 0, "no header serves the whole file");
    kind = parse_range(h, file_size, &first, &last);
    expect(kind == 1 || kind == 0 || kind == -1, "1, 0 or -1");
    if (kind == 1) {
        expect(file_size > 0, "an empty file has no satisfiable range");
        expect(first >= 0 && first <= last && last < file_size, "the range lies inside the file");
        snprintf(again, sizeof again, "bytes=%lld-%lld", (long long)first, (long long)last);
        expect(parse_range(again, file_size, &again_first, &again_last) == 1 && again_first == first &&
                   again_last == last,
               "the range written back parses the same");
    } else {
        expect(first == -7 && last == -7, "no range written when none is taken");
    }
    free(h);
    return 0;
}

/*
 * compress.h: the repetition checks of a decoded window (compress.c):
 * whisper.cpp's entropy of the last tokens and openai-whisper's compression
 * ratio, with the DEFLATE size estimate the ratio rests on.
 */
#ifndef HARK_COMPRESS_H
#define HARK_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

/* Entropy (natural log) of the token counts of the last 32 of n tokens,
 * whisper.cpp's repetition check. */
double decode_entropy_last32(const int32_t *tok, int n);

/* Size in bytes of zlib.compress(data) at level 6, estimated by an LZ77
 * parse (32 KiB window, lazy matching) priced with the cheapest of a
 * stored, fixed-Huffman or dynamic-Huffman block plus zlib's 6 bytes of
 * header and checksum. It is an estimate, not zlib's exact output: the unit
 * test bounds its distance from real zlib. */
size_t decode_deflate_size(const unsigned char *data, size_t n);

/* openai's compression ratio: len(text) / len(zlib.compress(text)). */
float decode_compression_ratio(const char *text, size_t n);

#endif

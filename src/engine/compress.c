/*
 * compress.c: the repetition checks that judge a decoded window: the entropy
 * of its last tokens (whisper.cpp) and openai-whisper's compression ratio,
 * len(text) / len(zlib.compress(text)).
 *
 * The compressed size is estimated here rather than taken from zlib so that
 * the engine needs nothing beyond libc and libm: an LZ77 parse priced as
 * DEFLATE blocks (see compress.h for how close it comes). Pure functions;
 * nothing here allocates.
 */
#include <math.h>
#include <string.h>

#include "compress.h"

double decode_entropy_last32(const int32_t *tok, int n)
{
    int32_t ids[32];
    int cnt[32], m = 0;
    int a = n > 32 ? n - 32 : 0;
    for (int i = a; i < n; i++) {
        int k = 0;
        while (k < m && ids[k] != tok[i]) k++;
        if (k == m) {
            ids[m] = tok[i];
            cnt[m++] = 0;
        }
        cnt[k]++;
    }
    double h = 0.0, total = n - a;
    for (int k = 0; k < m; k++) {
        double p = cnt[k] / total;
        h -= p * log(p);
    }
    return h;
}

/* DEFLATE length and distance code tables (RFC 1951 §3.2.5). */
static const int len_base[29] = {3,  4,  5,  6,  7,  8,  9,  10, 11,  13,  15,  17,  19,  23, 27,
                                 31, 35, 43, 51, 59, 67, 83, 99, 115, 131, 163, 195, 227, 258};
static const int len_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                  2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const int dist_base[30] = {1,    2,    3,    4,    5,    7,     9,     13,    17,  25,
                                  33,   49,   65,   97,   129,  193,   257,   385,   513, 769,
                                  1025, 1537, 2049, 3073, 4097, 6145,  8193,  12289, 16385, 24577};
static const int dist_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                   6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

static int len_code(int len)
{
    int c = 28;
    while (len_base[c] > len) c--;
    return c;
}

static int dist_code(int d)
{
    int c = 29;
    while (dist_base[c] > d) c--;
    return c;
}

/* Huffman code lengths for freq[0..n) (n <= 286), limited to max_bits by
 * the classic rescaling retry; returns the total bits sum(freq * length). */
static long huffman_bits(const long *freq, int n, int max_bits, int *lens)
{
    long f[286];
    int parent[2 * 286], node_of[286];
    long w[2 * 286];
    for (int i = 0; i < n; i++) f[i] = freq[i];
    for (;;) {
        int m = 0;
        for (int i = 0; i < n; i++) {
            lens[i] = 0;
            if (f[i] > 0) {
                w[m] = f[i];
                node_of[i] = m++;
            } else {
                node_of[i] = -1;
            }
        }
        if (m == 0) return 0;
        if (m == 1) {
            for (int i = 0; i < n; i++)
                if (node_of[i] >= 0) lens[i] = 1;
            break;
        }
        /* O(m^2) pairing of the two lightest live nodes: m is at most 286. */
        unsigned char alive[2 * 286];
        memset(alive, 0, sizeof(alive));
        for (int i = 0; i < m; i++) alive[i] = 1;
        int total = m;
        for (int round = 0; round < m - 1; round++) {
            int a = -1, b = -1;
            for (int i = 0; i < total; i++) {
                if (!alive[i]) continue;
                if (a < 0 || w[i] < w[a]) {
                    b = a;
                    a = i;
                } else if (b < 0 || w[i] < w[b]) {
                    b = i;
                }
            }
            w[total] = w[a] + w[b];
            alive[a] = alive[b] = 0;
            alive[total] = 1;
            parent[a] = parent[b] = total;
            total++;
        }
        int too_long = 0;
        for (int i = 0; i < n; i++) {
            if (node_of[i] < 0) continue;
            int d = 0;
            for (int x = node_of[i]; x != total - 1; x = parent[x]) d++;
            lens[i] = d;
            if (d > max_bits) too_long = 1;
        }
        if (!too_long) break;
        for (int i = 0; i < n; i++)
            if (f[i] > 0) f[i] = (f[i] + 1) / 2;
    }
    long bits = 0;
    for (int i = 0; i < n; i++) bits += freq[i] * lens[i];
    return bits;
}

/* Bits to transmit the code lengths of a dynamic block (HLIT, HDIST,
 * HCLEN and the run-length coded lengths). */
static long dyn_header_bits(const int *ll_lens, int n_ll, const int *d_lens, int n_d)
{
    int all[286 + 30], n = 0;
    for (int i = 0; i < n_ll; i++) all[n++] = ll_lens[i];
    for (int i = 0; i < n_d; i++) all[n++] = d_lens[i];
    long cl_freq[19] = {0};
    long extra = 0;
    for (int i = 0; i < n;) {
        int v = all[i], run = 1;
        while (i + run < n && all[i + run] == v) run++;
        int left = run;
        if (v == 0) {
            while (left >= 11) {
                int r = left > 138 ? 138 : left;
                cl_freq[18]++;
                extra += 7;
                left -= r;
            }
            if (left >= 3) {
                cl_freq[17]++;
                extra += 3;
                left = 0;
            }
        } else {
            cl_freq[v]++;
            left--;
            while (left >= 3) {
                int r = left > 6 ? 6 : left;
                cl_freq[16]++;
                extra += 2;
                left -= r;
            }
        }
        cl_freq[v] += left;
        i += run;
    }
    int cl_lens[19];
    long bits = huffman_bits(cl_freq, 19, 7, cl_lens);
    static const int order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
    int hclen = 19;
    while (hclen > 4 && cl_lens[order[hclen - 1]] == 0) hclen--;
    return 5 + 5 + 4 + 3L * hclen + bits + extra;
}

size_t decode_deflate_size(const unsigned char *data, size_t n)
{
    long ll_freq[286] = {0}, d_freq[30] = {0};
    long extra_bits = 0;
    size_t i = 0;
    /* LZ77 with a full search of the 32 KiB window (texts here are short)
     * and one step of lazy matching, as zlib's levels 4-9 do. */
    while (i < n) {
        int best_len = 0, best_dist = 0;
        size_t lo = i > 32768 ? i - 32768 : 0;
        for (size_t j = i; j-- > lo;) {
            int l = 0;
            while (l < 258 && i + l < n && data[j + l] == data[i + l]) l++;
            if (l > best_len) {
                best_len = l;
                best_dist = (int)(i - j);
                if (l == 258) break;
            }
        }
        if (best_len >= 3 && best_len < 32 && i + 1 < n) {
            int next_len = 0;
            size_t lo2 = i + 1 > 32768 ? i + 1 - 32768 : 0;
            for (size_t j = i + 1; j-- > lo2;) {
                int l = 0;
                while (l < 258 && i + 1 + l < n && data[j + l] == data[i + 1 + l]) l++;
                if (l > next_len) next_len = l;
            }
            if (next_len > best_len) best_len = 0;
        }
        if (best_len >= 3 && !(best_len == 3 && best_dist > 4096)) {
            int lc = len_code(best_len), dc = dist_code(best_dist);
            ll_freq[257 + lc]++;
            d_freq[dc]++;
            extra_bits += len_extra[lc] + dist_extra[dc];
            i += (size_t)best_len;
        } else {
            ll_freq[data[i]]++;
            i++;
        }
    }
    ll_freq[256]++;

    long fixed = extra_bits;
    for (int s = 0; s < 286; s++) {
        int fl = s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8;
        fixed += ll_freq[s] * fl;
    }
    for (int s = 0; s < 30; s++) fixed += d_freq[s] * 5;

    int ll_lens[286], d_lens[30];
    long dyn = huffman_bits(ll_freq, 286, 15, ll_lens) + huffman_bits(d_freq, 30, 15, d_lens) +
               extra_bits;
    int n_ll = 286, n_d = 30;
    while (n_ll > 257 && ll_lens[n_ll - 1] == 0) n_ll--;
    while (n_d > 1 && d_lens[n_d - 1] == 0) n_d--;
    dyn += dyn_header_bits(ll_lens, n_ll, d_lens, n_d);

    long bits = 3 + (fixed < dyn ? fixed : dyn);
    size_t bytes = (size_t)((bits + 7) / 8);
    size_t stored = n + 5 * (n / 65535 + 1);
    if (stored < bytes) bytes = stored;
    return bytes + 6;
}

float decode_compression_ratio(const char *text, size_t n)
{
    if (n == 0) return 0.0f;
    return (float)((double)n / (double)decode_deflate_size((const unsigned char *)text, n));
}

/*
 * test_tokenizer.c: special token ids and names, the language table, the
 * pre-tokenizer's splits (expected pieces written out by hand from the
 * regex), rank-ordered merging on a tiny hand-made vocabulary, and round
 * trips (ids -> bytes -> the input) with the real GPT-2 and multilingual
 * vocabularies of the shared models.
 */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hark.h"
#include "model.h"
#include "testing.h"
#include "tokenizer.h"

/* ------------------------------------------------------------ specials */

static void test_special_ids(void)
{
    /* reference/README.md section 4.2. */
    struct tok_special sp;
    tok_special_init(&sp, 51864);
    CHECK(!sp.multilingual && sp.n_lang == 99);
    CHECK(sp.eot == 50256 && sp.sot == 50257 && sp.lang0 == 50258);
    CHECK(sp.translate == 50357 && sp.transcribe == 50358 && sp.solm == 50359);
    CHECK(sp.prev == 50360 && sp.nosp == 50361 && sp.notimestamps == 50362 && sp.beg == 50363);
    CHECK(sp.beg + 1500 == 51864 - 1);

    tok_special_init(&sp, 51865);
    CHECK(sp.multilingual && sp.n_lang == 99);
    CHECK(sp.eot == 50257 && sp.sot == 50258 && sp.lang0 == 50259);
    CHECK(sp.translate == 50358 && sp.transcribe == 50359 && sp.solm == 50360);
    CHECK(sp.prev == 50361 && sp.nosp == 50362 && sp.notimestamps == 50363 && sp.beg == 50364);
    CHECK(sp.beg + 1500 == 51865 - 1);

    tok_special_init(&sp, 51866);
    CHECK(sp.multilingual && sp.n_lang == 100);
    CHECK(sp.eot == 50257 && sp.sot == 50258 && sp.lang0 == 50259);
    CHECK(sp.translate == 50359 && sp.transcribe == 50360 && sp.solm == 50361);
    CHECK(sp.prev == 50362 && sp.nosp == 50363 && sp.notimestamps == 50364 && sp.beg == 50365);
    CHECK(sp.beg + 1500 == 51866 - 1);
}

/* A model with a tiny stored vocabulary: the 256 single bytes (id = byte)
 * and the given multi-byte tokens from id 256 on. */
struct fake {
    struct hark_model m;
    const uint8_t *bytes[300];
    uint32_t len[300];
    uint8_t single[256];
};

static void fake_init(struct fake *f, int32_t n_vocab, const char *const *extra, int n_extra,
                      int drop_byte)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < 256; i++) {
        f->single[i] = (uint8_t)i;
        f->bytes[i] = &f->single[i];
        f->len[i] = i == drop_byte ? 0 : 1;
    }
    for (int i = 0; i < n_extra; i++) {
        f->bytes[256 + i] = (const uint8_t *)extra[i];
        f->len[256 + i] = (uint32_t)strlen(extra[i]);
    }
    f->m.hp.n_vocab = n_vocab;
    f->m.n_vocab_stored = 256 + n_extra;
    f->m.vocab_bytes = f->bytes;
    f->m.vocab_len = f->len;
    f->m.tok = tok_index_new(&f->m);
    CHECK(f->m.tok != NULL);
}

static void check_name(const struct hark_model *m, int32_t id, const char *want)
{
    char buf[32];
    size_t len = 99;
    const char *b = tok_bytes(m, id, buf, &len);
    CHECKF(len == strlen(want) && !memcmp(b, want, len), "id %d: '%.*s', want '%s'", id,
           (int)len, b, want);
}

static void test_special_names(void)
{
    struct fake f;
    const int32_t sizes[3] = {51864, 51865, 51866};
    for (int i = 0; i < 3; i++) {
        struct tok_special sp;
        fake_init(&f, sizes[i], NULL, 0, -1);
        tok_special_init(&sp, sizes[i]);
        check_name(&f.m, sp.eot, "<|endoftext|>");
        check_name(&f.m, sp.sot, "<|startoftranscript|>");
        check_name(&f.m, sp.lang0, "<|en|>");
        check_name(&f.m, sp.lang0 + 1, "<|zh|>");
        check_name(&f.m, sp.lang0 + 98, "<|su|>");
        check_name(&f.m, sp.translate, "<|translate|>");
        check_name(&f.m, sp.transcribe, "<|transcribe|>");
        check_name(&f.m, sp.solm, "<|startoflm|>");
        check_name(&f.m, sp.prev, "<|startofprev|>");
        check_name(&f.m, sp.nosp, "<|nospeech|>");
        check_name(&f.m, sp.notimestamps, "<|notimestamps|>");
        check_name(&f.m, sp.beg, "<|0.00|>");
        check_name(&f.m, sp.beg + 1, "<|0.02|>");
        check_name(&f.m, sp.beg + 50, "<|1.00|>");
        check_name(&f.m, sp.beg + 75, "<|1.50|>");
        check_name(&f.m, sp.beg + 1499, "<|29.98|>");
        check_name(&f.m, sp.beg + 1500, "<|30.00|>");
        check_name(&f.m, sizes[i], "");
        check_name(&f.m, -1, "");
        check_name(&f.m, 'A', "A");
        for (int l = 0; l < sp.n_lang; l++) {
            char want[16];
            snprintf(want, sizeof want, "<|%s|>", hark_lang_code(l));
            check_name(&f.m, sp.lang0 + l, want);
        }
        CHECK(hark_lang_count(&f.m) == (sizes[i] == 51866 ? 100 : 99));
        if (sizes[i] == 51866)
            check_name(&f.m, 50358, "<|yue|>");
        tok_index_free(f.m.tok);
    }
}

static void test_languages(void)
{
    CHECK(!strcmp(hark_lang_code(0), "en") && !strcmp(hark_lang_name(0), "english"));
    CHECK(!strcmp(hark_lang_code(1), "zh") && !strcmp(hark_lang_name(1), "chinese"));
    CHECK(!strcmp(hark_lang_code(20), "he"));
    CHECK(!strcmp(hark_lang_code(98), "su") && !strcmp(hark_lang_name(98), "sundanese"));
    CHECK(!strcmp(hark_lang_code(99), "yue") && !strcmp(hark_lang_name(99), "cantonese"));
    CHECK(hark_lang_code(100) == NULL && hark_lang_name(-1) == NULL);
    CHECK(hark_lang_index("en") == 0);
    CHECK(hark_lang_index("English") == 0);
    CHECK(hark_lang_index("de") == 2 && hark_lang_index("german") == 2);
    CHECK(hark_lang_index("haw") == 93 && hark_lang_index("hawaiian") == 93);
    CHECK(hark_lang_index("yue") == 99 && hark_lang_index("cantonese") == 99);
    CHECK(hark_lang_index("haitian creole") == hark_lang_index("ht"));
    CHECK(hark_lang_index("castilian") == hark_lang_index("es"));
    CHECK(hark_lang_index("mandarin") == 1);
    CHECK(hark_lang_index("xx") == -1 && hark_lang_index("") == -1 && hark_lang_index(NULL) == -1);
    /* Every code and name maps back to its index, and codes are unique. */
    for (int i = 0; i < 100; i++) {
        CHECKF(hark_lang_index(hark_lang_code(i)) == i, "code %s", hark_lang_code(i));
        CHECKF(hark_lang_index(hark_lang_name(i)) == i, "name %s", hark_lang_name(i));
    }
}

/* ------------------------------------------------------ pre-tokenizer */

/* Splits text (len bytes) and compares the pieces with want, a list of
 * pieces separated by '|' (no piece in these cases contains '|'). */
static void check_split(const char *text, size_t len, const char *want)
{
    char got[512];
    size_t g = 0;
    for (size_t i = 0; i < len;) {
        size_t j = tok_split(text, len, i);
        if (j <= i || j > len) {
            CHECKF(0, "split of '%s' stuck at %zu", text, i);
            return;
        }
        if (i > 0)
            got[g++] = '|';
        memcpy(got + g, text + i, j - i);
        g += j - i;
        i = j;
    }
    got[g] = '\0';
    CHECKF(!strcmp(got, want), "split '%s': got '%s', want '%s'", text, got, want);
}

#define SPLIT(text, want) check_split(text, sizeof(text) - 1, want)

static void test_split(void)
{
    SPLIT("Hello world", "Hello| world");
    SPLIT(" Hello", " Hello");
    SPLIT("It's a dog's", "It|'s| a| dog|'s");
    SPLIT("we'll they'd I'm you're we've can't", "we|'ll| they|'d| I|'m| you|'re| we|'ve| can|'t");
    SPLIT("'S", "'|S"); /* contractions are lower-case only */
    SPLIT("'''s", "'''|s");
    SPLIT("a   b", "a|  | b");
    SPLIT("a \n", "a| \n");
    SPLIT("x\t\ty", "x|\t|\t|y");
    SPLIT("x  ", "x|  ");
    SPLIT(" ", " ");
    SPLIT("\n\nHi", "\n|\n|Hi");
    SPLIT(" 123abc", " 123|abc");
    SPLIT("3.14159", "3|.|14159");
    SPLIT("1,000", "1|,|000");
    SPLIT("?!? (x)", "?!?| (|x|)");
    SPLIT("a.b@c.com", "a|.|b|@|c|.|com");
    SPLIT("Gr\xc3\xb6\xc3\x9f" "e \xc3\xbc" "ber", "Gr\xc3\xb6\xc3\x9f" "e| \xc3\xbc" "ber");
    /* Hiragana and Katakana are letters (Lo). */
    SPLIT("\xe6\x97\xa5\xe6\x9c\xac\xe3\x81\xae\xe3\x83\x86", "\xe6\x97\xa5\xe6\x9c\xac\xe3\x81\xae\xe3\x83\x86");
    /* Emoji are neither letters nor numbers. */
    SPLIT("hi \xf0\x9f\x98\x80\xf0\x9f\x91\x8d!", "hi| \xf0\x9f\x98\x80\xf0\x9f\x91\x8d!");
    /* U+00B2 SUPERSCRIPT TWO (No) and U+216B ROMAN NUMERAL TWELVE (Nl) are numbers. */
    SPLIT("x\xc2\xb2 \xe2\x85\xab", "x|\xc2\xb2| \xe2\x85\xab");
    /* U+00A0 NO-BREAK SPACE is White_Space but not the optional ' '. */
    SPLIT("a\xc2\xa0" "b", "a|\xc2\xa0|b");
    SPLIT("a\xc2\xa0\xc2\xa0" "b", "a|\xc2\xa0|\xc2\xa0|b");
    /* U+3000 IDEOGRAPHIC SPACE at the end: one whitespace run. */
    SPLIT("a \xe3\x80\x80", "a| \xe3\x80\x80");
    /* Invalid UTF-8 bytes (a lone continuation byte, 0xff, a truncated
     * sequence, an overlong '/', a surrogate) are "other" characters. */
    SPLIT("a\x80\xff" "b", "a|\x80\xff|b");
    SPLIT("a \xe6\x97", "a| \xe6\x97");
    SPLIT("x\xc0\xaf" "y", "x|\xc0\xaf|y");
    SPLIT("x\xed\xa0\x80" "y", "x|\xed\xa0\x80|y");
}

/* ------------------------------------------------------------ merging */

static int encode(const struct hark_model *m, const char *s, int32_t *ids, int max)
{
    return tok_encode(m, s, strlen(s), ids, max);
}

static void test_merge_order(void)
{
    /* Ranks: cd 256 < ab 257 < bc 258 < bcd 259 < abc 260. */
    static const char *const extra[] = {"cd", "ab", "bc", "bcd", "abc", "aa", "xyz"};
    struct fake f;
    int32_t ids[16];
    fake_init(&f, 51864, extra, 7, -1);

    /* "abcd" merges cd (256) first, then ab (257): ab|cd. Longest-prefix
     * matching would give abc|d, and merging bc first a|bcd. */
    CHECK(encode(&f.m, "abcd", ids, 16) == 2 && ids[0] == 257 && ids[1] == 256);
    /* Equal ranks merge leftmost: aa|a, not a|aa. */
    CHECK(encode(&f.m, "aaa", ids, 16) == 2 && ids[0] == 261 && ids[1] == 'a');
    CHECK(encode(&f.m, "aaaa", ids, 16) == 2 && ids[0] == 261 && ids[1] == 261);
    /* A whole piece that is a token is taken even without a merge path
     * (neither "xy" nor "yz" is a token). */
    CHECK(encode(&f.m, "xyz", ids, 16) == 1 && ids[0] == 262);
    /* Pieces are merged separately: "ab" and " cd" (space, then cd). */
    CHECK(encode(&f.m, "ab cd", ids, 16) == 3 && ids[0] == 257 && ids[1] == ' ' && ids[2] == 256);
    /* max_ids: the full count is returned, only max_ids ids are written. */
    ids[1] = -7;
    CHECK(encode(&f.m, "abcd", ids, 1) == 2 && ids[0] == 257 && ids[1] == -7);
    CHECK(tok_encode(&f.m, "abcd", 4, NULL, 0) == 2);
    CHECK(tok_encode(&f.m, "", 0, ids, 16) == 0);
    CHECK(tok_encode(&f.m, NULL, 0, NULL, 0) == 0);
    CHECK(tok_encode(&f.m, NULL, 3, ids, 16) == HARK_EINVAL);
    CHECK(tok_encode(NULL, "a", 1, ids, 16) == HARK_EINVAL);
    CHECK(tok_encode(&f.m, "a", 1, NULL, 4) == HARK_EINVAL);
    tok_index_free(f.m.tok);

    /* A vocabulary without the byte 'q' cannot encode it. */
    fake_init(&f, 51864, extra, 7, 'q');
    CHECK(encode(&f.m, "aqa", ids, 16) == HARK_EFORMAT);
    CHECK(encode(&f.m, "aba", ids, 16) == 2);
    tok_index_free(f.m.tok);
    tok_index_free(NULL);
}

/* --------------------------------------------------- real vocabularies */

/* Encodes s, checks the ids' bytes concatenate back to s and no id is a
 * special token; returns the id count. */
static int round_trip(const hark_model *m, const char *s, size_t len, int32_t *ids, int max)
{
    struct tok_special sp;
    tok_special_init(&sp, m->hp.n_vocab);
    int n = tok_encode(m, s, len, ids, max);
    CHECKF(n >= 0 && n <= max, "tok_encode: %d", n);
    if (n < 0 || n > max)
        return -1;
    char *back = malloc(len + 1);
    size_t off = 0;
    int ok = back != NULL;
    for (int i = 0; ok && i < n; i++) {
        char buf[32];
        size_t l;
        const char *b = tok_bytes(m, ids[i], buf, &l);
        ok = ids[i] >= 0 && ids[i] < sp.eot && l > 0 && off + l <= len;
        if (ok) {
            memcpy(back + off, b, l);
            off += l;
        }
    }
    CHECKF(ok && off == len && !memcmp(back, s, len), "no round trip for '%.*s'", (int)len, s);
    free(back);
    return n;
}

static const char *const samples[] = {
    "",
    " ",
    "Hello world",
    " And so my fellow Americans, ask not what your country can do for you",
    "It's a dog's life; isn't it? We'll see.",
    "Numbers: 1234567890 3.14159 1,000,000",
    "Gr\xc3\xb6\xc3\x9f" "e \xc3\x9c" "berma\xc3\x9f",
    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\xe3\x81\xae\xe3\x83\x86\xe3\x82\xad\xe3\x82\xb9\xe3\x83\x88",
    "\xed\x95\x9c\xea\xb5\xad\xec\x96\xb4",
    "\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82, \xd0\xbc\xd0\xb8\xd1\x80",
    "Emoji: \xf0\x9f\x98\x80\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd\xf0\x9f\x8e\x89 \xe2\x9d\xa4\xef\xb8\x8f",
    "line one\nline two\r\n\ttab  ",
    "Text with <|endoftext|> inside <|startoftranscript|>",
    "\x80\xff\xfe invalid \xc0\xaf bytes \xe6\x97",
    "   leading and trailing   ",
    "\xc2\xa0\xe3\x80\x80\xe2\x80\xa8 odd spaces",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    "!!!???...,,,;;;",
};

static void check_vocab(const char *model_name)
{
    hark_model *m = t_load_model(model_name);
    int32_t ids[4096];
    if (!m)
        return;
    for (size_t i = 0; i < sizeof samples / sizeof samples[0]; i++)
        round_trip(m, samples[i], strlen(samples[i]), ids, 4096);
    /* Every single byte on its own, and all 256 together. */
    char all[256];
    for (int b = 0; b < 256; b++) {
        all[b] = (char)b;
        CHECKF(round_trip(m, all + b, 1, ids, 4096) == 1, "byte %d", b);
    }
    round_trip(m, all, 256, ids, 4096);

    /* The text "<|endoftext|>" never becomes the special token. */
    struct tok_special sp;
    tok_special_init(&sp, m->hp.n_vocab);
    int n = encode(m, "<|endoftext|>", ids, 4096);
    CHECK(n > 1);
    for (int i = 0; i < n; i++)
        CHECK(ids[i] != sp.eot && ids[i] != 50256);

    /* A character whose UTF-8 bytes are split across two tokens: the first
     * candidate that encodes into more than one token, whose first token is a
     * proper prefix of the character. */
    static const char *const chars[] = {
        "\xe5\xae\x87", "\xf0\x9f\x98\x80", "\xf0\x9f\x8e\x89", "\xe9\xbe\x98",
        "\xf0\x9f\xa6\x84", "\xe7\x8c\xab", "\xf0\x9f\x90\xa2",
    };
    int found = 0;
    for (size_t c = 0; c < sizeof chars / sizeof chars[0] && !found; c++) {
        size_t len = strlen(chars[c]);
        n = round_trip(m, chars[c], len, ids, 4096);
        if (n >= 2) {
            char buf[32];
            size_t l;
            const char *b = tok_bytes(m, ids[0], buf, &l);
            CHECK(l >= 1 && l < len && !memcmp(b, chars[c], l));
            printf("  %s: character %zu (%zu bytes) splits into %d tokens, first %d (%zu bytes)\n",
                   model_name, c, len, n, ids[0], l);
            found = 1;
        }
    }
    CHECKF(found, "%s: no split character found", model_name);

    /* A long run: one piece of 200,000 letters encodes and round-trips. */
    size_t big = 200000;
    char *s = malloc(big);
    int32_t *many = malloc(big * sizeof *many);
    CHECK(s && many);
    if (s && many) {
        for (size_t i = 0; i < big; i++)
            s[i] = "abcab"[i % 5];
        n = round_trip(m, s, big, many, (int)big);
        CHECK(n > 0);
        printf("  %s: %zu letters -> %d tokens\n", model_name, big, n);
    }
    free(s);
    free(many);
    hark_model_free(m);
}

static void test_round_trip_gpt2(void) { check_vocab("rt-mini.en-f16.bin"); }
static void test_round_trip_multilingual(void) { check_vocab("rt-mini-f16.bin"); }

int main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("tok_special_ids", test_special_ids);
    t_run("tok_special_names", test_special_names);
    t_run("tok_languages", test_languages);
    t_run("tok_split", test_split);
    t_run("tok_merge_order", test_merge_order);
    t_run("tok_round_trip_gpt2", test_round_trip_gpt2);
    t_run("tok_round_trip_multilingual", test_round_trip_multilingual);
    return t_summary();
}

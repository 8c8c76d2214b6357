/*
 * test_tokenizer_ref.c: tok_encode against exact rank-based BPE and the
 * official tiktoken (reference/tokenizer/compare_*.json, README section 13):
 * for every string, the ids must equal `bpe_ids` and `tiktoken_npm_ids`
 * exactly, with the GPT-2 vocabulary of rt-mini.en-f16 and the multilingual
 * vocabulary of rt-mini-f16 and rt-v3-f16. The ids must also decode back to
 * the string's bytes.
 */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "hark.h"
#include "model.h"
#include "tokenizer.h"

static int hex_decode(const char *hex, unsigned char *out, size_t cap, size_t *n)
{
    size_t len = strlen(hex);
    if (len % 2 || len / 2 > cap)
        return -1;
    for (size_t i = 0; i < len / 2; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (unsigned char)v;
    }
    *n = len / 2;
    return 0;
}

static int ids_equal(const int32_t *ids, int n, json_t *arr)
{
    if (!json_is_array(arr) || (int)json_array_size(arr) != n)
        return 0;
    for (int i = 0; i < n; i++)
        if (json_integer_value(json_array_get(arr, i)) != ids[i])
            return 0;
    return 1;
}

static void check_vocab(const char *model_name, const char *json_name)
{
    char err[256];
    int code = 0;
    hark_model *m = hark_model_load(t_shared("models", model_name), &code, err, sizeof err);
    json_error_t jerr;
    json_t *root = json_load_file(t_shared("reference", json_name), 0, &jerr);
    int n_match = 0, n_strings = 0;

    CHECKF(m != NULL, "load %s: %s", model_name, err);
    CHECKF(root != NULL, "%s: %s", json_name, jerr.text);
    if (!m || !root || !json_is_array(root))
        goto done;

    size_t k;
    json_t *item;
    json_array_foreach(root, k, item) {
        unsigned char text[4096], back[8192];
        int32_t ids[1024];
        size_t n_text = 0, n_back = 0;
        const char *hex = json_string_value(json_object_get(item, "text_utf8_hex"));

        n_strings++;
        CHECKF(hex && hex_decode(hex, text, sizeof text, &n_text) == 0, "string %zu: bad hex", k);
        if (!hex)
            continue;
        int n = tok_encode(m, (const char *)text, n_text, ids, 1024);
        CHECKF(n >= 0 && n <= 1024, "string %zu: tok_encode %d", k, n);
        if (n < 0 || n > 1024)
            continue;
        int ok_bpe = ids_equal(ids, n, json_object_get(item, "bpe_ids"));
        int ok_tt = ids_equal(ids, n, json_object_get(item, "tiktoken_npm_ids"));
        CHECKF(ok_bpe, "%s string %zu (%s): ids differ from bpe_ids", model_name, k, hex);
        CHECKF(ok_tt, "%s string %zu (%s): ids differ from tiktoken_npm_ids", model_name, k, hex);
        if (!ok_bpe) {
            printf("  ours:");
            for (int i = 0; i < n; i++)
                printf(" %d", ids[i]);
            printf("\n");
        }
        n_match += ok_bpe && ok_tt;

        for (int i = 0; i < n; i++) {
            char buf[32];
            size_t len;
            const char *b = tok_bytes(m, ids[i], buf, &len);
            if (n_back + len <= sizeof back)
                memcpy(back + n_back, b, len);
            n_back += len;
        }
        CHECKF(n_back == n_text && !memcmp(back, text, n_text), "string %zu: no round trip", k);
    }
    printf("  %s with %s: %d of %d strings match bpe_ids and tiktoken\n", json_name, model_name,
           n_match, n_strings);
    CHECK(n_strings >= 23);

done:
    json_decref(root);
    hark_model_free(m);
}

static void test_gpt2(void) { check_vocab("rt-mini.en-f16.bin", "tokenizer/compare_gpt2.json"); }

static void test_multilingual(void)
{
    check_vocab("rt-mini-f16.bin", "tokenizer/compare_multilingual.json");
}

static void test_v3(void) { check_vocab("rt-v3-f16.bin", "tokenizer/compare_multilingual.json"); }

int main(int argc, char **argv)
{
    t_init(argc, argv);
    t_run("tokenizer_ref_gpt2", test_gpt2);
    t_run("tokenizer_ref_multilingual", test_multilingual);
    t_run("tokenizer_ref_v3", test_v3);
    return t_summary();
}

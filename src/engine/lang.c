/*
 * lang.c: Whisper's language table, in the order of openai-whisper's
 * tokenizer.py LANGUAGES (the order of the language tokens: index i is token
 * sot + 1 + i). The 100th entry, Cantonese, exists only in large-v3
 * vocabularies (n_vocab >= 51866). Lookups also accept the alternative
 * names of tokenizer.py's TO_LANGUAGE_CODE ("castilian", "mandarin", ...),
 * and ignore case. hark_lang_count(NULL) gives the whole table (100).
 */
#include <stddef.h>
#include <strings.h>

#include "hark.h"
#include "model.h"

#define N_LANG 100
#define N_LANG_V3_VOCAB 51866

static const char *const lang_codes[N_LANG] = {
    "en", "zh", "de", "es", "ru", "ko", "fr", "ja", "pt", "tr",
    "pl", "ca", "nl", "ar", "sv", "it", "id", "hi", "fi", "vi",
    "he", "uk", "el", "ms", "cs", "ro", "da", "hu", "ta", "no",
    "th", "ur", "hr", "bg", "lt", "la", "mi", "ml", "cy", "sk",
    "te", "fa", "lv", "bn", "sr", "az", "sl", "kn", "et", "mk",
    "br", "eu", "is", "hy", "ne", "mn", "bs", "kk", "sq", "sw",
    "gl", "mr", "pa", "si", "km", "sn", "yo", "so", "af", "oc",
    "ka", "be", "tg", "sd", "gu", "am", "yi", "lo", "uz", "fo",
    "ht", "ps", "tk", "nn", "mt", "sa", "lb", "my", "bo", "tl",
    "mg", "as", "tt", "haw", "ln", "ha", "ba", "jw", "su", "yue",
};

static const char *const lang_names[N_LANG] = {
    "english", "chinese", "german", "spanish", "russian",
    "korean", "french", "japanese", "portuguese", "turkish",
    "polish", "catalan", "dutch", "arabic", "swedish",
    "italian", "indonesian", "hindi", "finnish", "vietnamese",
    "hebrew", "ukrainian", "greek", "malay", "czech",
    "romanian", "danish", "hungarian", "tamil", "norwegian",
    "thai", "urdu", "croatian", "bulgarian", "lithuanian",
    "latin", "maori", "malayalam", "welsh", "slovak",
    "telugu", "persian", "latvian", "bengali", "serbian",
    "azerbaijani", "slovenian", "kannada", "estonian", "macedonian",
    "breton", "basque", "icelandic", "armenian", "nepali",
    "mongolian", "bosnian", "kazakh", "albanian", "swahili",
    "galician", "marathi", "punjabi", "sinhala", "khmer",
    "shona", "yoruba", "somali", "afrikaans", "occitan",
    "georgian", "belarusian", "tajik", "sindhi", "gujarati",
    "amharic", "yiddish", "lao", "uzbek", "faroese",
    "haitian creole", "pashto", "turkmen", "nynorsk", "maltese",
    "sanskrit", "luxembourgish", "myanmar", "tibetan", "tagalog",
    "malagasy", "assamese", "tatar", "hawaiian", "lingala",
    "hausa", "bashkir", "javanese", "sundanese", "cantonese",
};

/* tokenizer.py's TO_LANGUAGE_CODE aliases: name -> code. */
static const char *const lang_aliases[][2] = {
    {"burmese", "my"},   {"valencian", "ca"}, {"flemish", "nl"},       {"haitian", "ht"},
    {"letzeburgesch", "lb"}, {"pushto", "ps"}, {"panjabi", "pa"},      {"moldavian", "ro"},
    {"moldovan", "ro"},  {"sinhalese", "si"}, {"castilian", "es"},     {"mandarin", "zh"},
};

int hark_lang_count(const hark_model *model)
{
    if (model && model->hp.n_vocab < N_LANG_V3_VOCAB)
        return N_LANG - 1;
    return N_LANG;
}

const char *hark_lang_code(int index)
{
    return index >= 0 && index < N_LANG ? lang_codes[index] : NULL;
}

const char *hark_lang_name(int index)
{
    return index >= 0 && index < N_LANG ? lang_names[index] : NULL;
}

int hark_lang_index(const char *code_or_name)
{
    if (!code_or_name)
        return -1;
    for (int i = 0; i < N_LANG; i++)
        if (!strcasecmp(code_or_name, lang_codes[i]) || !strcasecmp(code_or_name, lang_names[i]))
            return i;
    for (size_t i = 0; i < sizeof lang_aliases / sizeof lang_aliases[0]; i++)
        if (!strcasecmp(code_or_name, lang_aliases[i][0]))
            return hark_lang_index(lang_aliases[i][1]);
    return -1;
}

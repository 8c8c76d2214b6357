/*
 * download.h: fetching whisper.cpp ggml model files over HTTP(S) into a
 * models folder (download.c), for `hark models download`.
 *
 * A model NAME ("base.en", "large-v3-turbo-q5_0") is fetched from
 * <base_url>/ggml-NAME.bin into <dir>/.ggml-NAME.bin.part, resumed with a
 * Range request when that partial file exists, checked by loading it as a
 * model (a speech-detection model for the silero names), and renamed to
 * <dir>/ggml-NAME.bin.
 */
#ifndef HARK_CLI_DOWNLOAD_H
#define HARK_CLI_DOWNLOAD_H

#include <stddef.h>

/* Where whisper.cpp's converted models are published, and its Silero VAD
 * models (names "silero-v6.2.0", "silero-v5.1.2"). */
#define MODELS_DEFAULT_URL "https://huggingface.co/ggerganov/whisper.cpp/resolve/main"
#define MODELS_VAD_URL "https://huggingface.co/ggml-org/whisper-vad/resolve/main"

/* What models_download prints on stderr: nothing, one summary line when the
 * file is in place, or a progress line redrawn in place (for a terminal)
 * followed by the summary line. */
enum models_report { MODELS_REPORT_QUIET = 0, MODELS_REPORT_SUMMARY = 1, MODELS_REPORT_PROGRESS = 2 };

/* models_download's answer when <dir>/ggml-NAME.bin already exists and force
 * is 0: nothing was fetched. */
#define MODELS_PRESENT 1

/* 0 if name can be a model name: letters, digits, '.', '-' and '_', at most
 * 128 bytes, not starting with '.' or '-'. Otherwise HARK_EINVAL. */
int models_name_check(const char *name);

/* Downloads model `name` from base_url (no trailing '/' needed) into dir,
 * which is created (with its parents) if missing. Returns 0 when the model
 * is in place, MODELS_PRESENT when it was already there (and force is 0),
 * or a negative HARK_E* code with a one-line reason in err:
 *   HARK_EINVAL     a bad name or URL;
 *   HARK_ENOENT     the server has no such file (HTTP 404); nothing is left;
 *   HARK_EIO        a network, HTTP or file error; a partial download is
 *                   kept in the .part file for the next call to resume;
 *   HARK_EFORMAT    the file is not a valid model; nothing is left;
 *   HARK_ECANCELED  models_download_set_canceled(1) was called; the .part
 *                   file is kept.
 * report is an enum models_report. Not thread-safe: one download at a time
 * per process. */
int models_download(const char *base_url, const char *dir, const char *name, int force, int report,
                    char *err, size_t errlen);

/* Sets (1) or clears (0) the process-wide cancel flag that makes a running
 * models_download stop with HARK_ECANCELED. Async-signal-safe: a SIGINT
 * handler calls it. */
void models_download_set_canceled(int canceled);

#endif

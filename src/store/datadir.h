/*
 * datadir.h: the data folder, and the only code that knows its layout.
 *
 *   <data>/tmp/up-XXXXXX                    an upload while it arrives
 *   <data>/db/<id>/<name>                   an upload's media, under its cleaned name
 *   <data>/db/<id>/results.<ext>            its results, one file per stored format
 *   <data>/db/<id>/.results.<ext>.<tag>.tmp results being written by one claim of a job
 *   <data>/hark.db                          the SQLite database, unless another is named
 *
 * An upload's row is written only after its folder holds the media, and
 * removed before its folder is, so a crash leaves at worst a folder without
 * a row or a temporary file: datadir_sweep clears both at start-up. A job's
 * results are written under temporary names, then renamed into place one by
 * one, so readers see either the old set or the new one and a failed run
 * leaves no part of a set. Names starting with '.' are never served, and
 * nothing here follows a symbolic link out of an upload's folder.
 *
 * Functions return 0 or a HARK_E* code; those with err fill it with a
 * sentence for the operator's log (naming the path), except
 * datadir_upload_adopt's, which a client may read.
 */
#ifndef HARK_STORE_DATADIR_H
#define HARK_STORE_DATADIR_H

#include <stddef.h>

#include "hark.h"

struct store;

/* Room for any path this module makes from a data folder path. */
#define DATADIR_PATH_MAX 4608

/* Makes the data folder and its tmp/ and db/ (hark serve). HARK_EIO when
 * one cannot be made or is not a folder. */
int datadir_make(const char *data, char *err, size_t errlen);

/* Checks that the data folder exists without making it (hark worker: a
 * shared folder that is not mounted must not look like an empty one). */
int datadir_check(const char *data, char *err, size_t errlen);

/* The SQLite database's default path. */
void datadir_database(const char *data, char *out, size_t len);

/* The mkostemp() template for an upload while it arrives. */
void datadir_upload_template(const char *data, char *out, size_t len);

/* The name an uploaded file is stored under: its base name with bytes
 * outside [A-Za-z0-9._-] replaced by '_', leading dots dropped, at most 200
 * bytes, "media" when nothing is left, and "media-" before a name that could
 * be taken for a result file. */
void datadir_clean_name(const char *client_name, char *out, size_t len);

/* Moves a received file (tmp_path) into the new folder of upload id as
 * name. On failure nothing is left but the temporary file. */
int datadir_upload_adopt(const char *data, const char *id, const char *name, const char *tmp_path,
                         char *err, size_t errlen);

/* Removes an upload's folder and every file in it; missing is fine. */
void datadir_upload_remove(const char *data, const char *id);

/* The path of a file in an upload's folder. HARK_EINVAL when too long. */
int datadir_upload_path(const char *data, const char *id, const char *name, char *out, size_t len);

/* Opens a plain file of an upload's folder for reading, never through a
 * symbolic link and never a name starting with '.'. Returns the descriptor,
 * or -1 (errno set). */
int datadir_upload_open(const char *data, const char *id, const char *name);

/* The name in an upload's folder of the results in stored format f,
 * results.<ext>, into out. */
void datadir_result_name(const struct hark_format_info *f, char *out, size_t len);

/* The stored format a file of an upload's folder holds when its name is
 * results.<ext>, else NULL. */
const struct hark_format_info *datadir_result_format(const char *name);

/* Writes every stored format of r under this claim's temporary names (tag:
 * "<job id>-<attempt>", so that two workers running the same job never
 * write the same file). On failure the temporaries are removed and the
 * files of an earlier run stay as they were. */
int datadir_results_write(const char *data, const char *id, const char *tag, const hark_result *r, char *err,
                          size_t errlen);

/* Renames this claim's temporaries into place. If the first rename fails
 * the earlier set stays; if a later one fails, no result file is left: a
 * set is never a mix of two runs. */
int datadir_results_commit(const char *data, const char *id, const char *tag, char *err, size_t errlen);

/* Removes this claim's temporaries, and with all set the result files too. */
void datadir_results_remove(const char *data, const char *id, const char *tag, int all);

/* Clears what an earlier process left half-done: uploads in flight in
 * tmp/, result files being written, and upload folders whose row was never
 * written or was deleted; only what is at least min_age seconds old, so a
 * folder shared with live processes keeps their work. Returns the number
 * of folders removed. */
int datadir_sweep(struct store *store, const char *data, int min_age);

#endif

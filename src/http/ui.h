/*
 * ui.h: the web page's files, compiled into the binary by tools/embed.c
 * from web/ (the table is generated at build time).
 */
#ifndef HARK_UI_H
#define HARK_UI_H

#include <stddef.h>

struct ui_asset {
    const char *name;          /* base name, e.g. "index.html" */
    const char *content_type;
    const unsigned char *data;
    size_t len;
};

/* Ended by an entry whose name is NULL. */
extern const struct ui_asset ui_assets[];

#endif

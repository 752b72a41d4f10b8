/*
 * file_util.h — files we write must survive a crash whole or not at all:
 * temp file, fsync, rename, fsync the directory (STYLE.md "Memory and ownership").
 * Thread-safe (no shared state).
 */
#ifndef PARLEY_FILE_UTIL_H
#define PARLEY_FILE_UTIL_H

#include <stddef.h>
#include <sys/types.h>
#include "parley/err.h"

/* Atomically replace path with len bytes of data, created with mode (e.g. 0600).
 * PARLEY_ERR_IO on any failure (errno preserved); path is then unchanged. */
PARLEY_WUR enum parley_err file_write_atomic(const char *path, const void *data, size_t len,
                                             mode_t mode);
/* Read a whole file of at most max bytes into a malloc'd buffer (NUL-terminated; free()).
 * PARLEY_ERR_NOTFOUND if absent, PARLEY_ERR_LIMIT if larger than max. */
PARLEY_WUR enum parley_err file_read_all(const char *path, size_t max, unsigned char **out,
                                         size_t *len);
/* mkdir -p with mode for each created component. */
PARLEY_WUR enum parley_err file_mkdirs(const char *path, mode_t mode);

#endif

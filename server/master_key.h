/*
 * master_key.h — the server master key (32 bytes) that wraps per-account data keys and
 * encrypts queued envelopes at rest. Taken from PARLEYD_MASTER_KEY (64 hex chars) when
 * set, else from DATA/master.key, created with mode 0600 on first start.
 * The key lives in sodium_malloc'd memory, read-only once loaded.
 */
#ifndef PARLEY_SERVER_MASTER_KEY_H
#define PARLEY_SERVER_MASTER_KEY_H

#include <stdio.h>
#include "parley/err.h"

#define MASTER_KEY_BYTES 32

/* Load or create the key for data_dir. *out is sodium_malloc'd: release with
 * master_key_free. Errors are explained on err. */
PARLEY_WUR enum parley_err master_key_load(const char *data_dir, FILE *err,
                                           unsigned char **out);
void master_key_free(unsigned char *key);

#endif

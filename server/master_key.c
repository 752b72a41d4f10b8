/* master_key.c — see master_key.h. */
#include "master_key.h"

#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "file_util.h"

enum parley_err master_key_load(const char *data_dir, FILE *err, unsigned char **out)
{
    enum parley_err rc = PARLEY_OK;
    unsigned char *key = sodium_malloc(MASTER_KEY_BYTES);
    unsigned char *file = NULL;
    size_t len = 0;
    if (!key)
        return PARLEY_ERR_NOMEM;
    const char *env = getenv("PARLEYD_MASTER_KEY");
    if (env && *env) {
        size_t bin_len = 0;
        if (strlen(env) != 2 * MASTER_KEY_BYTES ||
            sodium_hex2bin(key, MASTER_KEY_BYTES, env, strlen(env), NULL, &bin_len, NULL) ||
            bin_len != MASTER_KEY_BYTES) {
            fprintf(err, "PARLEYD_MASTER_KEY: expected %d hex characters\n",
                    2 * MASTER_KEY_BYTES);
            rc = PARLEY_ERR_INVAL;
        }
        goto out;
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/master.key", data_dir) >= (int)sizeof path) {
        rc = PARLEY_ERR_LIMIT;
        goto out;
    }
    rc = file_read_all(path, 4096, &file, &len);
    if (rc == PARLEY_ERR_NOTFOUND) {
        randombytes_buf(key, MASTER_KEY_BYTES);
        rc = file_write_atomic(path, key, MASTER_KEY_BYTES, 0600);
        if (rc)
            fprintf(err, "%s: cannot create master key: %s\n", path, strerror(errno));
        goto out;
    }
    if (rc) {
        fprintf(err, "%s: cannot read master key: %s\n", path, strerror(errno));
        goto out;
    }
    struct stat st;
    if (stat(path, &st) == 0 && (st.st_mode & 077)) {
        fprintf(err, "%s: master key is readable by others (mode %03o); chmod 600 it\n", path,
                (unsigned)(st.st_mode & 0777));
        rc = PARLEY_ERR_DENIED;
        goto out;
    }
    if (len != MASTER_KEY_BYTES) {
        fprintf(err, "%s: master key must be exactly %d bytes\n", path, MASTER_KEY_BYTES);
        rc = PARLEY_ERR_INVAL;
        goto out;
    }
    memcpy(key, file, MASTER_KEY_BYTES);
out:
    if (file) {
        sodium_memzero(file, len);
        free(file);
    }
    if (rc) {
        sodium_free(key);
        return rc;
    }
    sodium_mprotect_readonly(key);
    *out = key;
    return PARLEY_OK;
}

void master_key_free(unsigned char *key)
{
    if (key)
        sodium_free(key);
}

/*
 * keystore.c — the per-account data-key store (see keystore.h): one SQLite file with
 * one table, data_keys (user_id, wrapped key, created_at), secure_delete on, WAL,
 * synchronous=FULL. A single connection behind a mutex: key operations are rare
 * (registration, deletion) or short (one point lookup), so a pool is not worth it.
 */
#include "keystore.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

#define WRAP_NONCE crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define WRAP_TAG crypto_aead_xchacha20poly1305_ietf_ABYTES
#define WRAPPED_BYTES (WRAP_NONCE + KEYSTORE_KEY_BYTES + WRAP_TAG)
#define AD_MAX 160
#define FIELD_MAX 1024 /* largest plaintext field we seal (profile fields are <= 256) */

struct keystore {
    sqlite3 *db;
    pthread_mutex_t mu;
    const unsigned char *master_key;
};

static enum parley_err ks_err(struct keystore *ks, int rc, const char *what)
{
    if ((rc & 0xff) == SQLITE_NOMEM)
        return PARLEY_ERR_NOMEM;
    log_event(LOG_ERROR, "keystore_error", "op", what, "sqlite", sqlite3_errstr(rc), "detail",
              ks && ks->db ? sqlite3_errmsg(ks->db) : "", NULL);
    return PARLEY_ERR_STORE;
}

/* "parley-data-key-v1\0" || user_id: the wrap is bound to its account. */
static size_t wrap_ad(const char *user_id, unsigned char *ad)
{
    static const char label[] = "parley-data-key-v1";
    size_t n = sizeof label; /* with the NUL as a separator */
    size_t u = strnlen(user_id, AD_MAX - sizeof label);
    memcpy(ad, label, n);
    memcpy(ad + n, user_id, u);
    return n + u;
}

/* "parley-field-v1\0" || user_id || "\0" || column. */
static size_t field_ad(const char *user_id, const char *column, unsigned char *ad)
{
    static const char label[] = "parley-field-v1";
    size_t n = sizeof label;
    size_t u = strnlen(user_id, 64), c = strnlen(column, 64);
    memcpy(ad, label, n);
    memcpy(ad + n, user_id, u);
    ad[n + u] = 0;
    memcpy(ad + n + u + 1, column, c);
    return n + u + 1 + c;
}

enum parley_err keystore_open(const char *path, const unsigned char *master_key,
                              struct keystore **out)
{
    if (!path || !master_key || !out)
        return PARLEY_ERR_INVAL;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        log_event(LOG_ERROR, "keystore_error", "op", "create", "detail", strerror(errno), NULL);
        return PARLEY_ERR_IO;
    }
    int crc = fchmod(fd, 0600);
    close(fd);
    if (crc != 0)
        return PARLEY_ERR_IO;
    struct keystore *ks = calloc(1, sizeof *ks);
    if (!ks)
        return PARLEY_ERR_NOMEM;
    if (pthread_mutex_init(&ks->mu, NULL) != 0) {
        free(ks);
        return PARLEY_ERR_NOMEM;
    }
    ks->master_key = master_key;
    enum parley_err err = PARLEY_OK;
    int rc = sqlite3_open_v2(path, &ks->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        err = ks_err(ks, rc, "open");
        goto out;
    }
    sqlite3_extended_result_codes(ks->db, 1);
    sqlite3_busy_timeout(ks->db, 10000);
    rc = sqlite3_exec(ks->db,
                      "PRAGMA secure_delete = ON;"
                      "PRAGMA journal_mode = WAL;"
                      "PRAGMA synchronous = FULL;"
                      "PRAGMA trusted_schema = OFF;"
                      "CREATE TABLE IF NOT EXISTS data_keys ("
                      "  user_id TEXT PRIMARY KEY NOT NULL,"
                      "  wrapped BLOB NOT NULL,"
                      "  created_at INTEGER NOT NULL"
                      ") STRICT, WITHOUT ROWID;",
                      NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        err = ks_err(ks, rc, "init");
out:
    if (err) {
        keystore_close(ks);
        return err;
    }
    *out = ks;
    return PARLEY_OK;
}

void keystore_close(struct keystore *ks)
{
    if (!ks)
        return;
    if (ks->db)
        sqlite3_close(ks->db);
    pthread_mutex_destroy(&ks->mu);
    free(ks);
}

enum parley_err keystore_create(struct keystore *ks, const char *user_id, int64_t now,
                                uint8_t key[KEYSTORE_KEY_BYTES])
{
    unsigned char wrapped[WRAPPED_BYTES], ad[AD_MAX];
    sqlite3_stmt *st = NULL;
    enum parley_err err = PARLEY_OK;
    randombytes_buf(key, KEYSTORE_KEY_BYTES);
    randombytes_buf(wrapped, WRAP_NONCE);
    size_t adlen = wrap_ad(user_id, ad);
    crypto_aead_xchacha20poly1305_ietf_encrypt(wrapped + WRAP_NONCE, NULL, key,
                                               KEYSTORE_KEY_BYTES, ad, adlen, NULL, wrapped,
                                               ks->master_key);
    pthread_mutex_lock(&ks->mu);
    int rc = sqlite3_prepare_v2(
        ks->db, "INSERT INTO data_keys (user_id, wrapped, created_at) VALUES (?1, ?2, ?3)", -1,
        &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_blob(st, 2, wrapped, sizeof wrapped, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 3, now);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
        err = PARLEY_ERR_EXISTS;
    else if (rc != SQLITE_DONE)
        err = ks_err(ks, rc, "create");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&ks->mu);
    sodium_memzero(wrapped, sizeof wrapped);
    if (err)
        sodium_memzero(key, KEYSTORE_KEY_BYTES);
    return err;
}

enum parley_err keystore_get(struct keystore *ks, const char *user_id,
                             uint8_t key[KEYSTORE_KEY_BYTES])
{
    unsigned char wrapped[WRAPPED_BYTES], ad[AD_MAX];
    sqlite3_stmt *st = NULL;
    enum parley_err err = PARLEY_OK;
    bool have = false;
    sodium_memzero(key, KEYSTORE_KEY_BYTES);
    pthread_mutex_lock(&ks->mu);
    int rc = sqlite3_prepare_v2(ks->db, "SELECT wrapped FROM data_keys WHERE user_id = ?1", -1,
                                &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) == (int)sizeof wrapped) {
            memcpy(wrapped, sqlite3_column_blob(st, 0), sizeof wrapped);
            have = true;
        } else {
            err = PARLEY_ERR_CRYPTO;
        }
    } else if (rc == SQLITE_DONE) {
        err = PARLEY_ERR_NOTFOUND;
    } else {
        err = ks_err(ks, rc, "get");
    }
    sqlite3_finalize(st);
    pthread_mutex_unlock(&ks->mu);
    if (have) {
        size_t adlen = wrap_ad(user_id, ad);
        if (crypto_aead_xchacha20poly1305_ietf_decrypt(key, NULL, NULL, wrapped + WRAP_NONCE,
                                                       KEYSTORE_KEY_BYTES + WRAP_TAG, ad, adlen,
                                                       wrapped, ks->master_key) != 0) {
            sodium_memzero(key, KEYSTORE_KEY_BYTES);
            err = PARLEY_ERR_CRYPTO;
        }
    }
    sodium_memzero(wrapped, sizeof wrapped);
    return err;
}

enum parley_err keystore_destroy(struct keystore *ks, const char *user_id)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = PARLEY_OK;
    pthread_mutex_lock(&ks->mu);
    int rc = sqlite3_prepare_v2(ks->db, "DELETE FROM data_keys WHERE user_id = ?1", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_text(st, 1, user_id, -1, SQLITE_TRANSIENT);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_DONE)
        err = ks_err(ks, rc, "destroy");
    sqlite3_finalize(st);
    /* Gone from the files too: fold the WAL into the (secure-deleted) file and truncate
     * it. A reader in another process can delay the truncation; then it happens at the
     * next destroy or checkpoint, which is why this result is not an error. */
    if (!err)
        (void)sqlite3_wal_checkpoint_v2(ks->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
    pthread_mutex_unlock(&ks->mu);
    return err;
}

enum parley_err keystore_each_older(struct keystore *ks, int64_t before, keystore_each_fn fn,
                                    void *ctx)
{
    sqlite3_stmt *st = NULL;
    enum parley_err err = PARLEY_OK;
    char (*ids)[65] = NULL;
    size_t n = 0, cap = 0;
    pthread_mutex_lock(&ks->mu);
    int rc = sqlite3_prepare_v2(ks->db, "SELECT user_id FROM data_keys WHERE created_at < ?1", -1,
                                &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_bind_int64(st, 1, before);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            char(*nv)[65] = realloc(ids, ncap * sizeof *nv);
            if (!nv) {
                err = PARLEY_ERR_NOMEM;
                break;
            }
            ids = nv;
            cap = ncap;
        }
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(ids[n++], sizeof ids[0], "%s", t ? (const char *)t : "");
        rc = SQLITE_OK;
    }
    if (!err && rc != SQLITE_DONE)
        err = ks_err(ks, rc, "each");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&ks->mu);
    /* Called without the lock, so fn may call keystore_destroy. */
    for (size_t i = 0; !err && i < n; i++)
        fn(ctx, ids[i]);
    free(ids);
    return err;
}

enum parley_err keystore_seal_field(const uint8_t key[KEYSTORE_KEY_BYTES], const char *user_id,
                                    const char *column, const char *plain, char *out, size_t cap)
{
    unsigned char buf[WRAP_NONCE + FIELD_MAX + WRAP_TAG], ad[AD_MAX];
    size_t n = strlen(plain);
    if (n > FIELD_MAX)
        return PARLEY_ERR_LIMIT;
    size_t total = WRAP_NONCE + n + WRAP_TAG;
    if (cap < sodium_base64_ENCODED_LEN(total, sodium_base64_VARIANT_URLSAFE_NO_PADDING))
        return PARLEY_ERR_LIMIT;
    randombytes_buf(buf, WRAP_NONCE);
    size_t adlen = field_ad(user_id, column, ad);
    crypto_aead_xchacha20poly1305_ietf_encrypt(buf + WRAP_NONCE, NULL, (const unsigned char *)plain,
                                               n, ad, adlen, NULL, buf, key);
    sodium_bin2base64(out, cap, buf, total, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return PARLEY_OK;
}

enum parley_err keystore_open_field(const uint8_t key[KEYSTORE_KEY_BYTES], const char *user_id,
                                    const char *column, const char *text, char *out, size_t cap)
{
    unsigned char buf[WRAP_NONCE + FIELD_MAX + WRAP_TAG], ad[AD_MAX];
    size_t len = 0;
    if (cap > 0)
        out[0] = '\0';
    if (sodium_base642bin(buf, sizeof buf, text, strlen(text), NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        len < WRAP_NONCE + WRAP_TAG)
        return PARLEY_ERR_CRYPTO;
    size_t n = len - WRAP_NONCE - WRAP_TAG;
    if (n + 1 > cap)
        return PARLEY_ERR_LIMIT;
    size_t adlen = field_ad(user_id, column, ad);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)out, NULL, NULL,
                                                   buf + WRAP_NONCE, n + WRAP_TAG, ad, adlen, buf,
                                                   key) != 0) {
        sodium_memzero(out, cap);
        return PARLEY_ERR_CRYPTO;
    }
    out[n] = '\0';
    if (memchr(out, '\0', n)) { /* a NUL inside: never written by us */
        sodium_memzero(out, cap);
        return PARLEY_ERR_CRYPTO;
    }
    return PARLEY_OK;
}

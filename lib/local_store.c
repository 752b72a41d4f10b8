/*
 * local_store.c — the encrypted local store: see local_store.h for the contract.
 *
 * Layout of local.db:
 *   kv(ns, h, v)            h = BLAKE2b-256(hash_key, "kv" || ns || key), v = sealed value
 *   msgs(seq, peer, mid, v) peer = BLAKE2b-256(hash_key, "peer" || peer id),
 *                           mid = BLAKE2b-256(hash_key, "mid" || peer || 0 || msg id)
 * Sealed value = nonce(24) || XChaCha20-Poly1305(enc_key, AD = "plv1" || ns || h).
 * Keys: master (32 bytes: key file, or Argon2id of the passphrase) -> crypto_kdf subkeys
 * 1 (enc_key) and 2 (hash_key), context "parleyls". All key material lives in one
 * sodium_malloc'd block, wiped on close.
 */
#include "local_store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>
#include <sqlite3.h>

#include "file_util.h"

#define KEY_BYTES 32
#define HASH_BYTES 32
#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES
#define SALT_MAGIC "PLSALT01"
#define SALT_FILE_BYTES (8 + crypto_pwhash_SALTBYTES + 8 + 8)
#define CHECK_TEXT "parley-local-store-v1"

struct keys {
    uint8_t enc[KEY_BYTES];
    uint8_t hash[KEY_BYTES];
};

struct local_store {
    sqlite3 *db;
    struct keys *k;  /* sodium_malloc'd */
    unsigned depth; /* open transaction levels: 1 = BEGIN IMMEDIATE, more = savepoints */
};

static enum parley_err path_join(char *out, size_t cap, const char *home, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", home, name);
    return (n < 0 || (size_t)n >= cap) ? PARLEY_ERR_LIMIT : PARLEY_OK;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

/* The master key: from the passphrase (salt file) or the key file; created when the
 * store is new. */
static enum parley_err master_key(const char *home, bool db_exists, uint8_t master[KEY_BYTES])
{
    char kpath[4200], spath[4200];
    enum parley_err rc = path_join(kpath, sizeof kpath, home, LOCAL_STORE_KEY_FILE);
    if (!rc)
        rc = path_join(spath, sizeof spath, home, LOCAL_STORE_SALT_FILE);
    if (rc)
        return rc;
    const char *pass = getenv("PARLEY_PASSPHRASE");
    unsigned char *data = NULL;
    size_t len = 0;

    rc = file_read_all(spath, SALT_FILE_BYTES, &data, &len);
    if (rc == PARLEY_OK) {
        /* Passphrase mode. */
        if (len != SALT_FILE_BYTES || memcmp(data, SALT_MAGIC, 8) != 0) {
            free(data);
            return PARLEY_ERR_STORE;
        }
        if (!pass || !*pass) {
            free(data);
            return PARLEY_ERR_DENIED;
        }
        uint64_t ops = get_u64(data + 8 + crypto_pwhash_SALTBYTES);
        uint64_t mem = get_u64(data + 8 + crypto_pwhash_SALTBYTES + 8);
        if (ops < crypto_pwhash_OPSLIMIT_MIN || ops > crypto_pwhash_OPSLIMIT_SENSITIVE ||
            mem < crypto_pwhash_MEMLIMIT_MIN || mem > crypto_pwhash_MEMLIMIT_SENSITIVE) {
            free(data);
            return PARLEY_ERR_STORE;
        }
        int r = crypto_pwhash(master, KEY_BYTES, pass, strlen(pass), data + 8,
                              (unsigned long long)ops, (size_t)mem, crypto_pwhash_ALG_ARGON2ID13);
        free(data);
        return r == 0 ? PARLEY_OK : PARLEY_ERR_NOMEM;
    }
    if (rc != PARLEY_ERR_NOTFOUND)
        return PARLEY_ERR_STORE;

    rc = file_read_all(kpath, KEY_BYTES, &data, &len);
    if (rc == PARLEY_OK) {
        if (len != KEY_BYTES) {
            sodium_memzero(data, len);
            free(data);
            return PARLEY_ERR_STORE;
        }
        memcpy(master, data, KEY_BYTES);
        sodium_memzero(data, len);
        free(data);
        return PARLEY_OK;
    }
    if (rc != PARLEY_ERR_NOTFOUND)
        return PARLEY_ERR_STORE;
    if (db_exists)
        return PARLEY_ERR_DENIED; /* the store exists but its key is gone */

    /* New store. */
    if (pass && *pass) {
        uint8_t salt[SALT_FILE_BYTES];
        memcpy(salt, SALT_MAGIC, 8);
        randombytes_buf(salt + 8, crypto_pwhash_SALTBYTES);
        uint64_t ops = crypto_pwhash_OPSLIMIT_INTERACTIVE;
        uint64_t mem = crypto_pwhash_MEMLIMIT_INTERACTIVE;
        put_u64(salt + 8 + crypto_pwhash_SALTBYTES, ops);
        put_u64(salt + 8 + crypto_pwhash_SALTBYTES + 8, mem);
        if (crypto_pwhash(master, KEY_BYTES, pass, strlen(pass), salt + 8,
                          (unsigned long long)ops, (size_t)mem, crypto_pwhash_ALG_ARGON2ID13) != 0)
            return PARLEY_ERR_NOMEM;
        return file_write_atomic(spath, salt, sizeof salt, 0600);
    }
    randombytes_buf(master, KEY_BYTES);
    return file_write_atomic(kpath, master, KEY_BYTES, 0600);
}

static void hash_parts(const struct local_store *ls, uint8_t out[HASH_BYTES], const char *label,
                       int ns, const void *a, size_t alen, const void *b, size_t blen)
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, ls->k->hash, KEY_BYTES, HASH_BYTES);
    crypto_generichash_update(&st, (const uint8_t *)label, strlen(label) + 1);
    uint8_t nsb = (uint8_t)ns;
    crypto_generichash_update(&st, &nsb, 1);
    uint8_t l[8];
    put_u64(l, alen);
    crypto_generichash_update(&st, l, 8);
    crypto_generichash_update(&st, a, alen);
    put_u64(l, blen);
    crypto_generichash_update(&st, l, 8);
    if (blen)
        crypto_generichash_update(&st, b, blen);
    crypto_generichash_final(&st, out, HASH_BYTES);
}

static void make_ad(uint8_t ad[4 + 1 + HASH_BYTES], int ns, const uint8_t h[HASH_BYTES])
{
    memcpy(ad, "plv1", 4);
    ad[4] = (uint8_t)ns;
    memcpy(ad + 5, h, HASH_BYTES);
}

/* Seal into a malloc'd buffer nonce || ct. */
static enum parley_err seal(const struct local_store *ls, int ns, const uint8_t h[HASH_BYTES],
                            const void *val, size_t len, uint8_t **out, size_t *out_len)
{
    if (len > LOCAL_STORE_MAX_VALUE)
        return PARLEY_ERR_LIMIT;
    uint8_t ad[4 + 1 + HASH_BYTES];
    make_ad(ad, ns, h);
    size_t n = NONCE_BYTES + len + TAG_BYTES;
    uint8_t *b = malloc(n);
    if (!b)
        return PARLEY_ERR_NOMEM;
    randombytes_buf(b, NONCE_BYTES);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(b + NONCE_BYTES, &clen, val, len, ad, sizeof ad,
                                               NULL, b, ls->k->enc);
    *out = b;
    *out_len = n;
    return PARLEY_OK;
}

static enum parley_err open_sealed(const struct local_store *ls, int ns,
                                   const uint8_t h[HASH_BYTES], const uint8_t *in, size_t len,
                                   uint8_t **out, size_t *out_len)
{
    if (len < NONCE_BYTES + TAG_BYTES)
        return PARLEY_ERR_CRYPTO;
    uint8_t ad[4 + 1 + HASH_BYTES];
    make_ad(ad, ns, h);
    size_t n = len - NONCE_BYTES - TAG_BYTES;
    uint8_t *b = malloc(n + 1);
    if (!b)
        return PARLEY_ERR_NOMEM;
    unsigned long long plen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(b, &plen, NULL, in + NONCE_BYTES,
                                                   len - NONCE_BYTES, ad, sizeof ad, in,
                                                   ls->k->enc) != 0) {
        free(b);
        return PARLEY_ERR_CRYPTO;
    }
    b[n] = 0;
    *out = b;
    *out_len = n;
    return PARLEY_OK;
}

void local_store_value_free(uint8_t *val, size_t len)
{
    if (!val)
        return;
    sodium_memzero(val, len);
    free(val);
}

static enum parley_err exec(struct local_store *ls, const char *sql)
{
    return sqlite3_exec(ls->db, sql, NULL, NULL, NULL) == SQLITE_OK ? PARLEY_OK : PARLEY_ERR_STORE;
}

static const char SCHEMA[] =
    "PRAGMA secure_delete=ON;"
    "PRAGMA foreign_keys=ON;"
    "CREATE TABLE IF NOT EXISTS kv(ns INTEGER NOT NULL, h BLOB NOT NULL, v BLOB NOT NULL,"
    " PRIMARY KEY(ns, h)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS msgs(seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " peer BLOB NOT NULL, mid BLOB NOT NULL UNIQUE, v BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS msgs_peer ON msgs(peer, seq);";

static bool has_rows(struct local_store *ls)
{
    sqlite3_stmt *st = NULL;
    bool any = true; /* on error, assume there is data to protect */
    if (sqlite3_prepare_v2(ls->db,
                           "SELECT EXISTS(SELECT 1 FROM kv) OR EXISTS(SELECT 1 FROM msgs)", -1,
                           &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        any = sqlite3_column_int(st, 0) != 0;
    sqlite3_finalize(st);
    return any;
}

enum parley_err local_store_open(const char *home, struct local_store **out)
{
    if (!home || !out)
        return PARLEY_ERR_INVAL;
    if (sodium_init() < 0)
        return PARLEY_ERR_CRYPTO;
    enum parley_err rc = PARLEY_ERR_NOMEM;
    uint8_t *master = NULL;
    uint8_t *chk = NULL;
    size_t chk_len = 0;
    struct local_store *ls = calloc(1, sizeof *ls);
    if (!ls)
        goto out;
    ls->k = sodium_malloc(sizeof *ls->k);
    master = sodium_malloc(KEY_BYTES);
    if (!ls->k || !master)
        goto out;
    rc = file_mkdirs(home, 0700);
    if (rc) {
        rc = PARLEY_ERR_STORE;
        goto out;
    }
    char dbpath[4200];
    rc = path_join(dbpath, sizeof dbpath, home, LOCAL_STORE_FILE);
    if (rc)
        goto out;
    struct stat st;
    bool exists = stat(dbpath, &st) == 0 && st.st_size > 0;
    rc = master_key(home, exists, master);
    if (rc)
        goto out;
    if (crypto_kdf_derive_from_key(ls->k->enc, KEY_BYTES, 1, "parleyls", master) != 0 ||
        crypto_kdf_derive_from_key(ls->k->hash, KEY_BYTES, 2, "parleyls", master) != 0) {
        rc = PARLEY_ERR_CRYPTO;
        goto out;
    }
    mode_t old = umask(077);
    int r = sqlite3_open_v2(dbpath, &ls->db,
                            SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    umask(old);
    if (r != SQLITE_OK) {
        rc = PARLEY_ERR_STORE;
        goto out;
    }
    sqlite3_busy_timeout(ls->db, 10000);
    rc = exec(ls, SCHEMA);
    if (rc)
        goto out;
    rc = local_store_get(ls, LS_META, "check", &chk, &chk_len);
    if (rc == PARLEY_ERR_NOTFOUND) {
        /* Lookup hashes depend on the key: with a wrong key the check row is simply not
         * found. Only an empty store may get a new one. */
        rc = has_rows(ls) ? PARLEY_ERR_DENIED
                          : local_store_put(ls, LS_META, "check", CHECK_TEXT, strlen(CHECK_TEXT));
    } else if (rc == PARLEY_ERR_CRYPTO) {
        rc = PARLEY_ERR_DENIED; /* wrong key or passphrase */
    } else if (rc == PARLEY_OK &&
               (chk_len != strlen(CHECK_TEXT) || memcmp(chk, CHECK_TEXT, chk_len) != 0)) {
        rc = PARLEY_ERR_DENIED;
    }
    if (rc)
        goto out;
    *out = ls;
    ls = NULL;
out:
    local_store_value_free(chk, chk_len);
    if (master)
        sodium_free(master);
    local_store_close(ls);
    return rc;
}

void local_store_close(struct local_store *ls)
{
    if (!ls)
        return;
    if (ls->db)
        sqlite3_close(ls->db);
    if (ls->k)
        sodium_free(ls->k);
    free(ls);
}

enum parley_err local_store_begin(struct local_store *ls)
{
    if (ls->depth >= 8)
        return PARLEY_ERR_LIMIT;
    char sql[32];
    if (ls->depth == 0)
        snprintf(sql, sizeof sql, "BEGIN IMMEDIATE");
    else
        snprintf(sql, sizeof sql, "SAVEPOINT s%u", ls->depth);
    enum parley_err rc = exec(ls, sql);
    if (!rc)
        ls->depth++;
    return rc;
}

enum parley_err local_store_commit(struct local_store *ls)
{
    if (ls->depth == 0)
        return PARLEY_ERR_INVAL;
    char sql[32];
    if (ls->depth == 1)
        snprintf(sql, sizeof sql, "COMMIT");
    else
        snprintf(sql, sizeof sql, "RELEASE s%u", ls->depth - 1);
    enum parley_err rc = exec(ls, sql);
    if (rc) {
        local_store_rollback(ls); /* this level only */
        return rc;
    }
    ls->depth--;
    return PARLEY_OK;
}

void local_store_rollback(struct local_store *ls)
{
    if (!ls || ls->depth == 0)
        return;
    char sql[48];
    if (ls->depth == 1)
        snprintf(sql, sizeof sql, "ROLLBACK");
    else
        snprintf(sql, sizeof sql, "ROLLBACK TO s%u; RELEASE s%u", ls->depth - 1, ls->depth - 1);
    (void)exec(ls, sql);
    ls->depth--;
}

unsigned local_store_depth(const struct local_store *ls)
{
    return ls->depth;
}

enum parley_err local_store_end(struct local_store *ls, unsigned level, enum parley_err rc)
{
    if (rc == PARLEY_OK && ls->depth == level + 1)
        return local_store_commit(ls);
    while (ls->depth > level)
        local_store_rollback(ls);
    return rc ? rc : PARLEY_ERR_INVAL; /* unbalanced levels: a bug, refuse to commit */
}

static enum parley_err key_ok(const char *key)
{
    if (!key)
        return PARLEY_ERR_INVAL;
    return strlen(key) > LOCAL_STORE_MAX_KEY ? PARLEY_ERR_LIMIT : PARLEY_OK;
}

enum parley_err local_store_put(struct local_store *ls, enum ls_ns ns, const char *key,
                                const void *val, size_t len)
{
    enum parley_err rc = key_ok(key);
    if (rc)
        return rc;
    uint8_t h[HASH_BYTES];
    hash_parts(ls, h, "kv", (int)ns, key, strlen(key), NULL, 0);
    uint8_t *sealed = NULL;
    size_t slen = 0;
    rc = seal(ls, (int)ns, h, val, len, &sealed, &slen);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = PARLEY_ERR_STORE;
    if (sqlite3_prepare_v2(ls->db, "INSERT OR REPLACE INTO kv(ns, h, v) VALUES(?, ?, ?)", -1, &st,
                           NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_int(st, 1, (int)ns);
    sqlite3_bind_blob(st, 2, h, HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_blob(st, 3, sealed, (int)slen, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_DONE)
        rc = PARLEY_OK;
out:
    sqlite3_finalize(st);
    free(sealed);
    return rc;
}

enum parley_err local_store_get(struct local_store *ls, enum ls_ns ns, const char *key,
                                uint8_t **val, size_t *len)
{
    enum parley_err rc = key_ok(key);
    if (rc)
        return rc;
    uint8_t h[HASH_BYTES];
    hash_parts(ls, h, "kv", (int)ns, key, strlen(key), NULL, 0);
    sqlite3_stmt *st = NULL;
    rc = PARLEY_ERR_STORE;
    if (sqlite3_prepare_v2(ls->db, "SELECT v FROM kv WHERE ns = ? AND h = ?", -1, &st, NULL) !=
        SQLITE_OK)
        goto out;
    sqlite3_bind_int(st, 1, (int)ns);
    sqlite3_bind_blob(st, 2, h, HASH_BYTES, SQLITE_STATIC);
    int r = sqlite3_step(st);
    if (r == SQLITE_DONE) {
        rc = PARLEY_ERR_NOTFOUND;
    } else if (r == SQLITE_ROW) {
        rc = open_sealed(ls, (int)ns, h, sqlite3_column_blob(st, 0),
                         (size_t)sqlite3_column_bytes(st, 0), val, len);
    }
out:
    sqlite3_finalize(st);
    return rc;
}

enum parley_err local_store_del(struct local_store *ls, enum ls_ns ns, const char *key)
{
    enum parley_err rc = key_ok(key);
    if (rc)
        return rc;
    uint8_t h[HASH_BYTES];
    hash_parts(ls, h, "kv", (int)ns, key, strlen(key), NULL, 0);
    sqlite3_stmt *st = NULL;
    rc = PARLEY_ERR_STORE;
    if (sqlite3_prepare_v2(ls->db, "DELETE FROM kv WHERE ns = ? AND h = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int(st, 1, (int)ns);
        sqlite3_bind_blob(st, 2, h, HASH_BYTES, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_DONE)
            rc = PARLEY_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

enum parley_err local_store_count(struct local_store *ls, enum ls_ns ns, size_t *out)
{
    sqlite3_stmt *st = NULL;
    enum parley_err rc = PARLEY_ERR_STORE;
    if (sqlite3_prepare_v2(ls->db, "SELECT count(*) FROM kv WHERE ns = ?", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_int(st, 1, (int)ns);
        if (sqlite3_step(st) == SQLITE_ROW) {
            *out = (size_t)sqlite3_column_int64(st, 0);
            rc = PARLEY_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

enum parley_err local_store_clear(struct local_store *ls, enum ls_ns ns)
{
    sqlite3_stmt *st = NULL;
    enum parley_err rc = PARLEY_ERR_STORE;
    if (sqlite3_prepare_v2(ls->db, "DELETE FROM kv WHERE ns = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int(st, 1, (int)ns);
        if (sqlite3_step(st) == SQLITE_DONE)
            rc = PARLEY_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- history ---- */

#define NS_MSG 100 /* AD namespace of history records */

static enum parley_err msg_hashes(struct local_store *ls, const char *peer, const char *msg_id,
                                  uint8_t ph[HASH_BYTES], uint8_t mh[HASH_BYTES])
{
    enum parley_err rc = key_ok(peer);
    if (!rc && msg_id)
        rc = key_ok(msg_id);
    if (rc)
        return rc;
    hash_parts(ls, ph, "peer", NS_MSG, peer, strlen(peer), NULL, 0);
    if (msg_id)
        hash_parts(ls, mh, "mid", NS_MSG, peer, strlen(peer), msg_id, strlen(msg_id));
    return PARLEY_OK;
}

static enum parley_err msg_write(struct local_store *ls, const char *sql, const char *peer,
                                 const char *msg_id, const void *rec, size_t len,
                                 bool update)
{
    uint8_t ph[HASH_BYTES], mh[HASH_BYTES];
    enum parley_err rc = msg_hashes(ls, peer, msg_id, ph, mh);
    if (rc)
        return rc;
    uint8_t *sealed = NULL;
    size_t slen = 0;
    rc = seal(ls, NS_MSG, mh, rec, len, &sealed, &slen);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = PARLEY_ERR_STORE;
    if (sqlite3_prepare_v2(ls->db, sql, -1, &st, NULL) != SQLITE_OK)
        goto out;
    if (update) {
        sqlite3_bind_blob(st, 1, sealed, (int)slen, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, mh, HASH_BYTES, SQLITE_STATIC);
    } else {
        sqlite3_bind_blob(st, 1, ph, HASH_BYTES, SQLITE_STATIC);
        sqlite3_bind_blob(st, 2, mh, HASH_BYTES, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, sealed, (int)slen, SQLITE_STATIC);
    }
    int r = sqlite3_step(st);
    if (r == SQLITE_DONE)
        rc = update && sqlite3_changes(ls->db) == 0 ? PARLEY_ERR_NOTFOUND : PARLEY_OK;
    else if (r == SQLITE_CONSTRAINT)
        rc = PARLEY_ERR_EXISTS;
out:
    sqlite3_finalize(st);
    free(sealed);
    return rc;
}

enum parley_err local_store_msg_add(struct local_store *ls, const char *peer, const char *msg_id,
                                    const void *rec, size_t len)
{
    return msg_write(ls, "INSERT INTO msgs(peer, mid, v) VALUES(?, ?, ?)", peer, msg_id, rec, len,
                     false);
}

enum parley_err local_store_msg_update(struct local_store *ls, const char *peer,
                                       const char *msg_id, const void *rec, size_t len)
{
    return msg_write(ls, "UPDATE msgs SET v = ? WHERE mid = ?", peer, msg_id, rec, len, true);
}

enum parley_err local_store_msg_get(struct local_store *ls, const char *peer, const char *msg_id,
                                    uint8_t **rec, size_t *len)
{
    uint8_t ph[HASH_BYTES], mh[HASH_BYTES];
    enum parley_err rc = msg_hashes(ls, peer, msg_id, ph, mh);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = PARLEY_ERR_STORE;
    if (sqlite3_prepare_v2(ls->db, "SELECT v FROM msgs WHERE mid = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_blob(st, 1, mh, HASH_BYTES, SQLITE_STATIC);
        int r = sqlite3_step(st);
        if (r == SQLITE_DONE)
            rc = PARLEY_ERR_NOTFOUND;
        else if (r == SQLITE_ROW)
            rc = open_sealed(ls, NS_MSG, mh, sqlite3_column_blob(st, 0),
                             (size_t)sqlite3_column_bytes(st, 0), rec, len);
    }
    sqlite3_finalize(st);
    return rc;
}

enum parley_err local_store_msg_del(struct local_store *ls, const char *peer, const char *msg_id)
{
    uint8_t ph[HASH_BYTES], mh[HASH_BYTES];
    enum parley_err rc = msg_hashes(ls, peer, msg_id, ph, mh);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = PARLEY_ERR_STORE;
    if (sqlite3_prepare_v2(ls->db, "DELETE FROM msgs WHERE mid = ?", -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_blob(st, 1, mh, HASH_BYTES, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_DONE)
            rc = PARLEY_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

enum parley_err local_store_msg_list(struct local_store *ls, const char *peer, size_t limit,
                                     local_store_msg_fn fn, void *ud)
{
    uint8_t ph[HASH_BYTES];
    enum parley_err rc = msg_hashes(ls, peer, NULL, ph, NULL);
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    rc = PARLEY_ERR_STORE;
    /* Newest `limit` rows, then oldest first. */
    if (sqlite3_prepare_v2(ls->db,
                           "SELECT mid, v FROM (SELECT seq, mid, v FROM msgs WHERE peer = ?"
                           " ORDER BY seq DESC LIMIT ?) ORDER BY seq ASC",
                           -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_blob(st, 1, ph, HASH_BYTES, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, limit ? (sqlite3_int64)limit : -1);
    int r;
    while ((r = sqlite3_step(st)) == SQLITE_ROW) {
        if (sqlite3_column_bytes(st, 0) != HASH_BYTES)
            continue;
        uint8_t mh[HASH_BYTES];
        memcpy(mh, sqlite3_column_blob(st, 0), HASH_BYTES);
        uint8_t *rec = NULL;
        size_t len = 0;
        rc = open_sealed(ls, NS_MSG, mh, sqlite3_column_blob(st, 1),
                         (size_t)sqlite3_column_bytes(st, 1), &rec, &len);
        if (rc)
            goto out;
        int stop = fn(rec, len, ud);
        local_store_value_free(rec, len);
        if (stop) {
            rc = (enum parley_err)stop;
            goto out;
        }
    }
    rc = r == SQLITE_DONE ? PARLEY_OK : PARLEY_ERR_STORE;
out:
    sqlite3_finalize(st);
    return rc;
}

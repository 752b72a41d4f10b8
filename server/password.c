/*
 * password.c — Argon2id hashing and verification; see password.h.
 */
#include "password.h"

#include <pthread.h>
#include <sodium.h>
#include <string.h>

_Static_assert(PASSWORD_HASH_MAX == crypto_pwhash_STRBYTES, "hash string size");

static void limits(uint64_t opslimit, uint64_t memlimit_kib, unsigned long long *ops, size_t *mem)
{
    uint64_t m = memlimit_kib;
    if (m > SIZE_MAX / 1024)
        m = SIZE_MAX / 1024;
    *ops = opslimit < crypto_pwhash_OPSLIMIT_MIN ? crypto_pwhash_OPSLIMIT_MIN : opslimit;
    *mem = (size_t)m * 1024 < crypto_pwhash_MEMLIMIT_MIN ? crypto_pwhash_MEMLIMIT_MIN
                                                         : (size_t)m * 1024;
}

enum parley_err password_hash(const char *pw, size_t len, uint64_t opslimit, uint64_t memlimit_kib,
                              char out[PASSWORD_HASH_MAX])
{
    unsigned long long ops;
    size_t mem;
    char h[crypto_pwhash_STRBYTES];
    limits(opslimit, memlimit_kib, &ops, &mem);
    if (crypto_pwhash_str_alg(h, pw, len, ops, mem, crypto_pwhash_ALG_ARGON2ID13) != 0) {
        sodium_memzero(h, sizeof h);
        /* libsodium fails here only when it cannot allocate mem bytes (or on absurd
         * limits, which limits() excludes). */
        return PARLEY_ERR_NOMEM;
    }
    memcpy(out, h, sizeof h);
    sodium_memzero(h, sizeof h);
    return PARLEY_OK;
}

bool password_verify(const char *hash, const char *pw, size_t len)
{
    if (!hash || !pw)
        return false;
    return crypto_pwhash_str_verify(hash, pw, len) == 0;
}

static pthread_mutex_t dummy_mu = PTHREAD_MUTEX_INITIALIZER;
static char dummy_hash[crypto_pwhash_STRBYTES];
static unsigned long long dummy_ops;
static size_t dummy_mem;

void password_verify_dummy(const char *pw, size_t len, uint64_t opslimit, uint64_t memlimit_kib)
{
    unsigned long long ops;
    size_t mem;
    char h[crypto_pwhash_STRBYTES];
    limits(opslimit, memlimit_kib, &ops, &mem);

    pthread_mutex_lock(&dummy_mu);
    if (!dummy_hash[0] || dummy_ops != ops || dummy_mem != mem) {
        /* A random password nobody knows; made under the lock so it is made once. */
        unsigned char rnd[32];
        char tmp[crypto_pwhash_STRBYTES];
        randombytes_buf(rnd, sizeof rnd);
        if (crypto_pwhash_str_alg(tmp, (const char *)rnd, sizeof rnd, ops, mem,
                                  crypto_pwhash_ALG_ARGON2ID13) == 0) {
            memcpy(dummy_hash, tmp, sizeof tmp);
            dummy_ops = ops;
            dummy_mem = mem;
        }
        sodium_memzero(rnd, sizeof rnd);
    }
    memcpy(h, dummy_hash, sizeof h);
    pthread_mutex_unlock(&dummy_mu);
    if (h[0])
        (void)!crypto_pwhash_str_verify(h, pw, len);
}

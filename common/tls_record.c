/*
 * tls_record.c — TLS 1.3 record protection over a per-thread EVP_CIPHER_CTX; see tls_record.h.
 *
 * Why per thread: an EVP_CIPHER_CTX with an AEAD costs about 1 KB, which is most of what an
 * idle connection would otherwise hold. A context is created once per thread and cipher
 * (the cipher is fetched then), and every record re-keys it with EVP_CipherInit_ex(NULL
 * cipher, key, nonce), which only runs the key schedule. A pthread key frees the contexts
 * when the thread exits.
 *
 * HKDF-Expand uses libsodium's HMAC-SHA256 (RFC 5869 over RFC 8446 §7.1's HkdfLabel).
 */
#include "tls_record.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <sodium.h>

#define HASH_BYTES crypto_auth_hmacsha256_BYTES

/* ------------------------------------------------------------ cipher contexts */

struct thread_ctx {
    EVP_CIPHER_CTX *c[2]; /* indexed by enum tls_rec_cipher - 1 */
};

static pthread_key_t ctx_key;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;
static bool ctx_key_ok;

static void thread_ctx_free(void *p)
{
    struct thread_ctx *t = p;
    EVP_CIPHER_CTX_free(t->c[0]);
    EVP_CIPHER_CTX_free(t->c[1]);
    free(t);
}

static void make_key(void)
{
    ctx_key_ok = pthread_key_create(&ctx_key, thread_ctx_free) == 0;
}

static size_t key_len(enum tls_rec_cipher c)
{
    return c == TLS_REC_AES_128_GCM ? 16 : 32;
}

/* The calling thread's context for cipher c, created on first use; NULL when out of
 * memory. */
static EVP_CIPHER_CTX *cipher_ctx(enum tls_rec_cipher c)
{
    if (pthread_once(&ctx_once, make_key) != 0 || !ctx_key_ok)
        return NULL;
    struct thread_ctx *t = pthread_getspecific(ctx_key);
    if (!t) {
        t = calloc(1, sizeof *t);
        if (!t)
            return NULL;
        if (pthread_setspecific(ctx_key, t) != 0) {
            free(t);
            return NULL;
        }
    }
    EVP_CIPHER_CTX **slot = &t->c[c - 1];
    if (!*slot) {
        const EVP_CIPHER *ev =
            c == TLS_REC_AES_128_GCM ? EVP_aes_128_gcm() : EVP_chacha20_poly1305();
        EVP_CIPHER_CTX *x = EVP_CIPHER_CTX_new();
        if (!x || EVP_CipherInit_ex(x, ev, NULL, NULL, NULL, 1) != 1) {
            EVP_CIPHER_CTX_free(x);
            ERR_clear_error();
            return NULL;
        }
        *slot = x; /* both suites use a 12-byte nonce, the contexts' default */
    }
    return *slot;
}

/* ------------------------------------------------------------ key schedule */

enum tls_rec_cipher tls_rec_cipher_from_suite(uint16_t suite)
{
    switch (suite) {
    case 0x1301:
        return TLS_REC_AES_128_GCM;
    case 0x1303:
        return TLS_REC_CHACHA20_POLY1305;
    default:
        return 0;
    }
}

enum parley_err tls_rec_expand_label(const uint8_t *secret, size_t secret_len,
                                     const char *label, const uint8_t *context,
                                     size_t context_len, uint8_t *out, size_t out_len)
{
    static const char prefix[] = "tls13 ";
    size_t plen = sizeof prefix - 1, llen = strlen(label);
    if (out_len == 0 || out_len > 255 || plen + llen > 255 || context_len > 255) {
        if (out && out_len)
            sodium_memzero(out, out_len);
        return PARLEY_ERR_INVAL;
    }
    /* HkdfLabel = uint16 length || opaque label<7..255> || opaque context<0..255>. */
    uint8_t info[2 + 1 + 255 + 1 + 255];
    size_t n = 0;
    info[n++] = 0;
    info[n++] = (uint8_t)out_len;
    info[n++] = (uint8_t)(plen + llen);
    memcpy(info + n, prefix, plen);
    n += plen;
    memcpy(info + n, label, llen);
    n += llen;
    info[n++] = (uint8_t)context_len;
    if (context_len)
        memcpy(info + n, context, context_len);
    n += context_len;
    /* HKDF-Expand (RFC 5869 §2.3): T(i) = HMAC(PRK, T(i-1) || info || i). */
    crypto_auth_hmacsha256_state st;
    uint8_t t[HASH_BYTES];
    size_t done = 0;
    for (uint8_t i = 1; done < out_len; i++) {
        crypto_auth_hmacsha256_init(&st, secret, secret_len);
        if (i > 1)
            crypto_auth_hmacsha256_update(&st, t, sizeof t);
        crypto_auth_hmacsha256_update(&st, info, n);
        crypto_auth_hmacsha256_update(&st, &i, 1);
        crypto_auth_hmacsha256_final(&st, t);
        size_t take = out_len - done < sizeof t ? out_len - done : sizeof t;
        memcpy(out + done, t, take);
        done += take;
    }
    sodium_memzero(t, sizeof t);
    sodium_memzero(&st, sizeof st);
    return PARLEY_OK;
}

/* key and iv from d->secret (§7.3). */
static enum parley_err derive(struct tls_rec_dir *d)
{
    enum parley_err rc = tls_rec_expand_label(d->secret, sizeof d->secret, "key", NULL, 0,
                                              d->key, key_len(d->cipher));
    if (!rc)
        rc = tls_rec_expand_label(d->secret, sizeof d->secret, "iv", NULL, 0, d->iv,
                                  sizeof d->iv);
    d->seq = 0;
    if (rc)
        tls_rec_dir_cleanup(d);
    return rc;
}

enum parley_err tls_rec_dir_init(struct tls_rec_dir *d, enum tls_rec_cipher cipher,
                                 const uint8_t secret[TLS_REC_SECRET_BYTES])
{
    if (cipher != TLS_REC_AES_128_GCM && cipher != TLS_REC_CHACHA20_POLY1305) {
        tls_rec_dir_cleanup(d);
        return PARLEY_ERR_INVAL;
    }
    memmove(d->secret, secret, sizeof d->secret);
    memset(d->key, 0, sizeof d->key);
    d->cipher = (uint8_t)cipher;
    return derive(d);
}

enum parley_err tls_rec_dir_update(struct tls_rec_dir *d)
{
    uint8_t next[TLS_REC_SECRET_BYTES];
    if (!d->cipher)
        return PARLEY_ERR_INVAL;
    enum parley_err rc = tls_rec_expand_label(d->secret, sizeof d->secret, "traffic upd", NULL,
                                              0, next, sizeof next);
    if (!rc) {
        memcpy(d->secret, next, sizeof next);
        rc = derive(d);
    }
    sodium_memzero(next, sizeof next);
    return rc;
}

void tls_rec_dir_cleanup(struct tls_rec_dir *d)
{
    sodium_memzero(d, sizeof *d);
}

/* ------------------------------------------------------------ records */

enum parley_err tls_rec_header_check(const uint8_t hdr[TLS_REC_HEADER_BYTES], size_t *body_len)
{
    size_t n = (size_t)hdr[3] << 8 | hdr[4];
    if (hdr[0] != TLS_CT_APPLICATION_DATA || hdr[1] != 3 || hdr[2] != 3 ||
        n < 1 + TLS_REC_TAG_BYTES || n > TLS_REC_MAX_INNER + TLS_REC_TAG_BYTES)
        return PARLEY_ERR_PROTO;
    *body_len = n;
    return PARLEY_OK;
}

/* Per-record nonce (§5.3): iv XOR the 64-bit sequence number, left-padded with zeros. */
static void make_nonce(const struct tls_rec_dir *d, uint8_t nonce[TLS_REC_IV_BYTES])
{
    memcpy(nonce, d->iv, TLS_REC_IV_BYTES);
    for (int i = 0; i < 8; i++)
        nonce[TLS_REC_IV_BYTES - 1 - i] ^= (uint8_t)(d->seq >> (8 * i));
}

/* The thread's context for d's cipher, keyed for one record in direction enc. */
static EVP_CIPHER_CTX *keyed_ctx(const struct tls_rec_dir *d, int enc)
{
    if (d->cipher != TLS_REC_AES_128_GCM && d->cipher != TLS_REC_CHACHA20_POLY1305)
        return NULL;
    EVP_CIPHER_CTX *x = cipher_ctx(d->cipher);
    uint8_t nonce[TLS_REC_IV_BYTES];
    make_nonce(d, nonce);
    if (x && EVP_CipherInit_ex(x, NULL, NULL, d->key, nonce, enc) != 1)
        x = NULL;
    sodium_memzero(nonce, sizeof nonce);
    return x;
}

/* One AEAD update that must produce exactly len bytes of output (true for both suites). */
static bool update(EVP_CIPHER_CTX *x, uint8_t *out, const uint8_t *in, size_t len)
{
    int outl = 0;
    if (len == 0)
        return true;
    return EVP_CipherUpdate(x, out, &outl, in, (int)len) == 1 && (size_t)outl == len;
}

enum parley_err tls_rec_seal(struct tls_rec_dir *d, uint8_t type, const uint8_t *in, size_t len,
                             size_t pad, uint8_t *out)
{
    static const uint8_t zeros[256];
    if (len > TLS_REC_MAX_PLAIN || pad > TLS_REC_MAX_INNER - 1 - len || type == 0)
        return PARLEY_ERR_INVAL;
    if (d->seq == UINT64_MAX)
        return PARLEY_ERR_LIMIT;
    size_t body = len + 1 + pad + TLS_REC_TAG_BYTES;
    out[0] = TLS_CT_APPLICATION_DATA;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(body >> 8);
    out[4] = (uint8_t)body;
    EVP_CIPHER_CTX *x = keyed_ctx(d, 1);
    if (!x) {
        ERR_clear_error();
        return PARLEY_ERR_NOMEM;
    }
    uint8_t *p = out + TLS_REC_HEADER_BYTES;
    int outl = 0;
    bool ok = EVP_CipherUpdate(x, NULL, &outl, out, TLS_REC_HEADER_BYTES) == 1 &&
              update(x, p, in, len) && update(x, p + len, &type, 1);
    p += len + 1;
    for (size_t left = pad; ok && left > 0;) {
        size_t k = left < sizeof zeros ? left : sizeof zeros;
        ok = update(x, p, zeros, k);
        p += k;
        left -= k;
    }
    ok = ok && EVP_CipherFinal_ex(x, p, &outl) == 1 && outl == 0 &&
         EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_GET_TAG, TLS_REC_TAG_BYTES, p) == 1;
    if (!ok) {
        ERR_clear_error();
        return PARLEY_ERR_CRYPTO;
    }
    d->seq++;
    return PARLEY_OK;
}

enum parley_err tls_rec_open(struct tls_rec_dir *d, const uint8_t hdr[TLS_REC_HEADER_BYTES],
                             const uint8_t *body, size_t body_len, uint8_t *out, size_t out_cap,
                             uint8_t *type, size_t *out_len)
{
    size_t checked;
    if (out_cap < TLS_REC_MAX_PLAIN)
        return PARLEY_ERR_INVAL;
    if (tls_rec_header_check(hdr, &checked) != PARLEY_OK || checked != body_len)
        return PARLEY_ERR_PROTO;
    if (d->seq == UINT64_MAX)
        return PARLEY_ERR_LIMIT;
    /* The inner plaintext is at most 2^14 + 1 bytes and out holds at least 2^14: the
     * last byte, when there is one more, goes to tail. */
    size_t ct = body_len - TLS_REC_TAG_BYTES;
    size_t first = ct < out_cap ? ct : out_cap;
    uint8_t tail[TLS_REC_MAX_INNER - TLS_REC_MAX_PLAIN] = {0};
    size_t rest = ct - first;
    EVP_CIPHER_CTX *x = keyed_ctx(d, 0);
    if (!x) {
        ERR_clear_error();
        return PARLEY_ERR_NOMEM;
    }
    int outl = 0;
    bool ok = EVP_CipherUpdate(x, NULL, &outl, hdr, TLS_REC_HEADER_BYTES) == 1 &&
              update(x, out, body, first) && update(x, tail, body + first, rest) &&
              EVP_CIPHER_CTX_ctrl(x, EVP_CTRL_AEAD_SET_TAG, TLS_REC_TAG_BYTES,
                                  (void *)(body + ct)) == 1 &&
              EVP_CipherFinal_ex(x, out + first, &outl) == 1 && outl == 0;
    /* Strip the zero padding: the content type is the last non-zero byte. */
    size_t n = ct;
    uint8_t t = 0;
    while (ok && n > 0 && t == 0) {
        n--;
        t = n >= first ? tail[n - first] : out[n];
    }
    if (!ok || t == 0) {
        sodium_memzero(out, first);
        sodium_memzero(tail, sizeof tail);
        ERR_clear_error();
        return PARLEY_ERR_PROTO;
    }
    d->seq++;
    *type = t;
    *out_len = n; /* ≤ 2^14, so within out */
    return PARLEY_OK;
}

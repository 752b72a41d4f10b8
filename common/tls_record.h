/*
 * tls_record.h — the TLS 1.3 record protection (RFC 8446 §5) that tls_server.c uses once the
 * handshake is over, so an idle connection need not keep OpenSSL's SSL object.
 *
 * Only the two SHA-256 suites with a 16-byte tag: TLS_AES_128_GCM_SHA256 and
 * TLS_CHACHA20_POLY1305_SHA256. A direction's state is its current traffic secret, the key
 * and iv derived from it (HKDF-Expand-Label, §7.1/§7.3) and a sequence number: about 90 bytes.
 * The AEAD runs on one EVP_CIPHER_CTX per thread and per cipher, re-keyed for every record,
 * never on a context per connection.
 *
 * Records are protected as: header (23, 0x0303, length) || AEAD(key, iv ^ seq, header,
 * content || type || zero padding). Functions here are pure over the buffers given; they may
 * be called from any thread (each thread gets its own cipher contexts, freed when it exits).
 */
#ifndef PARLEY_TLS_RECORD_H
#define PARLEY_TLS_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"

#define TLS_REC_SECRET_BYTES 32   /* SHA-256 traffic secrets */
#define TLS_REC_KEY_MAX 32        /* ChaCha20 key; AES-128 uses 16 */
#define TLS_REC_IV_BYTES 12
#define TLS_REC_TAG_BYTES 16
#define TLS_REC_HEADER_BYTES 5
#define TLS_REC_MAX_PLAIN 16384                     /* 2^14 bytes of content per record */
#define TLS_REC_MAX_INNER (TLS_REC_MAX_PLAIN + 1)   /* content + type (+ padding within) */
#define TLS_REC_MAX_BODY (TLS_REC_MAX_PLAIN + 256)  /* the wire limit on TLSCiphertext.length */
/* Bytes a record of n content bytes with pad bytes of padding takes on the wire. */
#define TLS_REC_WIRE_BYTES(n, pad) (TLS_REC_HEADER_BYTES + (n) + 1 + (pad) + TLS_REC_TAG_BYTES)

/* Content types (RFC 8446 §5.1). */
enum {
    TLS_CT_ALERT = 21,
    TLS_CT_HANDSHAKE = 22,
    TLS_CT_APPLICATION_DATA = 23,
};

enum tls_rec_cipher {
    TLS_REC_AES_128_GCM = 1,       /* 0x1301 */
    TLS_REC_CHACHA20_POLY1305 = 2, /* 0x1303 */
};

/* One direction. Embedded in the owner's state; wiped by tls_rec_dir_cleanup. */
struct tls_rec_dir {
    uint8_t secret[TLS_REC_SECRET_BYTES]; /* current application traffic secret */
    uint8_t key[TLS_REC_KEY_MAX];
    uint8_t iv[TLS_REC_IV_BYTES];
    uint64_t seq;
    uint8_t cipher; /* enum tls_rec_cipher; 0 = not keyed */
};

/* Map an IANA TLS 1.3 suite id (0x1301, 0x1303) to a cipher; 0 for anything else. */
enum tls_rec_cipher tls_rec_cipher_from_suite(uint16_t suite);

/* HKDF-Expand-Label(secret, label, context, out_len) with SHA-256 (RFC 8446 §7.1); label
 * without the "tls13 " prefix. out_len ≤ 255. PARLEY_ERR_INVAL on bad lengths, otherwise
 * PARLEY_OK. out is zeroed on failure. */
PARLEY_WUR enum parley_err tls_rec_expand_label(const uint8_t *secret, size_t secret_len,
                                                const char *label, const uint8_t *context,
                                                size_t context_len, uint8_t *out,
                                                size_t out_len);

/* Key a direction from a traffic secret (copied; secret may point into d): derives key and
 * iv, seq = 0. PARLEY_ERR_INVAL for an unknown cipher (d is then wiped). */
PARLEY_WUR enum parley_err tls_rec_dir_init(struct tls_rec_dir *d, enum tls_rec_cipher cipher,
                                            const uint8_t secret[TLS_REC_SECRET_BYTES]);
/* KeyUpdate (§4.6.3, §7.2): secret = HKDF-Expand-Label(secret, "traffic upd", "", 32), then
 * re-derive key and iv, seq = 0. */
PARLEY_WUR enum parley_err tls_rec_dir_update(struct tls_rec_dir *d);
/* Wipe the secret, key and iv. */
void tls_rec_dir_cleanup(struct tls_rec_dir *d);

/* Check a record header: outer type 23, legacy version 0x0303, TAG ≤ length ≤ 2^14+1+TAG (a
 * longer body could only decrypt to an over-long inner plaintext, §5.4). Writes the body
 * length to *body_len. PARLEY_ERR_PROTO otherwise. */
PARLEY_WUR enum parley_err tls_rec_header_check(const uint8_t hdr[TLS_REC_HEADER_BYTES],
                                                size_t *body_len);

/* Protect one record: content type, len ≤ 2^14 content bytes, pad zero bytes of padding
 * (len + 1 + pad ≤ 2^14 + 1). Writes TLS_REC_WIRE_BYTES(len, pad) bytes to out (caller's
 * buffer, which must not overlap in) and advances d->seq. PARLEY_ERR_INVAL on bad sizes,
 * PARLEY_ERR_LIMIT when the sequence number would wrap (the connection must end),
 * PARLEY_ERR_NOMEM / PARLEY_ERR_CRYPTO when the cipher context fails. */
PARLEY_WUR enum parley_err tls_rec_seal(struct tls_rec_dir *d, uint8_t type, const uint8_t *in,
                                        size_t len, size_t pad, uint8_t *out);

/* Unprotect one record: hdr as accepted by tls_rec_header_check, body of body_len bytes.
 * The inner plaintext goes to out (out_cap ≥ TLS_REC_MAX_PLAIN bytes, caller-owned, must
 * not overlap body); on success *type is the real content type, *out_len the content
 * length (padding stripped), and d->seq advances. PARLEY_ERR_PROTO on a bad tag, a bad
 * length, or an inner plaintext with no content type (out is wiped then);
 * PARLEY_ERR_LIMIT when the sequence number would wrap; PARLEY_ERR_INVAL when out_cap is
 * too small. Tag comparison is the AEAD's own (constant time). */
PARLEY_WUR enum parley_err tls_rec_open(struct tls_rec_dir *d,
                                        const uint8_t hdr[TLS_REC_HEADER_BYTES],
                                        const uint8_t *body, size_t body_len, uint8_t *out,
                                        size_t out_cap, uint8_t *type, size_t *out_len);

#endif

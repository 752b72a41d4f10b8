/*
 * ws_handshake.c — Sec-WebSocket-Key / Sec-WebSocket-Accept (RFC 6455 §4.2.2).
 * SHA-1 and base64 come from OpenSSL (EVP_Digest, EVP_EncodeBlock); randomness for
 * client keys from RAND_bytes.
 */
#include "ws_handshake.h"

#include <string.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

void ws_handshake_accept(const char *key, char out[29])
{
    unsigned char md[20];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) == 1 &&
              EVP_DigestUpdate(ctx, key, strlen(key)) == 1 &&
              EVP_DigestUpdate(ctx, WS_HANDSHAKE_GUID, sizeof WS_HANDSHAKE_GUID - 1) == 1 &&
              EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == sizeof md;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        /* Only on allocation failure inside OpenSSL: produce a value no peer accepts. */
        memset(out, '!', WS_HANDSHAKE_ACCEPT_LEN);
        out[WS_HANDSHAKE_ACCEPT_LEN] = 0;
        return;
    }
    /* EVP_EncodeBlock writes 28 characters + NUL for 20 input bytes. */
    EVP_EncodeBlock((unsigned char *)out, md, (int)sizeof md);
    out[WS_HANDSHAKE_ACCEPT_LEN] = 0;
}

static bool is_b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

bool ws_handshake_key_valid(const char *key)
{
    if (!key || strlen(key) != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (int i = 0; i < 22; i++)
        if (!is_b64(key[i]))
            return false;
    /* 16 bytes = 128 bits; the last character carries 2 bits, the low 4 must be zero. */
    return strchr("AQgw", key[21]) != NULL;
}

bool ws_handshake_key_new(char out[25])
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1)
        return false;
    EVP_EncodeBlock((unsigned char *)out, raw, (int)sizeof raw);
    out[24] = 0;
    return true;
}

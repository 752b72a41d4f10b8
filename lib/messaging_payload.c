/*
 * messaging_payload.c — the plaintext inside every ciphertext: a proto/content.proto
 * Content (text, receipt, sender-key distribution, timer, message id, sender clock;
 * POLICY P10), padded to a multiple of PAD_BLOCK, and the associated data binding a
 * ciphertext to its sender and recipient device.
 *
 * Packed plaintexts are secrets: they live in sodium_malloc'd memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "messaging_int.h"

size_t payload_ad(uint8_t *ad, size_t cap, const char *sender_dev, const char *recip_dev)
{
    int n = snprintf((char *)ad, cap, "parley-msg-v1:%s:%s", sender_dev, recip_dev);
    return n < 0 || (size_t)n >= cap ? 0 : (size_t)n;
}

/* Pack a Content with padding to a multiple of PAD_BLOCK. Secret output (sodium). */
enum parley_err payload_pack(Parley__Content__Content *ct, uint8_t **out, size_t *len)
{
    uint8_t zeros[PAD_BLOCK];
    memset(zeros, 0, sizeof zeros);
    ct->padding.data = NULL;
    ct->padding.len = 0;
    size_t n = parley__content__content__get_packed_size(ct);
    size_t pad = PAD_BLOCK - (n % PAD_BLOCK);
    ct->padding.data = zeros;
    ct->padding.len = pad;
    n = parley__content__content__get_packed_size(ct);
    if (n > PARLEY_RATCHET_MAX_PLAINTEXT_BYTES)
        return PARLEY_ERR_LIMIT;
    uint8_t *b = sodium_malloc(n ? n : 1);
    if (!b)
        return PARLEY_ERR_NOMEM;
    parley__content__content__pack(ct, b);
    *out = b;
    *len = n;
    return PARLEY_OK;
}

void payload_text(Parley__Content__Content *ct, Parley__Content__Text *tx, const char *text,
                  uint32_t expire_after_s, uint8_t mid[MSGID_BYTES],
                  char hex[PARLEY_MESSAGE_ID_HEX_BYTES], int64_t *sent)
{
    randombytes_buf(mid, MSGID_BYTES);
    msg_to_hex(hex, mid, MSGID_BYTES);
    *sent = msg_now_ms();
    parley__content__content__init(ct);
    parley__content__text__init(tx);
    tx->body = (char *)text;
    ct->version = 1;
    ct->message_id.data = mid;
    ct->message_id.len = MSGID_BYTES;
    ct->sent_at_ms = *sent;
    ct->body_case = PARLEY__CONTENT__CONTENT__BODY_TEXT;
    ct->text = tx;
    ct->expire_after_s = expire_after_s;
}

Parley__Content__Content *payload_unpack(const uint8_t *pt, size_t len,
                                         const Parley__Stream__Envelope *e)
{
    Parley__Content__Content *ct = parley__content__content__unpack(NULL, len, pt);
    bool group = e->group_id && *e->group_id;
    if (ct && ct->message_id.len == MSGID_BYTES && e->client_message_id.len == MSGID_BYTES &&
        memcmp(ct->message_id.data, e->client_message_id.data, MSGID_BYTES) == 0 &&
        (!group || (ct->group_id && strcmp(ct->group_id, e->group_id) == 0)))
        return ct;
    if (ct)
        parley__content__content__free_unpacked(ct, NULL);
    return NULL;
}

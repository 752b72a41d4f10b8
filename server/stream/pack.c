/*
 * pack.c — see pack.h. protobuf-c packs straight into the outmsg's buffer: one
 * allocation per frame.
 */
#include "pack.h"

#include <stdlib.h>
#include <string.h>

#include "store/store.h"

struct outmsg *pack_frame(const Parley__Stream__ServerFrame *f, enum out_kind kind)
{
    size_t n = parley__stream__server_frame__get_packed_size(f);
    struct outmsg *m = malloc(sizeof *m + n);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    m->kind = kind;
    m->len = parley__stream__server_frame__pack(f, m->data);
    return m;
}

struct outmsg *pack_error(uint64_t id, const char *code, const char *message)
{
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    Parley__Stream__Error e = PARLEY__STREAM__ERROR__INIT;
    e.code = (char *)code;
    e.message = (char *)(message ? message : "");
    f.id = id;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ERROR;
    f.error = &e;
    return pack_frame(&f, OUT_REPLY);
}

static struct outmsg *pack_env(Parley__Stream__Envelope *e)
{
    Parley__Stream__ServerFrame f = PARLEY__STREAM__SERVER_FRAME__INIT;
    f.id = 0;
    f.body_case = PARLEY__STREAM__SERVER_FRAME__BODY_ENVELOPE;
    f.envelope = e;
    struct outmsg *m = pack_frame(&f, OUT_PUSH);
    if (m)
        m->env_id = e->envelope_id;
    return m;
}

struct outmsg *pack_message(uint64_t env_id, const char *sender_user, const char *sender_username,
                            const char *sender_device, const uint8_t msgid[16],
                            const char *group_id, int64_t server_time_ms, const uint8_t *ct,
                            size_t ct_len)
{
    Parley__Stream__Envelope e = PARLEY__STREAM__ENVELOPE__INIT;
    e.envelope_id = env_id;
    e.kind = PARLEY__STREAM__ENVELOPE__KIND__MESSAGE;
    e.sender_user = (char *)sender_user;
    e.sender_username = (char *)sender_username;
    e.sender_device = (char *)sender_device;
    e.client_message_id.data = (uint8_t *)msgid;
    e.client_message_id.len = 16;
    e.group_id = (char *)(group_id ? group_id : "");
    e.server_time_ms = server_time_ms;
    e.ciphertext.data = (uint8_t *)ct;
    e.ciphertext.len = ct_len;
    return pack_env(&e);
}

struct outmsg *pack_stored(const struct store_envelope *s, const uint8_t *ct, size_t ct_len)
{
    if (s->kind == STORE_ENV_MESSAGE)
        return pack_message(s->id, s->sender_user, s->sender_username, s->sender_device,
                            s->client_msg_id, s->group_id, s->created_at_ms, ct, ct_len);
    Parley__Stream__Envelope e = PARLEY__STREAM__ENVELOPE__INIT;
    Parley__Stream__ExpiredNotice x = PARLEY__STREAM__EXPIRED_NOTICE__INIT;
    x.client_message_id.data = (uint8_t *)s->client_msg_id;
    x.client_message_id.len = STORE_MSGID_BYTES;
    x.recipient_user = (char *)s->peer_user;
    x.devices = s->peer_devices;
    e.envelope_id = s->id;
    e.kind = PARLEY__STREAM__ENVELOPE__KIND__EXPIRED;
    e.group_id = (char *)s->group_id;
    e.server_time_ms = s->created_at_ms;
    e.expired = &x;
    return pack_env(&e);
}

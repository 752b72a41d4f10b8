/*
 * frame.c — see frame.h. Decoding through a budgeted allocator, then validation of
 * every field the server relies on, so later stages can trust a FRAME_OK frame.
 */
#include "frame.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "str.h"

#define ID_LEN 32 /* STORE_ID_LEN: 32 lowercase hex characters */

/* The arena (frame.h): a frame cost eight malloc/free pairs before, and then one 2 KB
 * allocation that made glibc consolidate its fast bins per frame (issue #5). The budget
 * counts every block and is not given back on free: unpacking frees only what it is
 * about to fail on. */
static void *budget_alloc(void *data, size_t size)
{
    struct frame_arena *b = data;
    size_t unit = sizeof(union frame_block);
    if (size > b->left || size > SIZE_MAX - unit)
        return NULL;
    size_t rounded = (size + unit - 1) / unit * unit;
    if (rounded > b->left)
        return NULL;
    b->left -= rounded;
    if (rounded <= FRAME_ARENA_INLINE - b->used) {
        void *p = (unsigned char *)b->area + b->used;
        b->used += rounded;
        return p;
    }
    union frame_block *h = malloc(unit + size);
    if (!h)
        return NULL;
    h->next = b->heap;
    b->heap = h;
    return h + 1;
}

static void budget_free(void *data, void *p)
{
    (void)data;
    (void)p; /* everything goes in frame_release */
}

static bool id_ok(const char *s)
{
    return str_is_hex_id(s, ID_LEN);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static enum frame_status refuse(struct frame_result *out, const char *code, const char *msg)
{
    out->code = code;
    out->message = msg;
    return FRAME_REFUSED;
}

static enum frame_status check_send(const Parley__Stream__Send *s, const struct frame_limits *lim,
                                    struct frame_result *out)
{
    size_t max_copies = lim->max_copies && lim->max_copies < FRAME_MAX_COPIES ? lim->max_copies
                                                                              : FRAME_MAX_COPIES;
    if (s->client_message_id.len != FRAME_MSGID_BYTES)
        return refuse(out, "invalid_field", "client_message_id must be 16 bytes");
    if (s->target_case == PARLEY__STREAM__SEND__TARGET_TO_USER) {
        if (!id_ok(s->to_user))
            return refuse(out, "invalid_field", "to_user is not a user id");
    } else if (s->target_case == PARLEY__STREAM__SEND__TARGET_GROUP_ID) {
        if (!id_ok(s->group_id))
            return refuse(out, "invalid_field", "group_id is not a group id");
    } else {
        return refuse(out, "invalid_field", "send needs to_user or group_id");
    }
    if (s->n_copies == 0)
        return refuse(out, "invalid_field", "send needs at least one copy");
    if (s->n_copies > max_copies)
        return refuse(out, "too_large", "too many copies in one send");
    const char *ids[FRAME_MAX_COPIES];
    for (size_t i = 0; i < s->n_copies; i++) {
        const Parley__Stream__DeviceCiphertext *c = s->copies[i];
        if (!c || !id_ok(c->device_id))
            return refuse(out, "invalid_field", "copy device_id is not a device id");
        if (c->ciphertext.len == 0)
            return refuse(out, "invalid_field", "copy ciphertext is empty");
        if (c->ciphertext.len > lim->max_envelope)
            return refuse(out, "too_large", "ciphertext larger than max_envelope");
        ids[i] = c->device_id;
    }
    qsort(ids, s->n_copies, sizeof ids[0], cmp_str);
    for (size_t i = 1; i < s->n_copies; i++)
        if (strcmp(ids[i - 1], ids[i]) == 0)
            return refuse(out, "invalid_field", "two copies for the same device");
    return FRAME_OK;
}

static enum frame_status check_ack(const Parley__Stream__Ack *a, const struct frame_limits *lim,
                                   struct frame_result *out)
{
    size_t max_ids = lim->max_ack_ids ? lim->max_ack_ids : FRAME_MAX_ACK_IDS;
    if (a->n_envelope_ids == 0)
        return refuse(out, "invalid_field", "ack needs at least one envelope id");
    if (a->n_envelope_ids > max_ids)
        return refuse(out, "too_large", "too many envelope ids in one ack");
    for (size_t i = 0; i < a->n_envelope_ids; i++)
        if (a->envelope_ids[i] == 0)
            return refuse(out, "invalid_field", "envelope id 0");
    return FRAME_OK;
}

enum frame_status frame_decode(const uint8_t *data, size_t len, const struct frame_limits *lim,
                               struct frame_result *out)
{
    out->cf = NULL; /* not a memset: the arena's area needs no zeroing */
    out->id = 0;
    out->arena.used = 0;
    out->arena.heap = NULL;
    out->code = "invalid_frame";
    out->message = "not a valid ClientFrame";
    if (!data || len == 0 || len > FRAME_MAX_BYTES || !lim)
        return FRAME_INVALID;
    struct frame_arena *b = &out->arena;
    b->a.alloc = budget_alloc;
    b->a.free = budget_free;
    b->a.allocator_data = b;
    b->left = FRAME_ALLOC_BUDGET;
    out->cf = parley__stream__client_frame__unpack(&b->a, len, data);
    if (!out->cf)
        return FRAME_INVALID;
    if (out->cf->id == 0) {
        out->message = "request id must be non-zero";
        return FRAME_INVALID;
    }
    out->id = out->cf->id;
    switch (out->cf->body_case) {
    case PARLEY__STREAM__CLIENT_FRAME__BODY_SEND:
        if (!out->cf->send)
            return FRAME_INVALID;
        return check_send(out->cf->send, lim, out);
    case PARLEY__STREAM__CLIENT_FRAME__BODY_ACK:
        if (!out->cf->ack)
            return FRAME_INVALID;
        return check_ack(out->cf->ack, lim, out);
    case PARLEY__STREAM__CLIENT_FRAME__BODY_PING:
        return FRAME_OK;
    default:
        return refuse(out, "invalid_frame", "frame has no known body");
    }
}

void frame_release(struct frame_result *r)
{
    if (!r)
        return;
    while (r->arena.heap) { /* the arena holds every block of r->cf */
        union frame_block *next = r->arena.heap->next;
        free(r->arena.heap);
        r->arena.heap = next;
    }
    r->cf = NULL;
}

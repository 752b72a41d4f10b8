/*
 * messaging_stream.c — the messenger's /v1/stream WebSocket: connect on demand, send
 * and read protobuf frames (proto/stream.proto), wait for the answer to a request while
 * queueing pushed frames for parley_messenger_next, acks and the closing handshake.
 *
 * Invariant: any transport or framing failure closes the stream (m->ws == NULL); the
 * next call reconnects. Pushed frames queued meanwhile are bounded by MAX_PENDING.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "messaging_int.h"

void stream_close(struct parley_messenger *m)
{
    if (m->ws) {
        ws_client_free(m->ws);
        m->ws = NULL;
    }
    m->acks_inflight = 0;
}

enum parley_err parley_messenger_connect(struct parley_messenger *m)
{
    if (!m)
        return PARLEY_ERR_INVAL;
    if (m->ws)
        return PARLEY_OK;
    struct parley_client *c = m->c;
    if (!c->s.token) {
        client_set_error(c, 0, NULL, "not logged in");
        return PARLEY_ERR_DENIED;
    }
    char hdr[4200];
    int n = snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", c->s.token);
    if (n < 0 || (size_t)n >= sizeof hdr) {
        sodium_memzero(hdr, sizeof hdr);
        return PARLEY_ERR_LIMIT;
    }
    struct http_client_config cfg = {.url = c->server,
                                     .ca_file = c->ca_file,
                                     .insecure_skip_verify = c->insecure_skip_verify,
                                     .timeout_ms = c->timeout_ms,
                                     .max_response = MAX_FRAME};
    int status = 0;
    enum parley_err rc = ws_client_connect(&cfg, "/v1/stream", hdr, &status, &m->ws);
    sodium_memzero(hdr, sizeof hdr);
    if (rc == PARLEY_ERR_SERVER)
        client_set_error(c, status, NULL, "the server refused the stream (HTTP %d)", status);
    else if (rc)
        client_set_error(c, 0, NULL, "cannot open the stream: %s", parley_strerror(rc));
    return rc;
}

int parley_messenger_fd(const struct parley_messenger *m)
{
    return m && m->ws ? ws_client_fd(m->ws) : -1;
}

enum parley_err stream_send_frame(struct parley_messenger *m, Parley__Stream__ClientFrame *f)
{
    size_t n = parley__stream__client_frame__get_packed_size(f);
    if (n > MAX_FRAME)
        return PARLEY_ERR_LIMIT;
    uint8_t *b = malloc(n ? n : 1);
    if (!b)
        return PARLEY_ERR_NOMEM;
    parley__stream__client_frame__pack(f, b);
    enum parley_err rc = ws_client_send(m->ws, true, b, n);
    free(b);
    if (rc) {
        client_set_error(m->c, 0, NULL, "stream: %s", ws_client_error(m->ws));
        stream_close(m);
    }
    return rc;
}

/* Read one frame from the socket (waiting up to timeout_ms). */
enum parley_err stream_read_frame(struct parley_messenger *m, uint32_t timeout_ms,
                                  Parley__Stream__ServerFrame **out)
{
    struct buf b;
    buf_init(&b, MAX_FRAME);
    bool bin = false;
    uint16_t code = 0;
    enum parley_err rc = ws_client_recv(m->ws, timeout_ms, &bin, &b, &code);
    if (rc == PARLEY_OK) {
        *out = parley__stream__server_frame__unpack(NULL, b.len, b.data);
        if (!*out || !bin) {
            if (*out)
                parley__stream__server_frame__free_unpacked(*out, NULL);
            *out = NULL;
            client_set_error(m->c, 0, NULL, "stream: undecodable frame from the server");
            rc = PARLEY_ERR_PROTO;
            stream_close(m);
        }
    } else if (rc != PARLEY_ERR_TIMEOUT) {
        if (rc == PARLEY_ERR_CLOSED)
            client_set_error(m->c, 0, NULL, "stream closed by the server (code %u)", code);
        else
            client_set_error(m->c, 0, NULL, "stream: %s", ws_client_error(m->ws));
        stream_close(m);
    }
    buf_cleanup(&b);
    return rc;
}

/* Keep a pushed frame for parley_messenger_next. */
static enum parley_err queue_frame(struct parley_messenger *m, Parley__Stream__ServerFrame *f)
{
    struct frame_node *n = malloc(sizeof *n);
    if (!n || m->fq_len >= MAX_PENDING) {
        free(n);
        parley__stream__server_frame__free_unpacked(f, NULL);
        return PARLEY_ERR_LIMIT;
    }
    n->f = f;
    n->next = NULL;
    if (m->fq_tail)
        m->fq_tail->next = n;
    else
        m->fq_head = n;
    m->fq_tail = n;
    m->fq_len++;
    return PARLEY_OK;
}

/* Wait for the answer to request `req`; pushes that arrive meanwhile are queued. */
enum parley_err stream_await_answer(struct parley_messenger *m, uint64_t req,
                                    Parley__Stream__ServerFrame **out)
{
    uint32_t t = m->c->timeout_ms ? m->c->timeout_ms : 30000;
    int64_t deadline = msg_now_ms() + t;
    for (;;) {
        int64_t left = deadline - msg_now_ms();
        if (left <= 0) {
            client_set_error(m->c, 0, NULL, "no answer from the server in time");
            return PARLEY_ERR_TIMEOUT;
        }
        Parley__Stream__ServerFrame *f = NULL;
        enum parley_err rc = stream_read_frame(m, (uint32_t)left, &f);
        if (rc == PARLEY_ERR_TIMEOUT)
            continue;
        if (rc)
            return rc;
        if (f->id == req) {
            *out = f;
            return PARLEY_OK;
        }
        if (f->id == 0 && f->body_case == PARLEY__STREAM__SERVER_FRAME__BODY_ERROR) {
            client_set_error(m->c, 0, f->error->code, "stream error: %s", f->error->message);
            parley__stream__server_frame__free_unpacked(f, NULL);
            return PARLEY_ERR_SERVER;
        }
        if (f->id == 0) {
            rc = queue_frame(m, f);
            if (rc)
                return rc;
            continue;
        }
        if (f->body_case == PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT && m->acks_inflight)
            m->acks_inflight--;
        parley__stream__server_frame__free_unpacked(f, NULL);
    }
}

enum parley_err stream_send_ack(struct parley_messenger *m, uint64_t envelope_id)
{
    if (m->o.no_ack || !m->ws)
        return PARLEY_OK;
    Parley__Stream__ClientFrame f = PARLEY__STREAM__CLIENT_FRAME__INIT;
    Parley__Stream__Ack a = PARLEY__STREAM__ACK__INIT;
    a.n_envelope_ids = 1;
    a.envelope_ids = &envelope_id;
    f.id = m->next_req++;
    f.body_case = PARLEY__STREAM__CLIENT_FRAME__BODY_ACK;
    f.ack = &a;
    enum parley_err rc = stream_send_frame(m, &f);
    if (!rc)
        m->acks_inflight++;
    return rc;
}

Parley__Stream__ServerFrame *stream_pop_frame(struct parley_messenger *m)
{
    struct frame_node *n = m->fq_head;
    if (!n)
        return NULL;
    m->fq_head = n->next;
    if (!m->fq_head)
        m->fq_tail = NULL;
    m->fq_len--;
    Parley__Stream__ServerFrame *f = n->f;
    free(n);
    return f;
}

void stream_shutdown(struct parley_messenger *m)
{
    if (m->ws) {
        /* Give outstanding acks a moment to be confirmed, so the server deletes them. */
        int64_t deadline = msg_now_ms() + 2000;
        while (m->acks_inflight && m->ws && msg_now_ms() < deadline) {
            Parley__Stream__ServerFrame *f = NULL;
            if (stream_read_frame(m, (uint32_t)(deadline - msg_now_ms()), &f) != PARLEY_OK)
                break;
            if (f->body_case == PARLEY__STREAM__SERVER_FRAME__BODY_ACK_RESULT)
                m->acks_inflight--;
            parley__stream__server_frame__free_unpacked(f, NULL);
        }
        if (m->ws)
            ws_client_close(m->ws, 1000);
        stream_close(m);
    }
    Parley__Stream__ServerFrame *f;
    while ((f = stream_pop_frame(m)) != NULL)
        parley__stream__server_frame__free_unpacked(f, NULL);
}

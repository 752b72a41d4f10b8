/*
 * net.h — the load generator's connections and its single event loop: one thread, one
 * epoll set, every connection non-blocking with TCP_NODELAY. Output is buffered per
 * connection and written once per loop pass (like the server side does), input is
 * parsed into WebSocket messages or MQTT packets and handed to the callbacks below.
 *
 * Connection set-up (TCP connect, WebSocket upgrade, MQTT CONNECT/CONNACK) is blocking
 * and happens before a measurement starts, except where the measurement includes it
 * (the drain), where it is timed as part of the run.
 */
#ifndef PARLEY_BENCH_NET_H
#define PARLEY_BENCH_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "codec.h"

#define NET_MAX_MESSAGE (1u << 20)
#define NET_MAX_PENDING_ACKS 1024
#define NET_ACK_RING 64 /* Ack requests remembered per connection until answered */

enum net_proto { NET_WS, NET_MQTT };

struct dbuf {
    uint8_t *data;
    size_t len, cap;
};

struct conn {
    int fd;
    enum net_proto proto;
    bool closed;
    bool dirty;                  /* on the loop's flush list */
    bool want_out;               /* EPOLLOUT armed */
    uint8_t mask[4];
    struct dbuf in, out;
    struct conn *next_dirty;
    void *user;                  /* the workload's object (a pair, ...) */
    int role;                    /* the workload's role for this end */
    uint64_t next_id;            /* parley request ids */
    uint16_t next_pid;           /* MQTT packet ids */
    uint64_t acks[NET_MAX_PENDING_ACKS]; /* parley envelope ids to ack at the next flush */
    size_t n_acks;
    uint64_t *ack_sent[NET_ACK_RING];    /* ids of Ack request id % ring, until answered */
    size_t ack_sent_n[NET_ACK_RING];
    bool acks_unanswered;        /* Acks go with id 0: the server answers none */
};

struct net_callbacks {
    void (*on_ws)(struct conn *c, const uint8_t *msg, size_t len);
    void (*on_mqtt)(struct conn *c, const struct mqtt_packet *p);
    void (*on_close)(struct conn *c);
};

/* The loop (one per process). */
int net_init(const struct net_callbacks *cb);
/* Run one pass: wait up to timeout_ms, dispatch, flush. Returns events handled or -1. */
int net_poll(int timeout_ms);

/* Blocking TCP connect to 127.0.0.1:port with TCP_NODELAY. Returns the fd or -1. */
int net_tcp_connect(uint16_t port);
/* A new connection around fd (consumed), registered with the loop after set-up:
 * net_ws_upgrade / net_mqtt_connect first, then net_add. NULL on failure (fd closed). */
struct conn *net_conn_new(int fd, enum net_proto proto);
/* Blocking WebSocket upgrade on path with extra header lines ("Name: v\r\n" or NULL).
 * Bytes after the 101 head stay in c->in. 0 or -1 (detail on stderr). */
int net_ws_upgrade(struct conn *c, const char *path, const char *headers);
/* Blocking MQTT CONNECT and CONNACK. session_present receives the CONNACK flag. */
int net_mqtt_connect(struct conn *c, const char *client_id, bool clean);
/* Blocking MQTT SUBSCRIBE (QoS 1) and SUBACK. */
int net_mqtt_subscribe(struct conn *c, const char *topic);
/* Make non-blocking and add to epoll; any bytes already in c->in are dispatched at the
 * next net_poll. */
int net_add(struct conn *c);
/* Close and free (removes from the loop). */
void net_conn_free(struct conn *c);

/* Output. Appends to c->out and schedules a flush at the end of the pass. */
void net_ws_send(struct conn *c, uint8_t opcode, const uint8_t *data, size_t len);
void net_raw_send(struct conn *c, const uint8_t *data, size_t len);
/* Reserve len bytes at the end of c->out (NULL when out of memory); net_commit(c, n)
 * then keeps n of them. For encoders that write in place. */
uint8_t *net_reserve(struct conn *c, size_t len);
void net_commit(struct conn *c, size_t n);
/* Queue a parley envelope id for the batched Ack written at the next flush. */
void net_queue_ack(struct conn *c, uint64_t envelope_id);
/* The answer to Ack request `id` came: AckResult (done: forget its ids) or
 * Error{unavailable} (take: *ids (caller frees) and *n receive its ids, to ack again). */
void net_ack_done(struct conn *c, uint64_t id);
void net_ack_take(struct conn *c, uint64_t id, uint64_t **ids, size_t *n);
/* Write everything queued now (also called at the end of each pass). */
void net_flush_all(void);

/* Monotonic time in ns. */
uint64_t net_now_ns(void);

#endif

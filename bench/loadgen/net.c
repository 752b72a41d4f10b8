/*
 * net.c — one epoll loop driving every connection of the load generator (see net.h).
 */
#include "net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <fcntl.h>
#include <unistd.h>

#include <sodium.h>

#define READ_CHUNK 65536
#define MAX_EVENTS 256

static int epfd = -1;
static struct net_callbacks cbs;
static struct conn *dirty_head;

uint64_t net_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int net_init(const struct net_callbacks *cb)
{
    cbs = *cb;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    return epfd < 0 ? -1 : 0;
}

static int dbuf_reserve(struct dbuf *b, size_t extra)
{
    size_t need = b->len + extra, cap = b->cap ? b->cap : 4096;
    uint8_t *p;

    if (need <= b->cap)
        return 0;
    while (cap < need)
        cap *= 2;
    p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

int net_tcp_connect(uint16_t port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

    if (fd < 0) {
        perror("loadgen: socket");
        return -1;
    }
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("loadgen: connect");
        close(fd);
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

struct conn *net_conn_new(int fd, enum net_proto proto)
{
    struct conn *c = calloc(1, sizeof *c);

    if (!c) {
        close(fd);
        return NULL;
    }
    c->fd = fd;
    c->proto = proto;
    c->next_id = 1;
    c->next_pid = 1;
    randombytes_buf(c->mask, sizeof c->mask);
    return c;
}

static void dispatch(struct conn *c);

static int write_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n) {
        ssize_t w = write(fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* Blocking read of more input into c->in. */
static int read_more(struct conn *c)
{
    ssize_t r;

    if (dbuf_reserve(&c->in, READ_CHUNK) != 0)
        return -1;
    do {
        r = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
    } while (r < 0 && errno == EINTR);
    if (r <= 0)
        return -1;
    c->in.len += (size_t)r;
    return 0;
}

static void consume(struct dbuf *b, size_t n)
{
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

int net_ws_upgrade(struct conn *c, const char *path, const char *headers)
{
    char req[2048];
    uint8_t key[16];
    char key_b64[32];
    int n;

    randombytes_buf(key, sizeof key);
    sodium_bin2base64(key_b64, sizeof key_b64, key, sizeof key, sodium_base64_VARIANT_ORIGINAL);
    n = snprintf(req, sizeof req,
                 "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                 "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Version: 13\r\n%s\r\n",
                 path, key_b64, headers ? headers : "");
    if (n < 0 || (size_t)n >= sizeof req || write_all(c->fd, req, (size_t)n) != 0)
        return -1;
    for (;;) {
        uint8_t *end = NULL;
        for (size_t i = 3; i < c->in.len; i++) {
            if (memcmp(c->in.data + i - 3, "\r\n\r\n", 4) == 0) {
                end = c->in.data + i + 1;
                break;
            }
        }
        if (end) {
            size_t head = (size_t)(end - c->in.data);
            if (head < 12 || memcmp(c->in.data + 9, "101", 3) != 0) {
                fprintf(stderr, "loadgen: upgrade of %s refused: %.*s\n", path,
                        (int)(head < 64 ? head : 64), (const char *)c->in.data);
                return -1;
            }
            consume(&c->in, head);
            return 0;
        }
        if (c->in.len > 16384 || read_more(c) != 0) {
            fprintf(stderr, "loadgen: upgrade of %s: no answer\n", path);
            return -1;
        }
    }
}

/* Blocking: read until one complete MQTT packet is at the head of c->in. */
static int mqtt_read_packet(struct conn *c, struct mqtt_packet *p)
{
    for (;;) {
        int r = mqtt_parse(c->in.data, c->in.len, NET_MAX_MESSAGE, p);
        if (r < 0)
            return -1;
        if (r > 0)
            return 0;
        if (read_more(c) != 0)
            return -1;
    }
}

int net_mqtt_connect(struct conn *c, const char *client_id, bool clean)
{
    uint8_t pkt[256];
    struct mqtt_packet p;
    size_t n = mqtt_connect_encode(pkt, sizeof pkt, client_id, clean, 0);

    if (!n || write_all(c->fd, pkt, n) != 0 || mqtt_read_packet(c, &p) != 0)
        return -1;
    if (p.type != MQTT_CONNACK || p.rc != 0) {
        fprintf(stderr, "loadgen: MQTT CONNECT refused (type %u rc %u)\n", p.type, p.rc);
        return -1;
    }
    consume(&c->in, p.consumed);
    return 0;
}

int net_mqtt_subscribe(struct conn *c, const char *topic)
{
    uint8_t pkt[256];
    struct mqtt_packet p;
    size_t n = mqtt_subscribe_encode(pkt, sizeof pkt, 1, topic, 1);

    if (!n || write_all(c->fd, pkt, n) != 0 || mqtt_read_packet(c, &p) != 0)
        return -1;
    if (p.type != MQTT_SUBACK || p.rc != 1) {
        fprintf(stderr, "loadgen: MQTT SUBSCRIBE refused (type %u rc %u)\n", p.type, p.rc);
        return -1;
    }
    consume(&c->in, p.consumed);
    return 0;
}

int net_add(struct conn *c)
{
    struct epoll_event ev;
    int fl = fcntl(c->fd, F_GETFL);

    if (fl < 0 || fcntl(c->fd, F_SETFL, fl | O_NONBLOCK) != 0)
        return -1;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = c;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0)
        return -1;
    if (c->in.len)
        dispatch(c); /* bytes that came with the set-up answer */
    return 0;
}

static void schedule(struct conn *c)
{
    if (!c->dirty) {
        c->dirty = true;
        c->next_dirty = dirty_head;
        dirty_head = c;
    }
}

uint8_t *net_reserve(struct conn *c, size_t len)
{
    if (dbuf_reserve(&c->out, len) != 0)
        return NULL;
    return c->out.data + c->out.len;
}

void net_commit(struct conn *c, size_t n)
{
    c->out.len += n;
    schedule(c);
}

void net_ws_send(struct conn *c, uint8_t opcode, const uint8_t *data, size_t len)
{
    uint8_t *p;
    size_t h;

    if (c->closed || !(p = net_reserve(c, WSC_HEADER_MAX + len)))
        return;
    h = wsc_frame_header(p, opcode, len, c->mask);
    memcpy(p + h, data, len);
    wsc_mask(p + h, len, c->mask);
    net_commit(c, h + len);
}

void net_raw_send(struct conn *c, const uint8_t *data, size_t len)
{
    uint8_t *p;

    if (c->closed || !(p = net_reserve(c, len)))
        return;
    memcpy(p, data, len);
    net_commit(c, len);
}

static void write_acks(struct conn *c)
{
    static uint8_t frame[16 + NET_MAX_PENDING_ACKS * 10];
    size_t n;

    if (!c->n_acks)
        return;
    if (c->acks_unanswered) {
        n = ps_ack_encode(frame, sizeof frame, 0, c->acks, c->n_acks);
        c->n_acks = 0;
        if (n)
            net_ws_send(c, WSC_BINARY, frame, n);
        return;
    }
    uint64_t id = c->next_id++;
    size_t slot = id % NET_ACK_RING;
    n = ps_ack_encode(frame, sizeof frame, id, c->acks, c->n_acks);
    free(c->ack_sent[slot]);
    c->ack_sent[slot] = malloc(c->n_acks * sizeof *c->acks);
    c->ack_sent_n[slot] = 0;
    if (c->ack_sent[slot]) {
        memcpy(c->ack_sent[slot], c->acks, c->n_acks * sizeof *c->acks);
        c->ack_sent_n[slot] = c->n_acks;
    }
    c->n_acks = 0;
    if (n)
        net_ws_send(c, WSC_BINARY, frame, n);
}

void net_ack_done(struct conn *c, uint64_t id)
{
    size_t slot = id % NET_ACK_RING;
    free(c->ack_sent[slot]);
    c->ack_sent[slot] = NULL;
    c->ack_sent_n[slot] = 0;
}

void net_queue_ack(struct conn *c, uint64_t envelope_id)
{
    if (c->n_acks == NET_MAX_PENDING_ACKS)
        write_acks(c);
    c->acks[c->n_acks++] = envelope_id;
    schedule(c);
}

void net_ack_take(struct conn *c, uint64_t id, uint64_t **ids, size_t *n)
{
    size_t slot = id % NET_ACK_RING;

    *ids = c->ack_sent[slot];
    *n = c->ack_sent_n[slot];
    c->ack_sent[slot] = NULL;
    c->ack_sent_n[slot] = 0;
}

static void mark_closed(struct conn *c)
{
    if (c->closed)
        return;
    c->closed = true;
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    if (cbs.on_close)
        cbs.on_close(c);
}

static void flush_one(struct conn *c)
{
    write_acks(c);
    while (c->out.len && !c->closed) {
        ssize_t w = write(c->fd, c->out.data, c->out.len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!c->want_out) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
                c->want_out = true;
            }
            return;
        }
        if (w <= 0) {
            mark_closed(c);
            return;
        }
        consume(&c->out, (size_t)w);
    }
    if (c->want_out && !c->closed) {
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
        c->want_out = false;
    }
}

void net_flush_all(void)
{
    while (dirty_head) {
        struct conn *c = dirty_head;
        dirty_head = c->next_dirty;
        c->dirty = false;
        c->next_dirty = NULL;
        flush_one(c);
    }
}

/* Parse and dispatch everything complete in c->in. */
static void dispatch(struct conn *c)
{
    size_t off = 0;

    while (!c->closed && off < c->in.len) {
        if (c->proto == NET_WS) {
            struct wsc_frame f;
            int r = wsc_frame_parse(c->in.data + off, c->in.len - off, NET_MAX_MESSAGE, &f);
            if (r == 0)
                break;
            if (r < 0 || !f.fin) {
                fprintf(stderr, "loadgen: bad or fragmented WebSocket frame\n");
                mark_closed(c);
                break;
            }
            off += f.consumed;
            if (f.opcode == WSC_BINARY || f.opcode == WSC_TEXT)
                cbs.on_ws(c, f.payload, f.len);
            else if (f.opcode == WSC_PING)
                net_ws_send(c, WSC_PONG, f.payload, f.len);
            else if (f.opcode == WSC_CLOSE)
                mark_closed(c);
        } else {
            struct mqtt_packet p;
            int r = mqtt_parse(c->in.data + off, c->in.len - off, NET_MAX_MESSAGE, &p);
            if (r == 0)
                break;
            if (r < 0) {
                fprintf(stderr, "loadgen: bad MQTT packet\n");
                mark_closed(c);
                break;
            }
            off += p.consumed;
            cbs.on_mqtt(c, &p);
        }
    }
    if (off)
        consume(&c->in, off);
}

static void on_readable(struct conn *c)
{
    for (;;) {
        ssize_t r;
        if (dbuf_reserve(&c->in, READ_CHUNK) != 0) {
            mark_closed(c);
            return;
        }
        r = read(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (r <= 0) {
            dispatch(c);
            mark_closed(c);
            return;
        }
        c->in.len += (size_t)r;
        if ((size_t)r < READ_CHUNK)
            break;
    }
    dispatch(c);
}

int net_poll(int timeout_ms)
{
    struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(epfd, evs, MAX_EVENTS, timeout_ms);

    if (n < 0)
        return errno == EINTR ? 0 : -1;
    for (int i = 0; i < n; i++) {
        struct conn *c = evs[i].data.ptr;
        if (c->closed)
            continue;
        if (evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP))
            on_readable(c);
        if (!c->closed && (evs[i].events & EPOLLOUT))
            schedule(c);
    }
    net_flush_all();
    return n;
}

void net_conn_free(struct conn *c)
{
    if (!c)
        return;
    if (!c->closed)
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    /* Remove from the flush list if queued. */
    for (struct conn **pp = &dirty_head; *pp; pp = &(*pp)->next_dirty) {
        if (*pp == c) {
            *pp = c->next_dirty;
            break;
        }
    }
    close(c->fd);
    for (size_t i = 0; i < NET_ACK_RING; i++)
        free(c->ack_sent[i]);
    free(c->in.data);
    free(c->out.data);
    free(c);
}

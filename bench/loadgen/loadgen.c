/*
 * loadgen.c — the benchmark's load generator (issue #5): one thread, one epoll loop
 * (net.c) driving every connection, for three targets that it speaks natively:
 *   parley    parleyd's /v1/stream (protobuf Send / SendResult / Envelope / Ack)
 *   mosquitto MQTT 3.1.1 QoS 1 (CONNECT, SUBSCRIBE, PUBLISH, PUBACK)
 *   bare      bench/relay: WebSocket, message = 4-byte BE destination id + payload
 * Workloads: relay (P pairs, window W), ping-pong (P=1, W=1), offline drain, idle
 * connections. Every payload is 200 bytes whose first 8 are the monotonic send time
 * (ns), the rest random. Results are printed as name=value lines for scripts/bench.sh.
 *
 *   loadgen --target parley|mosquitto|bare --port N --server-pid PID [--mode quick|full]
 *           [--only relay,pingpong,drain,idle] [--tls]   (--tls: parley idle over TLS)
 *           [--pairs N] [--seconds S]   (by hand: one relay run with N pairs, S seconds)
 * Sizes: quick = relay P=100, drain 5,000 (+10x500), 500 idle (250 TLS); full =
 * relay P=1, 100, 1000, drain 100,000 (+100x1,000), 10,000 idle (plain and TLS).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <sodium.h>

#include "http_client.h"
#include "net.h"
#include "setup.h"

#define PAYLOAD 200
#define POOL_BYTES 65536
#define FILL_WINDOW 256
#define IDLE_DEVICES_PER_USER 16
#define FILL_TOTAL_IN_FLIGHT 8192 /* drain fill: below the server's writer queue (20,000) */
#define REQ_RING 1024            /* parley request id -> message, for retries */
#define RETRY_DELAY_NS 10000000ull /* first back-off after Error{unavailable}; doubles per */
#define RETRY_MAX_SHIFT 6          /* try of the same message, up to 640 ms */

enum target { T_PARLEY, T_MOSQ, T_BARE };
enum phase { PH_IDLE, PH_RUN, PH_DRAIN, PH_FILL };
enum role { R_SENDER = 1, R_RECEIVER = 2, R_IDLE = 3 };

struct pair {
    unsigned idx;
    struct conn *a, *b;
    uint64_t sent, delivered, acked, errors;
    uint64_t limit;              /* fill: stop after this many sent (0 = no limit) */
    const struct pdevice *da, *db;
    char topic[32];
    uint8_t cmid_base[8];
    bool drained;
    uint64_t req_seq[REQ_RING];  /* parley: message number and send time of request id % */
    uint64_t req_t0[REQ_RING];   /* REQ_RING, to resend it after Error{unavailable} */
    uint8_t req_try[REQ_RING];   /* and how often it was refused so far */
};

static struct {
    enum target target;
    uint16_t port;
    int server_pid;
    bool full, tls;
    const char *only;
    unsigned pairs_override;     /* --pairs N: relay with N pairs only */
    double seconds_override;     /* --seconds S: measured seconds per relay run */
    const char *label, *label_rate;
    enum phase phase;
    unsigned window;
    bool measuring;
    uint32_t *lat;
    size_t n_lat, cap_lat;
    uint64_t delivered, acked, errors, retries, ack_deleted, drained;
    unsigned fill_window;
    uint8_t pool[POOL_BYTES];
    struct http_client *hc;
    struct pdevice *relay_dev;   /* 2 per pair: [2i] sender, [2i+1] receiver */
    unsigned relay_pairs;
} G;

/* ---------------------------------------------------------------- measuring */

static uint64_t proc_cpu_ticks(int pid)
{
    char path[64], buf[1024];
    unsigned long ut = 0, st = 0;
    FILE *f;
    char *p;

    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    if (!fgets(buf, sizeof buf, f)) {
        fclose(f);
        return 0;
    }
    fclose(f);
    p = strrchr(buf, ')');
    /* after ") ": state(3) ... utime is field 14, stime 15 */
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
        return 0;
    return (uint64_t)ut + st;
}

static double self_cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static long proc_rss_kib(int pid)
{
    char path[64], line[256];
    long kib = -1;
    FILE *f;

    snprintf(path, sizeof path, "/proc/%d/status", pid);
    f = fopen(path, "r");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
            break;
    fclose(f);
    return kib;
}

struct cpu_mark {
    uint64_t wall_ns, server_ticks;
    double self_s;
};

static void cpu_mark(struct cpu_mark *m)
{
    m->wall_ns = net_now_ns();
    m->server_ticks = proc_cpu_ticks(G.server_pid);
    m->self_s = self_cpu_s();
}

/* PARLEY_BENCH_HOOK, when set: a command run as each measured phase starts and ends,
 * with "start" or "end", the phase's name and the server's pid appended, so a profiler
 * can be switched on for that phase alone (e.g. callgrind_control -i on|off; see
 * docs/operations.md). It runs before the start mark and after the end mark. */
static void phase_hook(const char *edge, const char *phase)
{
    const char *hook = getenv("PARLEY_BENCH_HOOK");
    char cmd[512];

    if (!hook || !*hook)
        return;
    if (snprintf(cmd, sizeof cmd, "%s %s %s %ld", hook, edge, phase, (long)G.server_pid) >=
        (int)sizeof cmd) {
        fprintf(stderr, "loadgen: PARLEY_BENCH_HOOK is too long\n");
        return;
    }
    if (system(cmd) != 0)
        fprintf(stderr, "loadgen: PARLEY_BENCH_HOOK failed: %s\n", cmd);
}

static void cpu_report(const char *prefix, const struct cpu_mark *a, const struct cpu_mark *b)
{
    double wall = (double)(b->wall_ns - a->wall_ns) / 1e9;
    double srv = (double)(b->server_ticks - a->server_ticks) / (double)sysconf(_SC_CLK_TCK);

    if (wall <= 0)
        return;
    printf("%s.%s_server_cpu_pct=%.1f\n", prefix, G.label, 100.0 * srv / wall);
    printf("%s.%s_loadgen_cpu_pct=%.1f\n", prefix, G.label, 100.0 * (b->self_s - a->self_s) / wall);
}

static void record_latency(const uint8_t *payload, size_t len)
{
    uint64_t t0, now;

    if (!G.measuring || len < 8)
        return;
    memcpy(&t0, payload, 8);
    now = net_now_ns();
    if (now < t0)
        return;
    if (G.n_lat == G.cap_lat) {
        size_t cap = G.cap_lat ? G.cap_lat * 2 : 1u << 16;
        uint32_t *p = cap <= (64u << 20) ? realloc(G.lat, cap * sizeof *p) : NULL;
        if (!p)
            return;
        G.lat = p;
        G.cap_lat = cap;
    }
    G.lat[G.n_lat++] = (uint32_t)((now - t0) / 1000 > UINT32_MAX ? UINT32_MAX : (now - t0) / 1000);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(double q)
{
    size_t i;
    if (!G.n_lat)
        return 0;
    i = (size_t)(q * (double)(G.n_lat - 1) + 0.5);
    return G.lat[i];
}

/* ---------------------------------------------------------------- sending */

static void make_payload(const struct pair *p, uint64_t seq, uint64_t t0,
                         uint8_t out[PAYLOAD])
{
    size_t off = (size_t)((seq * 131 + p->idx * 17) % (POOL_BYTES - PAYLOAD));

    memcpy(out, G.pool + off, PAYLOAD);
    memcpy(out, &t0, 8);
}

/* Send message number seq of pair p, stamped t0 (its first send time); tries: refusals
 * so far. */
static void send_msg(struct pair *p, uint64_t seq, uint64_t t0, uint8_t tries)
{
    static uint8_t frame[1024];
    uint8_t payload[PAYLOAD];
    size_t n = 0;

    make_payload(p, seq, t0, payload);
    switch (G.target) {
    case T_PARLEY: {
        uint8_t cmid[16];
        uint64_t id = p->a->next_id++;
        memcpy(cmid, p->cmid_base, 8);
        memcpy(cmid + 8, &seq, 8); /* a retry reuses the id: the server deduplicates */
        p->req_seq[id % REQ_RING] = seq;
        p->req_t0[id % REQ_RING] = t0;
        p->req_try[id % REQ_RING] = tries;
        n = ps_send_encode(frame, sizeof frame, id, cmid, p->db->user_id, p->db->device_id,
                           payload, PAYLOAD);
        net_ws_send(p->a, WSC_BINARY, frame, n);
        break;
    }
    case T_MOSQ: {
        uint8_t *w = net_reserve(p->a, 512);
        if (p->a->next_pid == 0)
            p->a->next_pid = 1;
        if (w)
            n = mqtt_publish_encode(w, 512, p->topic, p->a->next_pid++, payload, PAYLOAD);
        net_commit(p->a, n);
        break;
    }
    case T_BARE: {
        uint32_t dest = 2 * p->idx + 1;
        frame[0] = (uint8_t)(dest >> 24);
        frame[1] = (uint8_t)(dest >> 16);
        frame[2] = (uint8_t)(dest >> 8);
        frame[3] = (uint8_t)dest;
        memcpy(frame + 4, payload, PAYLOAD);
        net_ws_send(p->a, WSC_BINARY, frame, 4 + PAYLOAD);
        p->acked++; /* no sender ack in a bare relay */
        break;
    }
    }
}

static void send_one(struct pair *p)
{
    send_msg(p, p->sent, net_now_ns(), 0);
    p->sent++;
}

static void pump(struct pair *p)
{
    if (G.phase == PH_FILL) {
        while (p->sent - p->acked < G.fill_window && p->sent < p->limit)
            send_one(p);
        return;
    }
    if (G.phase != PH_RUN)
        return;
    for (;;) {
        uint64_t done = p->delivered < p->acked ? p->delivered : p->acked;
        if (p->sent - done >= G.window)
            break;
        send_one(p);
    }
}

/* ---------------------------------------------------------------- retries */

/* parleyd answers Error{unavailable} when its writer queue is full (back-pressure). Like a
 * real client, the generator resends after a short back-off: the same message (same
 * client_message_id, original send time) or the same envelope ids. The back-off doubles
 * with each refusal of the same message; one FIFO per back-off level keeps due times
 * ordered within each. */
struct retry {
    struct pair *p;   /* a Send to repeat (seq, t0, tries) */
    uint64_t seq, t0;
    uint8_t tries;
    struct conn *c;   /* or an Ack to repeat (ids, n; owned) */
    uint64_t *ids;
    size_t n;
    uint64_t due;
};

struct retry_fifo {
    struct retry *v;
    size_t head, len, cap;
};
static struct retry_fifo R[RETRY_MAX_SHIFT + 1];
static size_t retries_pending;

static void retry_add(const struct retry *r)
{
    unsigned level = r->tries < RETRY_MAX_SHIFT ? r->tries : RETRY_MAX_SHIFT;
    struct retry_fifo *q = &R[level];

    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 1024;
        struct retry *v = realloc(q->v, cap * sizeof *v);
        if (!v) {
            free(r->ids);
            return;
        }
        q->v = v;
        q->cap = cap;
    }
    q->v[q->len] = *r;
    q->v[q->len].due = net_now_ns() + (RETRY_DELAY_NS << level);
    q->len++;
    retries_pending++;
}

static void retry_run_due(void)
{
    uint64_t now = net_now_ns();

    for (unsigned level = 0; level <= RETRY_MAX_SHIFT; level++) {
        struct retry_fifo *q = &R[level];
        while (q->head < q->len && q->v[q->head].due <= now) {
            struct retry r = q->v[q->head++];
            retries_pending--;
            if (r.p) {
                send_msg(r.p, r.seq, r.t0, r.tries);
            } else {
                for (size_t i = 0; i < r.n; i++)
                    net_queue_ack(r.c, r.ids[i]);
                free(r.ids);
            }
        }
        if (q->head == q->len)
            q->head = q->len = 0;
    }
}

/* Forget every pending retry (the connections of a run are about to close). */
static void retry_clear(void)
{
    for (unsigned level = 0; level <= RETRY_MAX_SHIFT; level++) {
        for (size_t i = R[level].head; i < R[level].len; i++)
            free(R[level].v[i].ids);
        R[level].head = R[level].len = 0;
    }
    retries_pending = 0;
}

/* ---------------------------------------------------------------- receiving */

static void delivered(struct pair *p, const uint8_t *payload, size_t len)
{
    if (G.phase == PH_IDLE)
        return; /* left over from an earlier run: acked, not counted */
    if (p)
        p->delivered++;
    G.delivered++;
    record_latency(payload, len);
}

static void on_ws(struct conn *c, const uint8_t *msg, size_t len)
{
    struct pair *p = c->user;

    if (G.target == T_BARE) {
        if (c->role == R_RECEIVER && len >= 4) {
            delivered(p, msg + 4, len - 4);
            if (p)
                pump(p);
        }
        return;
    }
    struct ps_server_frame f;
    if (ps_server_decode(msg, len, &f) != 0) {
        fprintf(stderr, "loadgen: undecodable ServerFrame\n");
        return;
    }
    switch (f.body) {
    case PS_ENVELOPE:
        net_queue_ack(c, f.envelope_id);
        if (f.kind == 0)
            delivered(p, f.ciphertext, f.ct_len);
        break;
    case PS_SEND_RESULT:
        if (f.status > 1) {
            if (G.errors++ < 5)
                fprintf(stderr, "loadgen: SendResult status %u\n", f.status);
            if (p)
                p->delivered++; /* nothing will arrive: keep the window moving */
        }
        if (p)
            p->acked++;
        G.acked++;
        break;
    case PS_ERROR:
        if (p && c->role == R_SENDER && f.err_code_len == 11 &&
            !memcmp(f.err_code, "unavailable", 11)) {
            /* The server's writer queue is full: back-pressure. Retry, as clients must,
             * with the same client_message_id. */
            size_t k = f.id % REQ_RING;
            uint8_t tries = p->req_try[k] < 255 ? (uint8_t)(p->req_try[k] + 1) : 255;
            struct retry r = {p, p->req_seq[k], p->req_t0[k], tries, NULL, NULL, 0, 0};
            G.retries++;
            retry_add(&r);
            break;
        }
        if (c->role == R_RECEIVER && f.err_code_len == 11 &&
            !memcmp(f.err_code, "unavailable", 11)) {
            struct retry r = {NULL, 0, 0, 0, c, NULL, 0, 0};
            net_ack_take(c, f.id, &r.ids, &r.n); /* the same envelope ids again */
            G.retries++;
            if (r.ids)
                retry_add(&r);
            break;
        }
        if (G.errors++ < 5)
            fprintf(stderr, "loadgen: Error %.*s (request %" PRIu64 ")\n", (int)f.err_code_len,
                    (const char *)f.err_code, f.id);
        if (p && c->role == R_SENDER) {
            p->acked++;
            p->delivered++;
        }
        break;
    case PS_ACK_RESULT:
        net_ack_done(c, f.id);
        G.ack_deleted += f.count;
        break;
    case PS_DRAINED:
        if (p && !p->drained && c->role == R_RECEIVER) {
            p->drained = true;
            G.drained++;
        }
        break;
    default:
        break;
    }
    if (p)
        pump(p);
}

static void on_mqtt(struct conn *c, const struct mqtt_packet *m)
{
    struct pair *p = c->user;

    if (m->type == MQTT_PUBLISH) {
        uint8_t *w = net_reserve(c, 4);
        if (w && ((m->flags >> 1) & 3) == 1)
            net_commit(c, mqtt_puback_encode(w, 4, m->pid));
        delivered(p, m->payload, m->payload_len);
    } else if (m->type == MQTT_PUBACK) {
        if (p)
            p->acked++;
        G.acked++;
    }
    if (p)
        pump(p);
}

static void on_close(struct conn *c)
{
    if (c->role != R_IDLE && G.phase != PH_IDLE)
        fprintf(stderr, "loadgen: a connection closed during a run\n");
}

/* ---------------------------------------------------------------- connecting */

static struct conn *connect_ws(const char *path, const struct pdevice *d)
{
    char hdr[128] = "";
    int fd = net_tcp_connect(G.port);
    struct conn *c;

    if (fd < 0 || !(c = net_conn_new(fd, NET_WS)))
        return NULL;
    if (d)
        snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", d->token);
    if (net_ws_upgrade(c, path, hdr) != 0) {
        net_conn_free(c);
        return NULL;
    }
    return c;
}

static struct conn *connect_mqtt(const char *client_id, bool clean, const char *subscribe)
{
    int fd = net_tcp_connect(G.port);
    struct conn *c;

    if (fd < 0 || !(c = net_conn_new(fd, NET_MQTT)))
        return NULL;
    if (net_mqtt_connect(c, client_id, clean) != 0 ||
        (subscribe && net_mqtt_subscribe(c, subscribe) != 0)) {
        net_conn_free(c);
        return NULL;
    }
    return c;
}

/* One end of pair p (sender or receiver), set up and added to the loop. */
static struct conn *connect_end(struct pair *p, enum role role, const char *tag, bool clean,
                                bool subscribe)
{
    char path[64], id[64];
    struct conn *c = NULL;

    switch (G.target) {
    case T_PARLEY:
        c = connect_ws("/v1/stream", role == R_SENDER ? p->da : p->db);
        break;
    case T_BARE:
        snprintf(path, sizeof path, "/relay/%u", 2 * p->idx + (role == R_RECEIVER));
        c = connect_ws(path, NULL);
        break;
    case T_MOSQ:
        snprintf(id, sizeof id, "%s%c%u", tag, role == R_SENDER ? 's' : 'r', p->idx);
        c = connect_mqtt(id, role == R_SENDER ? true : clean,
                         role == R_RECEIVER && subscribe ? p->topic : NULL);
        break;
    }
    if (!c)
        return NULL;
    c->user = p;
    c->role = role;
    if (net_add(c) != 0) {
        net_conn_free(c);
        return NULL;
    }
    return c;
}

static void pairs_init(struct pair *ps, unsigned n, const struct pdevice *devs, const char *tag)
{
    memset(ps, 0, n * sizeof *ps);
    for (unsigned i = 0; i < n; i++) {
        ps[i].idx = i;
        if (devs) {
            ps[i].da = &devs[2 * i];
            ps[i].db = &devs[2 * i + 1];
        }
        snprintf(ps[i].topic, sizeof ps[i].topic, "%s/%u", tag, i);
        randombytes_buf(ps[i].cmid_base, sizeof ps[i].cmid_base);
    }
}

static void pairs_close(struct pair *ps, unsigned n)
{
    retry_clear();
    for (unsigned i = 0; i < n; i++) {
        net_conn_free(ps[i].a);
        net_conn_free(ps[i].b);
        ps[i].a = ps[i].b = NULL;
    }
}

/* Poll until done() or the deadline (seconds from now). */
static bool loop_until(bool (*done)(void *), void *arg, double seconds)
{
    uint64_t end = net_now_ns() + (uint64_t)(seconds * 1e9);
    while (!(done && done(arg))) {
        if (net_now_ns() >= end)
            return false;
        if (net_poll(5) < 0)
            return false;
        if (retries_pending) {
            retry_run_due();
            net_flush_all();
        }
    }
    return true;
}

struct want {
    struct pair *ps;
    unsigned n;
    uint64_t target;
};

static bool all_drained(void *arg)
{
    const struct want *w = arg;
    return G.drained >= w->n;
}

static bool all_settled(void *arg)
{
    const struct want *w = arg;
    for (unsigned i = 0; i < w->n; i++)
        if (w->ps[i].delivered < w->ps[i].sent || w->ps[i].acked < w->ps[i].sent)
            return false;
    return true;
}

static bool all_acked(void *arg)
{
    const struct want *w = arg;
    for (unsigned i = 0; i < w->n; i++)
        if (w->ps[i].acked < w->ps[i].limit)
            return false;
    return true;
}

static bool delivered_reached(void *arg)
{
    const struct want *w = arg;
    return G.delivered >= w->target;
}

static bool acks_reached(void *arg)
{
    const struct want *w = arg;
    return G.ack_deleted >= w->target;
}

/* ---------------------------------------------------------------- workloads */

static int run_relay(unsigned n_pairs, unsigned window, const char *name)
{
    double warm = G.full ? 2.0 : 0.5, meas = G.full ? 10.0 : 2.0;

    if (G.seconds_override > 0)
        meas = G.seconds_override;
    struct pair *ps = calloc(n_pairs, sizeof *ps);
    struct want w = {ps, n_pairs, 0};
    struct cpu_mark m0, m1;
    uint64_t d0, d1;
    int rc = -1;

    if (!ps)
        return -1;
    if (G.target == T_PARLEY && n_pairs > G.relay_pairs) {
        fprintf(stderr, "loadgen: only %u parley pairs were set up\n", G.relay_pairs);
        goto out;
    }
    pairs_init(ps, n_pairs, G.relay_dev, "relay");
    G.phase = PH_IDLE;
    G.drained = 0;
    for (unsigned i = 0; i < n_pairs; i++) {
        if (!(ps[i].b = connect_end(&ps[i], R_RECEIVER, "relay", true, true)) ||
            !(ps[i].a = connect_end(&ps[i], R_SENDER, "relay", true, false)))
            goto out;
        /* Acks unanswered, as MQTT's PUBACK: SendResult stays the durable answer. */
        ps[i].b->acks_unanswered = true;
    }
    if (G.target == T_PARLEY && !loop_until(all_drained, &w, 30)) {
        fprintf(stderr, "loadgen: receivers did not report Drained\n");
        goto out;
    }
    loop_until(NULL, NULL, 0.2);
    G.window = window;
    G.n_lat = 0;
    G.errors = 0;
    G.retries = 0;
    G.phase = PH_RUN;
    for (unsigned i = 0; i < n_pairs; i++)
        pump(&ps[i]);
    net_flush_all();
    loop_until(NULL, NULL, warm);
    phase_hook("start", name);
    d0 = G.delivered;
    cpu_mark(&m0);
    G.measuring = true;
    loop_until(NULL, NULL, meas);
    G.measuring = false;
    d1 = G.delivered;
    cpu_mark(&m1);
    phase_hook("end", name);
    G.phase = PH_DRAIN;
    if (!loop_until(all_settled, &w, 30))
        fprintf(stderr, "loadgen: %s: not every message arrived after the run\n", name);
    loop_until(NULL, NULL, 0.3); /* let the last acks reach the server */
    G.phase = PH_IDLE;
    qsort(G.lat, G.n_lat, sizeof *G.lat, cmp_u32);
    printf("relay.%s.%s_msgs_per_s=%.0f\n", name, G.label_rate,
           (double)(d1 - d0) / ((double)(m1.wall_ns - m0.wall_ns) / 1e9));
    printf("relay.%s.%s_p50_us=%u\n", name, G.label, pct(0.50));
    printf("relay.%s.%s_p99_us=%u\n", name, G.label, pct(0.99));
    printf("relay.%s.%s_p999_us=%u\n", name, G.label, pct(0.999));
    printf("relay.%s.%s_errors=%" PRIu64 "\n", name, G.label, G.errors);
    if (G.target == T_PARLEY)
        printf("relay.%s.parley_retries=%" PRIu64 "\n", name, G.retries);
    {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "relay.%s", name);
        cpu_report(prefix, &m0, &m1);
    }
    fflush(stdout);
    rc = 0;
out:
    G.phase = PH_IDLE;
    pairs_close(ps, n_pairs);
    free(ps);
    return rc;
}

/* Offline drain: per_device envelopes queued for each of n receivers while offline, then
 * they connect; time from the first connect to the last envelope delivered and acked. */
static int run_drain(unsigned n, uint64_t per_device, const struct pdevice *devs,
                     const char *name)
{
    struct pair *ps = calloc(n, sizeof *ps);
    struct want w = {ps, n, 0};
    struct cpu_mark m0, m1;
    char tag[32];
    uint64_t t1;
    int rc = -1;

    if (!ps)
        return -1;
    snprintf(tag, sizeof tag, "drain%s", name);
    pairs_init(ps, n, devs, tag);
    G.phase = PH_IDLE;
    if (G.target == T_MOSQ) {
        /* Persistent sessions: subscribe with clean session 0, then go away. */
        for (unsigned i = 0; i < n; i++) {
            uint8_t d[2];
            if (!(ps[i].b = connect_end(&ps[i], R_RECEIVER, tag, false, true)))
                goto out;
            net_raw_send(ps[i].b, d, mqtt_disconnect_encode(d, sizeof d));
        }
        net_flush_all();
        loop_until(NULL, NULL, 0.2);
        for (unsigned i = 0; i < n; i++) {
            net_conn_free(ps[i].b);
            ps[i].b = NULL;
        }
    }
    for (unsigned i = 0; i < n; i++) {
        ps[i].limit = per_device;
        if (!(ps[i].a = connect_end(&ps[i], R_SENDER, tag, true, false)))
            goto out;
    }
    G.errors = 0;
    G.fill_window = FILL_TOTAL_IN_FLIGHT / n;
    if (G.fill_window > FILL_WINDOW)
        G.fill_window = FILL_WINDOW;
    if (G.fill_window == 0)
        G.fill_window = 1;
    G.phase = PH_FILL;
    for (unsigned i = 0; i < n; i++)
        pump(&ps[i]);
    net_flush_all();
    if (!loop_until(all_acked, &w, 600) || G.errors) {
        fprintf(stderr, "loadgen: drain %s: filling the queue failed\n", name);
        goto out;
    }
    G.phase = PH_IDLE;
    for (unsigned i = 0; i < n; i++) {
        net_conn_free(ps[i].a);
        ps[i].a = NULL;
    }
    loop_until(NULL, NULL, 0.5);

    G.delivered = 0;
    G.ack_deleted = 0;
    w.target = (uint64_t)n * per_device;
    G.phase = PH_DRAIN;
    phase_hook("start", tag);
    cpu_mark(&m0);
    for (unsigned i = 0; i < n; i++)
        if (!(ps[i].b = connect_end(&ps[i], R_RECEIVER, tag, false, false)))
            goto out;
    if (!loop_until(delivered_reached, &w, 600)) {
        fprintf(stderr, "loadgen: drain %s: only %" PRIu64 " of %" PRIu64 " delivered\n", name,
                G.delivered, w.target);
        goto out;
    }
    net_flush_all(); /* the last acks */
    cpu_mark(&m1);
    t1 = m1.wall_ns;
    printf("drain.%s.%s_s=%.3f\n", name, G.label, (double)(t1 - m0.wall_ns) / 1e9);
    if (G.target == T_PARLEY) {
        /* Informational: until the server confirmed deleting every acked envelope. */
        if (loop_until(acks_reached, &w, 60))
            printf("drain.%s.parley_ack_confirmed_s=%.3f\n", name,
                   (double)(net_now_ns() - m0.wall_ns) / 1e9);
    }
    phase_hook("end", tag); /* after the deletions, for a profile of the whole drain */
    {
        char prefix[64];
        snprintf(prefix, sizeof prefix, "drain.%s", name);
        cpu_report(prefix, &m0, &m1);
    }
    fflush(stdout);
    rc = 0;
out:
    G.phase = PH_IDLE;
    pairs_close(ps, n);
    free(ps);
    return rc;
}

/* n idle connections: server RSS delta per connection. */
static int run_idle(unsigned n, const struct pdevice *devs)
{
    struct conn **cs = calloc(n, sizeof *cs);
    struct ws_client **tls = calloc(n, sizeof *tls);
    long before, after;
    unsigned ok = 0;
    int rc = -1;

    if (!cs || !tls)
        goto out;
    loop_until(NULL, NULL, G.full ? 1.0 : 0.3);
    before = proc_rss_kib(G.server_pid);
    for (unsigned i = 0; i < n; i++) {
        char path[64], id[32];
        if (G.tls) {
            char url[64], hdr[128];
            struct http_client_config cfg;
            int status = 0;
            memset(&cfg, 0, sizeof cfg);
            snprintf(url, sizeof url, "https://127.0.0.1:%u", (unsigned)G.port);
            cfg.url = url;
            cfg.insecure_skip_verify = true; /* the script's self-signed certificate */
            snprintf(hdr, sizeof hdr, "Authorization: Bearer %s\r\n", devs[i].token);
            if (ws_client_connect(&cfg, "/v1/stream", hdr, &status, &tls[i]) != PARLEY_OK) {
                fprintf(stderr, "loadgen: TLS stream %u refused (HTTP %d)\n", i, status);
                goto out;
            }
        } else {
            if (G.target == T_PARLEY) {
                cs[i] = connect_ws("/v1/stream", &devs[i]);
            } else if (G.target == T_BARE) {
                snprintf(path, sizeof path, "/relay/%u", i);
                cs[i] = connect_ws(path, NULL);
            } else {
                snprintf(id, sizeof id, "idle%u", i);
                cs[i] = connect_mqtt(id, true, NULL);
            }
            if (!cs[i])
                goto out;
            cs[i]->role = R_IDLE;
            if (net_add(cs[i]) != 0)
                goto out;
        }
        ok++;
        if (i % 256 == 255)
            net_poll(0);
    }
    loop_until(NULL, NULL, G.full ? 2.0 : 1.0);
    after = proc_rss_kib(G.server_pid);
    if (before < 0 || after < 0)
        goto out;
    for (unsigned i = 0; i < n; i++) {
        if (cs[i] && cs[i]->closed) {
            fprintf(stderr, "loadgen: idle: the server closed connection %u\n", i);
            goto out;
        }
    }
    printf("idle.%s%s_conns=%u\n", G.label, G.tls ? "_tls" : "", n);
    printf("idle.%s%s_bytes_per_conn=%.0f\n", G.label, G.tls ? "_tls" : "",
           (double)(after - before) * 1024.0 / n);
    fflush(stdout);
    rc = 0;
out:
    if (rc)
        fprintf(stderr, "loadgen: idle: %u of %u connections made\n", ok, n);
    for (unsigned i = 0; i < n; i++) {
        if (cs && cs[i])
            net_conn_free(cs[i]);
        if (tls && tls[i])
            ws_client_free(tls[i]);
    }
    free(cs);
    free(tls);
    return rc;
}

/* ---------------------------------------------------------------- main */

static bool wanted(const char *w)
{
    const char *s = G.only;
    size_t n = strlen(w);

    if (!s)
        return true;
    while (*s) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        if (len == n && !memcmp(s, w, n))
            return true;
        s += len + (e != NULL);
    }
    return false;
}

static int usage(void)
{
    fputs("usage: loadgen --target parley|mosquitto|bare --port N --server-pid PID\n"
          "               [--mode quick|full] [--only relay,pingpong,drain,idle] [--tls]\n"
          "               [--pairs N] [--seconds S]   (one relay run with N pairs, S s)\n",
          stderr);
    return 2;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
    char *end = NULL;
    unsigned long v;
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *end || v > max)
        return -1;
    *out = v;
    return 0;
}

/* Create n parley users with `devices` devices each (keys uploaded when keys). */
static struct pdevice *make_users(const char *prefix, unsigned n, unsigned devices, bool keys)
{
    struct pdevice *d = calloc((size_t)n * devices, sizeof *d);
    uint64_t t0 = net_now_ns();

    if (!d)
        return NULL;
    /* The process id in the name: several runs against one server (make bench's
     * interleaved rounds) each register their own users. */
    unsigned tag = (unsigned)getpid() % 100000u;
    for (unsigned i = 0; i < n; i++) {
        char name[33];
        snprintf(name, sizeof name, "%s%u_%u", prefix, tag, i);
        if (setup_user(G.hc, name, devices, keys, &d[(size_t)i * devices]) != 0) {
            free(d);
            return NULL;
        }
    }
    fprintf(stderr, "loadgen: set up %u %s users x %u devices in %.1f s\n", n, prefix, devices,
            (double)(net_now_ns() - t0) / 1e9);
    return d;
}

int main(int argc, char **argv)
{
    unsigned long port = 0, pid = 0;
    const char *target = NULL, *mode = "quick";
    static const struct net_callbacks cb = {on_ws, on_mqtt, on_close};
    struct pdevice *drain1 = NULL, *drainm = NULL, *idle = NULL;
    static const unsigned full_pairs[] = {1, 100, 1000}, quick_pairs[] = {100};
    const unsigned *pairs_list;
    unsigned n_pairs_list;
    unsigned drain_single, drain_multi_n, drain_multi_each, idle_n;
    int failures = 0;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--target") && v) {
            target = v;
            i++;
        } else if (!strcmp(a, "--port") && v) {
            if (parse_uint(v, 65535, &port) != 0)
                return usage();
            i++;
        } else if (!strcmp(a, "--server-pid") && v) {
            if (parse_uint(v, 4194304, &pid) != 0)
                return usage();
            i++;
        } else if (!strcmp(a, "--mode") && v) {
            mode = v;
            i++;
        } else if (!strcmp(a, "--only") && v) {
            G.only = v;
            i++;
        } else if (!strcmp(a, "--pairs") && v) {
            unsigned long n;
            if (parse_uint(v, 100000, &n) != 0 || n == 0)
                return usage();
            G.pairs_override = (unsigned)n;
            i++;
        } else if (!strcmp(a, "--seconds") && v) {
            unsigned long n;
            if (parse_uint(v, 3600, &n) != 0 || n == 0)
                return usage();
            G.seconds_override = (double)n;
            i++;
        } else if (!strcmp(a, "--tls")) {
            G.tls = true;
        } else {
            return usage();
        }
    }
    if (!target || !port || !pid || (strcmp(mode, "quick") && strcmp(mode, "full")))
        return usage();
    G.full = !strcmp(mode, "full");
    if (!strcmp(target, "parley")) {
        G.target = T_PARLEY;
        G.label = G.label_rate = "parley";
    } else if (!strcmp(target, "mosquitto")) {
        G.target = T_MOSQ;
        G.label = "mosquitto";
        G.label_rate = "mosquitto_qos1";
    } else if (!strcmp(target, "bare")) {
        G.target = T_BARE;
        G.label = G.label_rate = "bare";
    } else {
        return usage();
    }
    if (G.tls && G.target != T_PARLEY)
        return usage();
    G.port = (uint16_t)port;
    G.server_pid = (int)pid;
    pairs_list = G.full ? full_pairs : quick_pairs;
    n_pairs_list = G.full ? 3 : 1;
    if (G.pairs_override) {
        pairs_list = &G.pairs_override;
        n_pairs_list = 1;
    }
    drain_single = G.full ? 100000 : 5000;
    drain_multi_n = G.full ? 100 : 10;
    drain_multi_each = G.full ? 1000 : 500;
    idle_n = G.full ? 10000 : G.tls ? 250 : 500;

    if (sodium_init() < 0 || net_init(&cb) != 0)
        return 1;
    randombytes_buf(G.pool, sizeof G.pool);
    if (G.target == T_PARLEY) {
        if (setup_open(G.port, G.tls, &G.hc) != 0)
            return 1;
        if (!G.tls && (wanted("relay") || wanted("pingpong"))) {
            G.relay_pairs = pairs_list[n_pairs_list - 1];
            if (!(G.relay_dev = make_users("relay", 2 * G.relay_pairs, 1, true)))
                return 1;
        }
        if (!G.tls && wanted("drain") &&
            (!(drain1 = make_users("drainone", 2, 1, true)) ||
             !(drainm = make_users("drainmany", 2 * drain_multi_n, 1, true))))
            return 1;
        if (wanted("idle") &&
            !(idle = make_users("idle", (idle_n + IDLE_DEVICES_PER_USER - 1) /
                                            IDLE_DEVICES_PER_USER,
                                IDLE_DEVICES_PER_USER, false)))
            return 1;
        fflush(stderr);
    }
    if (!G.tls) {
        if (wanted("pingpong") && run_relay(1, 1, "pingpong") != 0)
            failures++;
        if (wanted("relay"))
            for (unsigned i = 0; i < n_pairs_list; i++) {
                char name[16];
                snprintf(name, sizeof name, "p%u", pairs_list[i]);
                if (run_relay(pairs_list[i], 32, name) != 0)
                    failures++;
            }
        if (wanted("drain") && G.target != T_BARE) {
            if (run_drain(1, drain_single, drain1, "single") != 0)
                failures++;
            if (run_drain(drain_multi_n, drain_multi_each, drainm, "multi") != 0)
                failures++;
        }
    }
    if (wanted("idle") && run_idle(idle_n, idle) != 0)
        failures++;
    free(drain1);
    free(drainm);
    free(idle);
    free(G.relay_dev);
    free(G.lat);
    for (unsigned level = 0; level <= RETRY_MAX_SHIFT; level++)
        free(R[level].v);
    http_client_free(G.hc);
    return failures ? 1 : 0;
}

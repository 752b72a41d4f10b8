/* metrics.c — see metrics.h. */
#include "metrics.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "http_server.h"

#define MAX_SERIES 512

/* Upper bounds of the latency buckets, in microseconds. */
static const uint64_t bucket_us[] = {100, 250, 500, 1000, 2500, 5000, 10000, 25000,
                                     50000, 100000, 250000, 500000, 1000000, 2500000};
#define N_BUCKETS (sizeof bucket_us / sizeof bucket_us[0])

struct series {
    const char *route;
    int status;
    uint64_t count;
};

struct metrics {
    pthread_mutex_t lock;
    struct series series[MAX_SERIES];
    size_t n_series;
    uint64_t overflow;              /* requests whose series did not fit */
    uint64_t buckets[N_BUCKETS + 1]; /* last = +Inf */
    uint64_t latency_sum_us;
    uint64_t latency_count;
    metrics_extra_fn extra;         /* another module's counters, appended */
    void *extra_ctx;
};

enum parley_err metrics_new(struct metrics **out)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (!m)
        return PARLEY_ERR_NOMEM;
    pthread_mutex_init(&m->lock, NULL);
    *out = m;
    return PARLEY_OK;
}

void metrics_free(struct metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

void metrics_record(struct metrics *m, const char *route, int status, uint64_t latency_us)
{
    size_t b = 0;
    while (b < N_BUCKETS && latency_us > bucket_us[b])
        b++;
    pthread_mutex_lock(&m->lock);
    size_t i = 0;
    for (; i < m->n_series; i++)
        if (m->series[i].route == route && m->series[i].status == status)
            break;
    if (i == m->n_series) {
        if (m->n_series < MAX_SERIES) {
            m->series[i].route = route;
            m->series[i].status = status;
            m->n_series++;
        } else {
            i = MAX_SERIES;
        }
    }
    if (i < MAX_SERIES)
        m->series[i].count++;
    else
        m->overflow++;
    m->buckets[b]++;
    m->latency_sum_us += latency_us;
    m->latency_count++;
    pthread_mutex_unlock(&m->lock);
}

enum parley_err metrics_render(struct metrics *m, const struct http_server *srv,
                               struct buf *out)
{
    enum parley_err rc = PARLEY_OK;
    struct http_server_stats st;
    memset(&st, 0, sizeof st);
    if (srv)
        http_server_stats(srv, &st);
    rc = buf_printf(out,
                    "# HELP parley_connections_open Open client connections.\n"
                    "# TYPE parley_connections_open gauge\n"
                    "parley_connections_open %llu\n"
                    "# HELP parley_connections_total Connections accepted since start.\n"
                    "# TYPE parley_connections_total counter\n"
                    "parley_connections_total %llu\n"
                    "# HELP parley_websockets_open Open WebSocket streams.\n"
                    "# TYPE parley_websockets_open gauge\n"
                    "parley_websockets_open %llu\n"
                    "# HELP parley_protocol_errors_total Requests rejected by the transport.\n"
                    "# TYPE parley_protocol_errors_total counter\n"
                    "parley_protocol_errors_total %llu\n"
                    "# HELP parley_http_requests_total Answered requests by route and status.\n"
                    "# TYPE parley_http_requests_total counter\n",
                    (unsigned long long)st.connections_open,
                    (unsigned long long)st.connections_total,
                    (unsigned long long)st.websockets_open,
                    (unsigned long long)st.protocol_errors);
    if (rc)
        return rc;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->n_series && !rc; i++)
        rc = buf_printf(out, "parley_http_requests_total{route=\"%s\",status=\"%d\"} %llu\n",
                        m->series[i].route ? m->series[i].route : "none", m->series[i].status,
                        (unsigned long long)m->series[i].count);
    if (!rc && m->overflow)
        rc = buf_printf(out, "parley_http_requests_total{route=\"other\",status=\"other\"} %llu\n",
                        (unsigned long long)m->overflow);
    if (!rc)
        rc = buf_append_str(out, "# HELP parley_http_request_duration_seconds Request latency.\n"
                                 "# TYPE parley_http_request_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (size_t b = 0; b < N_BUCKETS && !rc; b++) {
        cum += m->buckets[b];
        rc = buf_printf(out, "parley_http_request_duration_seconds_bucket{le=\"%g\"} %llu\n",
                        (double)bucket_us[b] / 1e6, (unsigned long long)cum);
    }
    cum += m->buckets[N_BUCKETS];
    if (!rc)
        rc = buf_printf(out,
                        "parley_http_request_duration_seconds_bucket{le=\"+Inf\"} %llu\n"
                        "parley_http_request_duration_seconds_sum %.6f\n"
                        "parley_http_request_duration_seconds_count %llu\n",
                        (unsigned long long)cum, (double)m->latency_sum_us / 1e6,
                        (unsigned long long)m->latency_count);
    pthread_mutex_unlock(&m->lock);
    if (!rc && m->extra)
        rc = m->extra(m->extra_ctx, out);
    return rc;
}

void metrics_set_extra(struct metrics *m, metrics_extra_fn fn, void *ctx)
{
    m->extra = fn;
    m->extra_ctx = ctx;
}

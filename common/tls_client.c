/*
 * tls_client.c — TCP (+ optional TLS) client stream with poll()-based deadlines; see
 * tls_client.h.
 *
 * Invariants: the socket is non-blocking from creation to close; every wait goes
 * through poll() with the time left until an absolute monotonic deadline, so no call
 * can hang past it (DNS resolution excepted: getaddrinfo has no timeout).
 * SIGPIPE: plain writes use send(MSG_NOSIGNAL); OpenSSL writes through write(2), so a
 * TLS write blocks SIGPIPE for the calling thread and swallows a pending one, leaving
 * the process's signal disposition alone (a library must not change it).
 */
#include "tls_client.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "clock.h"

struct tls_client {
    int fd;
    SSL_CTX *ctx; /* NULL for plain TCP */
    SSL *ssl;
    char err[256];
};

uint64_t tls_client_deadline(uint32_t timeout_ms)
{
    return clock_mono_us() + (uint64_t)timeout_ms * 1000u;
}

static void seterr(char *dst, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *dst, size_t n, const char *fmt, ...)
{
    if (!dst || !n)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}

/* ---- URL ---- */

static bool copy_span(char *dst, size_t dst_len, const char *s, size_t n)
{
    if (n >= dst_len)
        return false;
    memcpy(dst, s, n);
    dst[n] = 0;
    return true;
}

enum parley_err tls_client_url_parse(const char *url, struct tls_client_url *out)
{
    struct tls_client_url u;
    memset(&u, 0, sizeof u);
    if (!url || !out)
        return PARLEY_ERR_INVAL;
    const char *p;
    const char *def_port;
    if (strncmp(url, "http://", 7) == 0) {
        p = url + 7, def_port = "80";
    } else if (strncmp(url, "https://", 8) == 0) {
        p = url + 8, def_port = "443", u.tls = true;
    } else if (strncmp(url, "ws://", 5) == 0) {
        p = url + 5, def_port = "80", u.websocket = true;
    } else if (strncmp(url, "wss://", 6) == 0) {
        p = url + 6, def_port = "443", u.websocket = true, u.tls = true;
    } else {
        return PARLEY_ERR_INVAL;
    }
    size_t auth_len = strcspn(p, "/?#");
    const char *rest = p + auth_len;
    if (strpbrk(rest, "?#") || auth_len == 0)
        return PARLEY_ERR_INVAL;
    if (memchr(p, '@', auth_len))
        return PARLEY_ERR_INVAL; /* no userinfo: credentials never go in URLs */
    if (!copy_span(u.authority, sizeof u.authority, p, auth_len))
        return PARLEY_ERR_INVAL;

    const char *host = p;
    size_t host_len;
    const char *port = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', auth_len);
        if (!close)
            return PARLEY_ERR_INVAL;
        host = p + 1;
        host_len = (size_t)(close - host);
        const char *after = close + 1;
        if (after < p + auth_len) {
            if (*after != ':')
                return PARLEY_ERR_INVAL;
            port = after + 1;
        }
    } else {
        const char *colon = memchr(p, ':', auth_len);
        host_len = colon ? (size_t)(colon - p) : auth_len;
        if (colon)
            port = colon + 1;
    }
    if (host_len == 0 || !copy_span(u.host, sizeof u.host, host, host_len))
        return PARLEY_ERR_INVAL;
    for (size_t i = 0; i < host_len; i++) {
        unsigned char ch = (unsigned char)u.host[i];
        if (ch <= ' ' || ch >= 0x7f)
            return PARLEY_ERR_INVAL;
    }
    if (port) {
        size_t port_len = (size_t)(p + auth_len - port);
        if (port_len == 0 || port_len > 5)
            return PARLEY_ERR_INVAL;
        long v = 0;
        for (size_t i = 0; i < port_len; i++) {
            if (port[i] < '0' || port[i] > '9')
                return PARLEY_ERR_INVAL;
            v = v * 10 + (port[i] - '0');
        }
        if (v < 1 || v > 65535)
            return PARLEY_ERR_INVAL;
        snprintf(u.port, sizeof u.port, "%ld", v);
    } else {
        snprintf(u.port, sizeof u.port, "%s", def_port);
    }
    /* Path prefix: keep it, minus trailing slashes, so "http://h/api/" + "/v1/x" works. */
    size_t path_len = strlen(rest);
    while (path_len > 0 && rest[path_len - 1] == '/')
        path_len--;
    for (size_t i = 0; i < path_len; i++) {
        unsigned char ch = (unsigned char)rest[i];
        if (ch <= ' ' || ch >= 0x7f)
            return PARLEY_ERR_INVAL;
    }
    if (!copy_span(u.path, sizeof u.path, rest, path_len))
        return PARLEY_ERR_INVAL;
    *out = u;
    return PARLEY_OK;
}

/* ---- waiting ---- */

static int remaining_ms(uint64_t deadline_us)
{
    uint64_t now = clock_mono_us();
    if (now >= deadline_us)
        return 0;
    uint64_t ms = (deadline_us - now + 999) / 1000;
    return ms > INT32_MAX ? INT32_MAX : (int)ms;
}

static enum parley_err wait_fd(int fd, short events, uint64_t deadline_us, char *err,
                               size_t err_len)
{
    for (;;) {
        int ms = remaining_ms(deadline_us);
        struct pollfd pfd = {.fd = fd, .events = events, .revents = 0};
        int n = poll(&pfd, 1, ms);
        if (n > 0)
            return PARLEY_OK; /* errors/hangups surface on the next read or write */
        if (n == 0) {
            seterr(err, err_len, "timed out");
            return PARLEY_ERR_TIMEOUT;
        }
        if (errno != EINTR) {
            seterr(err, err_len, "poll: %s", strerror(errno));
            return PARLEY_ERR_IO;
        }
    }
}

enum parley_err tls_client_wait(struct tls_client *t, short events, uint64_t deadline_us)
{
    if ((events & POLLIN) && tls_client_pending(t))
        return PARLEY_OK;
    return wait_fd(t->fd, events, deadline_us, t->err, sizeof t->err);
}

/* ---- connect ---- */

static enum parley_err tcp_connect(const struct tls_client_url *url, uint64_t deadline_us,
                                   char *err, size_t err_len, int *out_fd)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_ADDRCONFIG;
    int gai = getaddrinfo(url->host, url->port, &hints, &res);
    if (gai != 0) {
        seterr(err, err_len, "resolve %s: %s", url->host, gai_strerror(gai));
        return PARLEY_ERR_IO;
    }
    enum parley_err rc = PARLEY_ERR_IO;
    seterr(err, err_len, "connect %s: no address", url->authority);
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd =
            socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) {
            seterr(err, err_len, "socket: %s", strerror(errno));
            continue;
        }
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        int r = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (r != 0 && errno == EINPROGRESS) {
            rc = wait_fd(fd, POLLOUT, deadline_us, err, err_len);
            if (rc == PARLEY_ERR_TIMEOUT) {
                seterr(err, err_len, "connect %s: timed out", url->authority);
                close(fd);
                break; /* the deadline is spent for every other address too */
            }
            int soerr = 0;
            socklen_t sl = sizeof soerr;
            if (rc == PARLEY_OK && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
                soerr == 0)
                r = 0;
            else
                errno = soerr ? soerr : errno;
        }
        if (r == 0) {
            *out_fd = fd;
            rc = PARLEY_OK;
            break;
        }
        seterr(err, err_len, "connect %s: %s", url->authority, strerror(errno));
        rc = PARLEY_ERR_IO;
        close(fd);
    }
    freeaddrinfo(res);
    return rc;
}

static void ssl_errtext(char *err, size_t err_len, const char *what, SSL *ssl)
{
    unsigned long e = ERR_get_error();
    char reason[200] = "";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (vr != X509_V_OK)
        seterr(err, err_len, "%s: certificate verify failed: %s", what,
               X509_verify_cert_error_string(vr));
    else
        seterr(err, err_len, "%s: %s", what, e ? reason : "failed");
    ERR_clear_error();
}

static bool is_ip_literal(const char *host)
{
    unsigned char tmp[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, tmp) == 1 || inet_pton(AF_INET6, host, tmp) == 1;
}

static enum parley_err tls_setup(struct tls_client *t, const struct tls_client_url *url,
                                 const struct tls_client_opts *opts, uint64_t deadline_us,
                                 char *err, size_t err_len)
{
    ERR_clear_error();
    t->ctx = SSL_CTX_new(TLS_client_method());
    if (!t->ctx) {
        ssl_errtext(err, err_len, "TLS context", NULL);
        return PARLEY_ERR_NOMEM;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    /* A peer that closes without close_notify reads as EOF (SSL_ERROR_ZERO_RETURN):
     * HTTP framing, not TLS, decides whether an answer was complete. */
    SSL_CTX_set_options(t->ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    bool verify = !(opts && opts->insecure_skip_verify);
    if (verify) {
        int ok = (opts && opts->ca_file)
                     ? SSL_CTX_load_verify_locations(t->ctx, opts->ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(t->ctx);
        if (ok != 1) {
            ssl_errtext(err, err_len, "TLS trust store", NULL);
            return PARLEY_ERR_IO;
        }
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
    } else {
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_NONE, NULL);
    }
    t->ssl = SSL_new(t->ctx);
    if (!t->ssl || SSL_set_fd(t->ssl, t->fd) != 1) {
        ssl_errtext(err, err_len, "TLS", NULL);
        return PARLEY_ERR_NOMEM;
    }
    bool ip = is_ip_literal(url->host);
    if (!ip && SSL_set_tlsext_host_name(t->ssl, url->host) != 1) {
        ssl_errtext(err, err_len, "TLS SNI", NULL);
        return PARLEY_ERR_IO;
    }
    if (verify) {
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), url->host)
                    : SSL_set1_host(t->ssl, url->host);
        if (ok != 1) {
            ssl_errtext(err, err_len, "TLS host check", NULL);
            return PARLEY_ERR_IO;
        }
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(t->ssl);
        if (r == 1)
            return PARLEY_OK;
        int e = SSL_get_error(t->ssl, r);
        short ev;
        if (e == SSL_ERROR_WANT_READ)
            ev = POLLIN;
        else if (e == SSL_ERROR_WANT_WRITE)
            ev = POLLOUT;
        else {
            ssl_errtext(err, err_len, "TLS handshake", t->ssl);
            return PARLEY_ERR_IO;
        }
        enum parley_err rc = wait_fd(t->fd, ev, deadline_us, err, err_len);
        if (rc) {
            if (rc == PARLEY_ERR_TIMEOUT)
                seterr(err, err_len, "TLS handshake: timed out");
            return rc;
        }
    }
}

enum parley_err tls_client_open(const struct tls_client_url *url,
                                const struct tls_client_opts *opts, uint64_t deadline_us,
                                char *errbuf, size_t errbuf_len, struct tls_client **out)
{
    struct tls_client *t = calloc(1, sizeof *t);
    if (!t) {
        seterr(errbuf, errbuf_len, "out of memory");
        return PARLEY_ERR_NOMEM;
    }
    t->fd = -1;
    enum parley_err rc = tcp_connect(url, deadline_us, errbuf, errbuf_len, &t->fd);
    if (rc)
        goto out;
    if (url->tls) {
        rc = tls_setup(t, url, opts, deadline_us, errbuf, errbuf_len);
        if (rc)
            goto out;
    }
    *out = t;
    t = NULL;
out:
    tls_client_free(t);
    return rc;
}

void tls_client_free(struct tls_client *t)
{
    if (!t)
        return;
    if (t->ssl) {
        /* Best effort close_notify; never wait for the peer's. */
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        if (SSL_is_init_finished(t->ssl))
            (void)SSL_shutdown(t->ssl);
        struct timespec zero = {0, 0};
        while (sigtimedwait(&block, NULL, &zero) > 0) {
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        SSL_free(t->ssl);
    }
    SSL_CTX_free(t->ctx);
    if (t->fd >= 0)
        close(t->fd);
    ERR_clear_error();
    free(t);
}

/* ---- I/O ---- */

static enum parley_err ssl_io_error(struct tls_client *t, int r, const char *what, short *want)
{
    int e = SSL_get_error(t->ssl, r);
    switch (e) {
    case SSL_ERROR_WANT_READ: *want = POLLIN; return PARLEY_ERR_AGAIN;
    case SSL_ERROR_WANT_WRITE: *want = POLLOUT; return PARLEY_ERR_AGAIN;
    case SSL_ERROR_ZERO_RETURN:
        seterr(t->err, sizeof t->err, "%s: connection closed", what);
        return PARLEY_ERR_CLOSED;
    case SSL_ERROR_SYSCALL:
        if (errno == 0 || ERR_peek_error() == 0) {
            /* EOF without close_notify: treat like a TCP close (the HTTP layer decides
             * whether the message was complete). */
            seterr(t->err, sizeof t->err, "%s: connection closed", what);
            ERR_clear_error();
            return errno == 0 ? PARLEY_ERR_CLOSED : PARLEY_ERR_IO;
        }
        /* fall through */
    default: ssl_errtext(t->err, sizeof t->err, what, NULL); return PARLEY_ERR_IO;
    }
}

enum parley_err tls_client_read_nb(struct tls_client *t, void *p, size_t len, size_t *got,
                                   short *want_events)
{
    short dummy;
    if (!want_events)
        want_events = &dummy;
    *got = 0;
    if (len == 0)
        return PARLEY_OK;
    if (t->ssl) {
        ERR_clear_error();
        errno = 0;
        int n = SSL_read(t->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
        if (n > 0) {
            *got = (size_t)n;
            return PARLEY_OK;
        }
        return ssl_io_error(t, n, "read", want_events);
    }
    for (;;) {
        ssize_t n = recv(t->fd, p, len, 0);
        if (n > 0) {
            *got = (size_t)n;
            return PARLEY_OK;
        }
        if (n == 0) {
            seterr(t->err, sizeof t->err, "read: connection closed");
            return PARLEY_ERR_CLOSED;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want_events = POLLIN;
            return PARLEY_ERR_AGAIN;
        }
        seterr(t->err, sizeof t->err, "read: %s", strerror(errno));
        return PARLEY_ERR_IO;
    }
}

enum parley_err tls_client_write_nb(struct tls_client *t, const void *p, size_t len, size_t *put,
                                    short *want_events)
{
    short dummy;
    if (!want_events)
        want_events = &dummy;
    *put = 0;
    if (len == 0)
        return PARLEY_OK;
    if (t->ssl) {
        sigset_t block, old;
        sigemptyset(&block);
        sigaddset(&block, SIGPIPE);
        pthread_sigmask(SIG_BLOCK, &block, &old);
        ERR_clear_error();
        errno = 0;
        int n = SSL_write(t->ssl, p, len > INT32_MAX ? INT32_MAX : (int)len);
        int saved = errno;
        struct timespec zero = {0, 0};
        while (sigtimedwait(&block, NULL, &zero) > 0) {
        }
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        errno = saved;
        if (n > 0) {
            *put = (size_t)n;
            return PARLEY_OK;
        }
        enum parley_err rc = ssl_io_error(t, n, "write", want_events);
        return rc == PARLEY_ERR_CLOSED ? PARLEY_ERR_IO : rc;
    }
    for (;;) {
        ssize_t n = send(t->fd, p, len, MSG_NOSIGNAL);
        if (n >= 0) {
            *put = (size_t)n;
            if (n == 0) {
                *want_events = POLLOUT;
                return PARLEY_ERR_AGAIN;
            }
            return PARLEY_OK;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            *want_events = POLLOUT;
            return PARLEY_ERR_AGAIN;
        }
        seterr(t->err, sizeof t->err, "write: %s", strerror(errno));
        return PARLEY_ERR_IO;
    }
}

enum parley_err tls_client_read(struct tls_client *t, void *p, size_t len, size_t *got,
                                uint64_t deadline_us)
{
    for (;;) {
        short want = POLLIN;
        enum parley_err rc = tls_client_read_nb(t, p, len, got, &want);
        if (rc != PARLEY_ERR_AGAIN)
            return rc;
        rc = wait_fd(t->fd, want, deadline_us, t->err, sizeof t->err);
        if (rc)
            return rc;
    }
}

enum parley_err tls_client_write_all(struct tls_client *t, const void *p, size_t len,
                                     uint64_t deadline_us)
{
    const uint8_t *q = p;
    while (len > 0) {
        size_t put = 0;
        short want = POLLOUT;
        enum parley_err rc = tls_client_write_nb(t, q, len, &put, &want);
        if (rc == PARLEY_OK) {
            q += put;
            len -= put;
            continue;
        }
        if (rc != PARLEY_ERR_AGAIN)
            return rc;
        rc = wait_fd(t->fd, want, deadline_us, t->err, sizeof t->err);
        if (rc)
            return rc;
    }
    return PARLEY_OK;
}

bool tls_client_pending(const struct tls_client *t)
{
    return t->ssl && SSL_pending(t->ssl) > 0;
}

bool tls_client_peer_closed(struct tls_client *t)
{
    char c;
    ssize_t n = recv(t->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    if (n < 0)
        return !(errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR);
    if (!t->ssl)
        return true; /* unsolicited bytes on an idle HTTP connection: don't trust it */
    /* TLS: the bytes may be a session ticket (TLS 1.3) or a close_notify alert. Let
     * OpenSSL look at them without blocking. */
    ERR_clear_error();
    errno = 0;
    int r = SSL_peek(t->ssl, &c, 1);
    if (r > 0)
        return true;
    int e = SSL_get_error(t->ssl, r);
    ERR_clear_error();
    return !(e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE);
}

int tls_client_fd(const struct tls_client *t)
{
    return t ? t->fd : -1;
}

const char *tls_client_error(const struct tls_client *t)
{
    return t ? t->err : "";
}

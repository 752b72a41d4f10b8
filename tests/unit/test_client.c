/*
 * test_client.c — libparley's accounts client (parley/client.h) against a fake accounts
 * API served by a thread in this test (raw sockets, keep-alive, canned JSON), plus the
 * credentials file: modes, atomic replace, adoption per server, removal on logout.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <jansson.h>

#include "parley/client.h"

#define TOKEN "tok-0123456789"

/* ---- fake server ---- */

struct fake {
    int lfd;
    pthread_t th;
    volatile int stop;
    char url[64];
    /* what the last request looked like */
    pthread_mutex_t mu;
    char last_method[16];
    char last_path[256];
    char last_auth[256];
    char last_body[4096];
    int requests;
    int connections;
    bool revoked_self;
    bool malformed_me; /* answer /v1/me with junk */
};

static void send_all(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        s += w;
        n -= (size_t)w;
    }
}

static void reply(int fd, int status, const char *extra_headers, const char *body)
{
    char head[512];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d X\r\nContent-Type: application/json\r\n"
                     "%sContent-Length: %zu\r\n\r\n",
                     status, extra_headers ? extra_headers : "", body ? strlen(body) : 0);
    send_all(fd, head, (size_t)n);
    if (body)
        send_all(fd, body, strlen(body));
}

static void err_reply(int fd, int status, const char *code, const char *msg)
{
    char b[256];
    snprintf(b, sizeof b, "{\"error\":{\"code\":\"%s\",\"message\":\"%s\"}}", code, msg);
    reply(fd, status, NULL, b);
}

static const char *PROFILE =
    "{\"user_id\":\"u-1\",\"username\":\"alice\",\"name\":\"Alice\",\"dob\":\"1990-01-02\","
    "\"region\":null,\"gender\":\"f\",\"parental_consent_required\":false,"
    "\"created_at\":1700000000}";

static void handle(struct fake *f, int fd, const char *method, const char *path, const char *auth,
                   const char *body)
{
    bool authed = strcmp(auth, "Bearer " TOKEN) == 0 && !f->revoked_self;
    if (strcmp(method, "POST") == 0 && strcmp(path, "/v1/accounts") == 0) {
        json_t *j = json_loads(body, 0, NULL);
        const char *u = json_string_value(json_object_get(j, "username"));
        if (u && strcmp(u, "taken") == 0)
            err_reply(fd, 409, "username_taken", "that username is taken");
        else if (u && strcmp(u, "busy") == 0)
            reply(fd, 429, "Retry-After: 42\r\n",
                  "{\"error\":{\"code\":\"rate_limited\",\"message\":\"slow down\"}}");
        else
            reply(fd, 201, NULL, "{\"user_id\":\"u-1\"}");
        json_decref(j);
    } else if (strcmp(method, "POST") == 0 && strcmp(path, "/v1/sessions") == 0) {
        json_t *j = json_loads(body, 0, NULL);
        const char *pw = json_string_value(json_object_get(j, "password"));
        if (pw && strcmp(pw, "correct horse") == 0) {
            f->revoked_self = false;
            reply(fd, 201, NULL,
                  "{\"token\":\"" TOKEN "\",\"user_id\":\"u-1\",\"device_id\":\"d-1\"}");
        } else {
            err_reply(fd, 401, "bad_credentials", "wrong username or password");
        }
        json_decref(j);
    } else if (!authed) {
        err_reply(fd, 401, "unauthorized", "log in first");
    } else if (strcmp(method, "GET") == 0 && strcmp(path, "/v1/me") == 0) {
        reply(fd, 200, NULL, f->malformed_me ? "[1,2]" : PROFILE);
    } else if (strcmp(method, "PATCH") == 0 && strcmp(path, "/v1/me") == 0) {
        json_t *j = json_loads(body, 0, NULL);
        json_t *p = json_loads(PROFILE, 0, NULL);
        json_object_update(p, j);
        char *s = json_dumps(p, JSON_COMPACT);
        reply(fd, 200, NULL, s);
        free(s);
        json_decref(p);
        json_decref(j);
    } else if (strcmp(method, "GET") == 0 && strcmp(path, "/v1/devices") == 0) {
        reply(fd, 200, NULL,
              "{\"devices\":[{\"device_id\":\"d-1\",\"name\":\"laptop\",\"created_at\":"
              "1700000000,\"last_seen\":1700000060,\"current\":true},"
              "{\"device_id\":\"d-2\",\"name\":null,\"created_at\":\"2026-01-01T00:00:00Z\","
              "\"last_seen\":null,\"current\":false}]}");
    } else if (strcmp(method, "DELETE") == 0 && strncmp(path, "/v1/devices/", 12) == 0) {
        if (strcmp(path + 12, "d-1") == 0)
            f->revoked_self = true;
        if (strcmp(path + 12, "d-1") == 0 || strcmp(path + 12, "d-2") == 0 ||
            strcmp(path + 12, "a%2Fb%20c") == 0)
            reply(fd, 204, NULL, NULL);
        else
            err_reply(fd, 404, "not_found", "no such device");
    } else if (strcmp(method, "DELETE") == 0 && strcmp(path, "/v1/sessions/current") == 0) {
        reply(fd, 204, NULL, NULL);
    } else {
        err_reply(fd, 404, "not_found", "no route");
    }
}

static const char *find_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (; *hay; hay++)
        if (strncasecmp(hay, needle, n) == 0)
            return hay;
    return NULL;
}

/* Serve requests on one connection until EOF. */
static void serve_conn(struct fake *f, int fd)
{
    char buf[16384];
    size_t len = 0;
    for (;;) {
        char *end;
        while (!(end = strstr(buf, "\r\n\r\n")) || len == 0) {
            struct pollfd pfd = {.fd = fd, .events = POLLIN};
            if (poll(&pfd, 1, 100) == 0) {
                if (f->stop)
                    return;
                continue;
            }
            ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
            if (r <= 0)
                return;
            len += (size_t)r;
            buf[len] = 0;
        }
        size_t head_len = (size_t)(end + 4 - buf);
        const char *cl = find_ci(buf, "\r\nContent-Length: ");
        size_t body_len = cl && cl < end ? strtoul(cl + 18, NULL, 10) : 0;
        while (len < head_len + body_len) {
            ssize_t r = recv(fd, buf + len, sizeof buf - 1 - len, 0);
            if (r <= 0)
                return;
            len += (size_t)r;
            buf[len] = 0;
        }
        char method[16] = "", path[256] = "", auth[256] = "", body[4096] = "";
        sscanf(buf, "%15s %255s", method, path);
        const char *a = find_ci(buf, "\r\nAuthorization: ");
        if (a && a < end) {
            const char *ae = strstr(a + 2, "\r\n");
            size_t al = (size_t)(ae - (a + 17));
            if (al < sizeof auth) {
                memcpy(auth, a + 17, al);
                auth[al] = 0;
            }
        }
        if (body_len < sizeof body) {
            memcpy(body, buf + head_len, body_len);
            body[body_len] = 0;
        }
        pthread_mutex_lock(&f->mu);
        snprintf(f->last_method, sizeof f->last_method, "%s", method);
        snprintf(f->last_path, sizeof f->last_path, "%s", path);
        snprintf(f->last_auth, sizeof f->last_auth, "%s", auth);
        snprintf(f->last_body, sizeof f->last_body, "%s", body);
        f->requests++;
        pthread_mutex_unlock(&f->mu);
        handle(f, fd, method, path, auth, body);
        size_t used = head_len + body_len;
        memmove(buf, buf + used, len - used);
        len -= used;
        buf[len] = 0;
    }
}

static void *fake_main(void *p)
{
    struct fake *f = p;
    while (!f->stop) {
        struct pollfd pfd = {.fd = f->lfd, .events = POLLIN};
        if (poll(&pfd, 1, 50) != 1)
            continue;
        int fd = accept(f->lfd, NULL, NULL);
        if (fd < 0)
            continue;
        f->connections++;
        serve_conn(f, fd);
        close(fd);
    }
    return NULL;
}

static struct fake *fake_start(void)
{
    struct fake *f = calloc(1, sizeof *f);
    pthread_mutex_init(&f->mu, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 8), 0);
    socklen_t al = sizeof a;
    getsockname(f->lfd, (struct sockaddr *)&a, &al);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%u/", (unsigned)ntohs(a.sin_port));
    pthread_create(&f->th, NULL, fake_main, f);
    return f;
}

static void fake_stop(struct fake *f)
{
    f->stop = 1;
    pthread_join(f->th, NULL);
    close(f->lfd);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* ---- fixtures ---- */

struct fx {
    struct fake *f;
    char home[128];
    char creds[160];
};

static int setup(void **state)
{
    struct fx *x = calloc(1, sizeof *x);
    snprintf(x->home, sizeof x->home, "/tmp/parley-test-client-XXXXXX");
    if (!mkdtemp(x->home))
        return -1;
    /* The client must create the home itself: use a child that does not exist yet. */
    strncat(x->home, "/home", sizeof x->home - strlen(x->home) - 1);
    snprintf(x->creds, sizeof x->creds, "%s/credentials.json", x->home);
    x->f = fake_start();
    *state = x;
    return 0;
}

static int teardown(void **state)
{
    struct fx *x = *state;
    fake_stop(x->f);
    unlink(x->creds);
    rmdir(x->home);
    char *slash = strrchr(x->home, '/');
    *slash = 0;
    rmdir(x->home);
    free(x);
    return 0;
}

static struct parley_client *open_client(struct fx *x)
{
    struct parley_client *c = NULL;
    assert_int_equal(parley_client_new(x->f->url, x->home, &c), PARLEY_OK);
    return c;
}

static void login(struct parley_client *c)
{
    assert_int_equal(parley_client_login(c, "alice", "correct horse", "laptop"), PARLEY_OK);
}

/* ---- tests ---- */

static void test_register(void **state)
{
    struct fx *x = *state;
    struct parley_client *c = open_client(x);
    const char *srv = parley_client_server(c);
    assert_true(strncmp(srv, "http://127.0.0.1:", 17) == 0);
    assert_true(srv[strlen(srv) - 1] != '/'); /* normalised */
    struct parley_account_params p = {.username = "alice",
                                      .name = "Alice",
                                      .dob = "1990-01-02",
                                      .password = "correct horse",
                                      .region = "EU"};
    char *id = NULL;
    assert_int_equal(parley_client_register(c, &p, &id), PARLEY_OK);
    assert_string_equal(id, "u-1");
    free(id);
    json_t *b = json_loads(x->f->last_body, 0, NULL);
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "username")), "alice");
    assert_string_equal(json_string_value(json_object_get(b, "dob")), "1990-01-02");
    assert_string_equal(json_string_value(json_object_get(b, "password")), "correct horse");
    assert_string_equal(json_string_value(json_object_get(b, "region")), "EU");
    assert_null(json_object_get(b, "gender"));
    json_decref(b);
    assert_string_equal(x->f->last_auth, ""); /* no token on register */
    assert_false(parley_client_logged_in(c));

    /* Refusal: code, message and status on the handle. */
    p.username = "taken";
    assert_int_equal(parley_client_register(c, &p, NULL), PARLEY_ERR_SERVER);
    int status;
    const char *code, *msg;
    parley_client_last_error(c, &status, &code, &msg);
    assert_int_equal(status, 409);
    assert_string_equal(code, "username_taken");
    assert_string_equal(msg, "that username is taken");

    /* 429 keeps Retry-After. */
    p.username = "busy";
    assert_int_equal(parley_client_register(c, &p, NULL), PARLEY_ERR_SERVER);
    parley_client_last_error(c, &status, &code, NULL);
    assert_int_equal(status, 429);
    assert_string_equal(code, "rate_limited");
    assert_int_equal(parley_client_retry_after(c), 42);

    /* Local checks, before any request. */
    int before = x->f->requests;
    p.dob = "02/01/1990";
    assert_int_equal(parley_client_register(c, &p, NULL), PARLEY_ERR_INVAL);
    p.dob = "1990-01-02";
    p.password = NULL;
    assert_int_equal(parley_client_register(c, &p, NULL), PARLEY_ERR_INVAL);
    assert_int_equal(x->f->requests, before);
    /* A successful call clears the error. */
    p.username = "bob";
    p.password = "pw";
    assert_int_equal(parley_client_register(c, &p, NULL), PARLEY_OK);
    parley_client_last_error(c, &status, &code, &msg);
    assert_int_equal(status, 0);
    assert_null(code);
    assert_string_equal(msg, "");
    parley_client_free(c);
    /* Nothing was saved: no session, no home directory. */
    struct stat st;
    assert_int_equal(stat(x->home, &st), -1);
}

static void test_login_persists(void **state)
{
    struct fx *x = *state;
    struct parley_client *c = open_client(x);
    assert_int_equal(parley_client_login(c, "alice", "wrong", NULL), PARLEY_ERR_SERVER);
    int status;
    const char *code;
    parley_client_last_error(c, &status, &code, NULL);
    assert_int_equal(status, 401);
    assert_string_equal(code, "bad_credentials");
    assert_false(parley_client_logged_in(c));

    login(c);
    assert_true(parley_client_logged_in(c));
    assert_string_equal(parley_client_username(c), "alice");
    assert_string_equal(parley_client_user_id(c), "u-1");
    assert_string_equal(parley_client_device_id(c), "d-1");
    json_t *b = json_loads(x->f->last_body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(b, "device_name")), "laptop");
    json_decref(b);
    parley_client_free(c);

    /* Modes: dir 0700, file 0600; contents carry the session. */
    struct stat st;
    assert_int_equal(stat(x->home, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(stat(x->creds, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    json_t *saved = json_load_file(x->creds, 0, NULL);
    assert_non_null(saved);
    assert_string_equal(json_string_value(json_object_get(saved, "token")), TOKEN);
    assert_string_equal(json_string_value(json_object_get(saved, "device_id")), "d-1");
    json_decref(saved);

    /* A new handle on the same home adopts the session, and the saved server. */
    struct parley_client *c2 = NULL;
    assert_int_equal(parley_client_new(NULL, x->home, &c2), PARLEY_OK);
    assert_true(parley_client_logged_in(c2));
    char want[64];
    snprintf(want, sizeof want, "%s", x->f->url);
    want[strlen(want) - 1] = 0; /* normalised: no trailing '/' */
    assert_string_equal(parley_client_server(c2), want);
    struct parley_profile p;
    assert_int_equal(parley_client_get_profile(c2, &p), PARLEY_OK);
    assert_string_equal(x->f->last_auth, "Bearer " TOKEN);
    parley_profile_cleanup(&p);
    parley_client_free(c2);

    /* Another server: the session is not used there. */
    assert_int_equal(parley_client_new("http://127.0.0.1:1", x->home, &c2), PARLEY_OK);
    assert_false(parley_client_logged_in(c2));
    assert_null(parley_client_device_id(c2));
    parley_client_free(c2);
}

static void test_profile(void **state)
{
    struct fx *x = *state;
    struct parley_client *c = open_client(x);
    struct parley_profile p;
    memset(&p, 0, sizeof p);
    int before = x->f->requests;
    assert_int_equal(parley_client_get_profile(c, &p), PARLEY_ERR_DENIED);
    assert_int_equal(x->f->requests, before); /* refused locally */
    login(c);
    assert_int_equal(parley_client_get_profile(c, &p), PARLEY_OK);
    assert_string_equal(p.user_id, "u-1");
    assert_string_equal(p.username, "alice");
    assert_string_equal(p.name, "Alice");
    assert_string_equal(p.dob, "1990-01-02");
    assert_null(p.region);
    assert_string_equal(p.gender, "f");
    assert_int_equal(p.created_at, 1700000000);
    assert_false(p.parental_consent_required);
    parley_profile_cleanup(&p);
    assert_null(p.user_id);

    struct parley_profile_update u = {.name = "Alice B", .region = "NL"};
    assert_int_equal(parley_client_update_profile(c, &u, &p), PARLEY_OK);
    assert_string_equal(x->f->last_method, "PATCH");
    json_t *b = json_loads(x->f->last_body, 0, NULL);
    assert_int_equal(json_object_size(b), 2);
    assert_string_equal(json_string_value(json_object_get(b, "name")), "Alice B");
    json_decref(b);
    assert_string_equal(p.name, "Alice B");
    assert_string_equal(p.region, "NL");
    parley_profile_cleanup(&p);
    struct parley_profile_update none = {0};
    assert_int_equal(parley_client_update_profile(c, &none, NULL), PARLEY_ERR_INVAL);

    x->f->malformed_me = true;
    assert_int_equal(parley_client_get_profile(c, &p), PARLEY_ERR_PROTO);
    x->f->malformed_me = false;
    parley_client_free(c);
}

static void test_devices(void **state)
{
    struct fx *x = *state;
    struct parley_client *c = open_client(x);
    login(c);
    struct parley_device_list l;
    assert_int_equal(parley_client_list_devices(c, &l), PARLEY_OK);
    assert_int_equal(l.count, 2);
    assert_string_equal(l.items[0].device_id, "d-1");
    assert_string_equal(l.items[0].name, "laptop");
    assert_true(l.items[0].current);
    assert_string_equal(l.items[1].device_id, "d-2");
    assert_null(l.items[1].name);
    assert_int_equal(l.items[0].created_at, 1700000000);
    assert_int_equal(l.items[0].last_seen, 1700000060);
    assert_int_equal(l.items[1].created_at, 1767225600); /* RFC 3339 string form */
    assert_int_equal(l.items[1].last_seen, 0);
    assert_false(l.items[1].current);
    parley_device_list_cleanup(&l);
    assert_int_equal(l.count, 0);

    assert_int_equal(parley_client_revoke_device(c, "d-2"), PARLEY_OK);
    assert_string_equal(x->f->last_path, "/v1/devices/d-2");
    /* Ids are percent-encoded into the path. */
    assert_int_equal(parley_client_revoke_device(c, "a/b c"), PARLEY_OK);
    assert_string_equal(x->f->last_path, "/v1/devices/a%2Fb%20c");
    assert_int_equal(parley_client_revoke_device(c, "d-9"), PARLEY_ERR_SERVER);
    int status;
    parley_client_last_error(c, &status, NULL, NULL);
    assert_int_equal(status, 404);
    assert_true(parley_client_logged_in(c));

    /* Revoking this device ends the session here and on disk. */
    assert_int_equal(parley_client_revoke_device(c, "d-1"), PARLEY_OK);
    assert_false(parley_client_logged_in(c));
    struct stat st;
    assert_int_equal(stat(x->creds, &st), -1);
    parley_client_free(c);
}

static void test_logout(void **state)
{
    struct fx *x = *state;
    struct parley_client *c = open_client(x);
    assert_int_equal(parley_client_logout(c), PARLEY_ERR_DENIED);
    login(c);
    int conns = x->f->connections;
    assert_int_equal(parley_client_logout(c), PARLEY_OK);
    assert_string_equal(x->f->last_method, "DELETE");
    assert_string_equal(x->f->last_path, "/v1/sessions/current");
    assert_string_equal(x->f->last_auth, "Bearer " TOKEN);
    assert_int_equal(x->f->connections, conns); /* keep-alive reused */
    assert_false(parley_client_logged_in(c));
    struct stat st;
    assert_int_equal(stat(x->creds, &st), -1);
    parley_client_free(c);

    /* A session the server already forgot (401) is still logged out locally. */
    c = open_client(x);
    login(c);
    x->f->revoked_self = true;
    assert_int_equal(parley_client_logout(c), PARLEY_OK);
    assert_false(parley_client_logged_in(c));
    parley_client_free(c);
}

static void test_unreachable(void **state)
{
    struct fx *x = *state;
    struct parley_client_options o = {
        .server_url = "http://127.0.0.1:1", .home_dir = x->home, .timeout_ms = 2000};
    struct parley_client *c = NULL;
    assert_int_equal(parley_client_open(&o, &c), PARLEY_OK);
    assert_int_equal(parley_client_login(c, "alice", "pw", NULL), PARLEY_ERR_IO);
    int status;
    const char *code, *msg;
    parley_client_last_error(c, &status, &code, &msg);
    assert_int_equal(status, 0);
    assert_null(code);
    assert_non_null(strstr(msg, "refused"));
    parley_client_free(c);

    c = NULL;
    assert_int_equal(parley_client_new("nonsense", x->home, &c), PARLEY_ERR_INVAL);
    assert_null(c);
}

static void test_corrupt_credentials(void **state)
{
    struct fx *x = *state;
    mkdir(x->home, 0700);
    FILE *f = fopen(x->creds, "w");
    fputs("{\"server\":\"x\"", f);
    fclose(f);
    struct parley_client *c = NULL;
    assert_int_equal(parley_client_new(x->f->url, x->home, &c), PARLEY_ERR_STORE);
    assert_null(c);
    /* Logging in replaces it. */
    unlink(x->creds);
    c = open_client(x);
    login(c);
    parley_client_free(c);
    assert_int_equal(parley_client_new(x->f->url, x->home, &c), PARLEY_OK);
    assert_true(parley_client_logged_in(c));
    parley_client_free(c);
}

/* Credentials that cannot be saved: the login still holds for this handle. */
static void test_unsavable_home(void **state)
{
    struct fx *x = *state;
    struct parley_client *c = NULL;
    assert_int_equal(parley_client_new(x->f->url, "/dev/null/parley", &c), PARLEY_OK);
    assert_int_equal(parley_client_login(c, "alice", "correct horse", NULL), PARLEY_ERR_STORE);
    const char *msg;
    parley_client_last_error(c, NULL, NULL, &msg);
    assert_non_null(strstr(msg, "/dev/null/parley"));
    assert_true(parley_client_logged_in(c));
    struct parley_profile p;
    assert_int_equal(parley_client_get_profile(c, &p), PARLEY_OK);
    parley_profile_cleanup(&p);
    parley_client_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_register, setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_persists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_profile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_devices, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_credentials, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unsavable_home, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}

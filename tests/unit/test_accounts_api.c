/*
 * test_accounts_api.c — the accounts API end to end in one process: a real http_server
 * on a loopback port 0 with only the accounts routes, a temporary SQLite store, and raw
 * HTTP/1.1 over sockets (one request per connection). Drives register, login, /v1/me,
 * devices, logout, the age gate, rate limiting, and scans the log for secrets (P24).
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <sodium.h>

#include "api/accounts.h"
#include "app.h"
#include "clock.h"
#include "config.h"
#include "http_server.h"
#include "log.h"
#include "ratelimit.h"
#include "store/store.h"

#define PASSWORD "correct horse battery"

struct fx {
    char dir[64];
    char db[128];
    char logpath[128];
    int logfd;
    struct config cfg;
    struct app app;
    struct http_server *srv;
    uint16_t port;
};

static struct fx F;

struct resp {
    int status;
    char head[4096];
    json_t *doc; /* NULL if no/invalid JSON body */
    char body[8192];
};

/* One request on a fresh connection ("Connection: close"), read to EOF. */
static int req(const char *method, const char *path, const char *token, const char *body,
               struct resp *r)
{
    memset(r, 0, sizeof *r);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(F.port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        close(fd);
        return -1;
    }
    char out[8192];
    char auth[128] = "";
    if (token)
        snprintf(auth, sizeof auth, "Authorization: Bearer %s\r\n", token);
    size_t blen = body ? strlen(body) : 0;
    int n = snprintf(out, sizeof out,
                     "%s %s HTTP/1.1\r\nHost: t\r\n%sContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                     method, path, auth, blen, body ? body : "");
    if (n < 0 || (size_t)n >= sizeof out || send(fd, out, (size_t)n, MSG_NOSIGNAL) != n) {
        close(fd);
        return -1;
    }
    static char in[65536];
    size_t len = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 20000) <= 0)
            break;
        ssize_t got = recv(fd, in + len, sizeof in - 1 - len, 0);
        if (got <= 0)
            break;
        len += (size_t)got;
    }
    close(fd);
    in[len] = '\0';
    char *eoh = strstr(in, "\r\n\r\n");
    if (!eoh || sscanf(in, "HTTP/1.1 %d", &r->status) != 1)
        return -1;
    size_t hl = (size_t)(eoh - in);
    if (hl >= sizeof r->head)
        return -1;
    memcpy(r->head, in, hl);
    snprintf(r->body, sizeof r->body, "%s", eoh + 4);
    if (r->body[0])
        r->doc = json_loads(r->body, 0, NULL);
    return 0;
}

static void resp_free(struct resp *r)
{
    json_decref(r->doc);
    r->doc = NULL;
}

static const char *jstr(const struct resp *r, const char *key)
{
    return json_string_value(json_object_get(r->doc, key));
}

static const char *err_code(const struct resp *r)
{
    return json_string_value(json_object_get(json_object_get(r->doc, "error"), "code"));
}

static void expect_error(const char *method, const char *path, const char *token, const char *body,
                         int status, const char *code)
{
    struct resp r;
    assert_int_equal(req(method, path, token, body, &r), 0);
    if (r.status != status || !err_code(&r) || strcmp(err_code(&r), code) != 0)
        fail_msg("%s %s: want %d %s, got %d %s", method, path, status, code, r.status, r.body);
    resp_free(&r);
}

static void date_years_ago(int years, int plus_days, char out[11])
{
    time_t t = (time_t)clock_now_s() + (time_t)plus_days * 86400;
    struct tm tm;
    gmtime_r(&t, &tm);
    /* Years back from today; 29 Feb rolls to 1 Mar, which keeps "exactly N years" safe
     * on the side tested (never older than intended). */
    unsigned y = (unsigned)(tm.tm_year + 1900 - years), m = (unsigned)tm.tm_mon + 1,
             d = (unsigned)tm.tm_mday;
    if (m == 2 && d == 29)
        m = 3, d = 1;
    snprintf(out, 11, "%04u-%02u-%02u", y % 10000, m % 100, d % 100);
}

static void register_ok(const char *username, const char *dob, const char *region,
                        char user_id[STORE_ID_LEN + 1])
{
    char body[512];
    snprintf(body, sizeof body,
             "{\"username\":\"%s\",\"name\":\"Test "
             "\\u00dcser\",\"dob\":\"%s\",\"password\":\"%s\"%s%s%s}",
             username, dob, PASSWORD, region ? ",\"region\":\"" : "", region ? region : "",
             region ? "\"" : "");
    struct resp r;
    assert_int_equal(req("POST", "/v1/accounts", NULL, body, &r), 0);
    if (r.status != 201)
        fail_msg("register %s: %d %s", username, r.status, r.body);
    assert_true(store_id_valid(jstr(&r, "user_id")));
    assert_int_equal(json_object_size(r.doc), 1);
    if (user_id)
        snprintf(user_id, STORE_ID_LEN + 1, "%s", jstr(&r, "user_id"));
    resp_free(&r);
}

static void login_ok(const char *username, const char *device, char token[64],
                     char device_id[STORE_ID_LEN + 1])
{
    char body[256];
    snprintf(body, sizeof body, "{\"username\":\"%s\",\"password\":\"%s\"%s%s%s}", username,
             PASSWORD, device ? ",\"device_name\":\"" : "", device ? device : "",
             device ? "\"" : "");
    struct resp r;
    assert_int_equal(req("POST", "/v1/sessions", NULL, body, &r), 0);
    if (r.status != 201)
        fail_msg("login %s: %d %s", username, r.status, r.body);
    assert_int_equal(strlen(jstr(&r, "token")), 43);
    snprintf(token, 64, "%s", jstr(&r, "token"));
    if (device_id)
        snprintf(device_id, STORE_ID_LEN + 1, "%s", jstr(&r, "device_id"));
    resp_free(&r);
}

static int setup(void **state)
{
    (void)state;
    memset(&F, 0, sizeof F);
    snprintf(F.dir, sizeof F.dir, "/tmp/parley-api-XXXXXX");
    if (!mkdtemp(F.dir))
        return -1;
    snprintf(F.db, sizeof F.db, "%s/parley.db", F.dir);
    snprintf(F.logpath, sizeof F.logpath, "%s/log", F.dir);
    F.logfd = open(F.logpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (F.logfd < 0)
        return -1;
    log_init(LOG_DEBUG, F.logfd);

    F.cfg.session_ttl_s = 3600;
    F.cfg.max_devices = 2;
    F.cfg.argon2_opslimit = 1;
    F.cfg.argon2_memlimit_kib = 8;
    F.cfg.rl_login_account_per_min = 5;
    F.cfg.rl_login_ip_per_min = 1000;
    F.cfg.rl_register_ip_per_hour = 1000;
    F.app.cfg = &F.cfg;
    if (store_open_sqlite(F.db, &F.app.store) ||
        ratelimit_new(F.cfg.rl_login_account_per_min, 60, 0, &F.app.rl_login_account) ||
        ratelimit_new(F.cfg.rl_login_ip_per_min, 60, 0, &F.app.rl_login_ip) ||
        ratelimit_new(F.cfg.rl_register_ip_per_hour, 3600, 0, &F.app.rl_register_ip))
        return -1;
    struct http_server_config hc = {.host = "127.0.0.1", .port = 0, .threads = 2};
    if (http_server_new(&hc, &F.srv) || accounts_register_routes(F.srv, &F.app) ||
        http_server_start(F.srv))
        return -1;
    F.port = http_server_port(F.srv);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    http_server_stop(F.srv, 2000);
    http_server_free(F.srv);
    ratelimit_free(F.app.rl_login_account);
    ratelimit_free(F.app.rl_login_ip);
    ratelimit_free(F.app.rl_register_ip);
    store_close(F.app.store);
    log_init(LOG_INFO, 2);
    close(F.logfd);
    char p[200];
    const char *sfx[] = {"", "-wal", "-shm"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(p, sizeof p, "%s%s", F.db, sfx[i]);
        unlink(p);
    }
    unlink(F.logpath);
    rmdir(F.dir);
    return 0;
}

static void test_register(void **state)
{
    (void)state;
    char dob[11], uid[STORE_ID_LEN + 1];
    register_ok("alice", "1990-05-17", "DE", uid);
    expect_error(
        "POST", "/v1/accounts", NULL,
        "{\"username\":\"alice\",\"name\":\"A\",\"dob\":\"1990-01-01\",\"password\":\"" PASSWORD
        "\"}",
        409, "username_taken");
    expect_error("POST", "/v1/accounts", NULL, "{\"username\":", 400, "invalid_json");
    expect_error("POST", "/v1/accounts", NULL, "[]", 400, "invalid_body");
    expect_error("POST", "/v1/accounts", NULL, NULL, 400, "invalid_json");
    expect_error(
        "POST", "/v1/accounts", NULL,
        "{\"username\":\"bob\",\"name\":\"B\",\"dob\":\"1990-01-01\",\"password\":\"" PASSWORD
        "\",\"email\":\"b@x\"}",
        400, "unknown_field");
    expect_error(
        "POST", "/v1/accounts", NULL,
        "{\"username\":\"bob\",\"name\":\"B\",\"dob\":\"2023-02-30\",\"password\":\"" PASSWORD
        "\"}",
        400, "invalid_date");
    expect_error("GET", "/v1/accounts", NULL, NULL, 405, "method_not_allowed");

    /* P29: 12 years and 364 days: refused, nothing stored, nothing logged. */
    char body[256];
    date_years_ago(13, 1, dob);
    snprintf(body, sizeof body,
             "{\"username\":\"kiddo\",\"name\":\"K\",\"dob\":\"%s\",\"password\":\"" PASSWORD "\"}",
             dob);
    expect_error("POST", "/v1/accounts", NULL, body, 403, "age_restricted");
    struct store_user u;
    assert_int_equal(store_user_get_by_username(F.app.store, "kiddo", &u), PARLEY_ERR_NOTFOUND);
    /* Exactly 13 today: allowed. */
    date_years_ago(13, 0, dob);
    register_ok("teen_us", dob, "US", NULL);
    register_ok("teen_no", dob, "NO", NULL);
    assert_int_equal(store_user_get_by_username(F.app.store, "teen_us", &u), PARLEY_OK);
    assert_false(u.parental_consent_required);
    assert_int_equal(store_user_get_by_username(F.app.store, "teen_no", &u), PARLEY_OK);
    assert_true(u.parental_consent_required);
    assert_non_null(strstr(u.password_hash, "$argon2id$"));
    assert_null(strstr(u.password_hash, PASSWORD));
}

static void test_sessions_me_devices(void **state)
{
    (void)state;
    char uid[STORE_ID_LEN + 1], t1[64], t2[64], d1[STORE_ID_LEN + 1], d2[STORE_ID_LEN + 1];
    char dob[11];
    date_years_ago(14, 0, dob);
    register_ok("carol", dob, NULL, uid);

    expect_error("POST", "/v1/sessions", NULL,
                 "{\"username\":\"carol\",\"password\":\"wrong password\"}", 401,
                 "invalid_credentials");
    expect_error("POST", "/v1/sessions", NULL,
                 "{\"username\":\"nobody\",\"password\":\"wrong password\"}", 401,
                 "invalid_credentials");
    expect_error("POST", "/v1/sessions", NULL, "{\"username\":\"NOT VALID\",\"password\":\"x\"}",
                 401, "invalid_credentials");
    login_ok("carol", "laptop", t1, d1);
    login_ok("carol", NULL, t2, d2);
    expect_error("POST", "/v1/sessions", NULL,
                 "{\"username\":\"carol\",\"password\":\"" PASSWORD "\"}", 409, "device_limit");

    /* /v1/me */
    struct resp r;
    assert_int_equal(req("GET", "/v1/me", t1, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(&r, "user_id"), uid);
    assert_string_equal(jstr(&r, "username"), "carol");
    assert_string_equal(jstr(&r, "name"), "Test \xc3\x9cser");
    assert_string_equal(jstr(&r, "dob"), dob);
    assert_true(json_is_null(json_object_get(r.doc, "region")));
    assert_true(json_is_null(json_object_get(r.doc, "gender")));
    assert_true(json_is_false(json_object_get(r.doc, "parental_consent_required")));
    assert_true(json_is_integer(json_object_get(r.doc, "created_at")));
    assert_int_equal(json_object_size(r.doc), 8);
    resp_free(&r);

    /* Rectification; moving into the EEA at 14 brings the consent flag (P29). */
    assert_int_equal(
        req("PATCH", "/v1/me", t1, "{\"name\":\"Carol C\",\"region\":\"FR\",\"gender\":\"f\"}", &r),
        0);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(&r, "name"), "Carol C");
    assert_string_equal(jstr(&r, "region"), "FR");
    assert_string_equal(jstr(&r, "gender"), "f");
    assert_true(json_is_true(json_object_get(r.doc, "parental_consent_required")));
    resp_free(&r);
    assert_int_equal(req("PATCH", "/v1/me", t2, "{\"gender\":null,\"region\":null}", &r), 0);
    assert_int_equal(r.status, 200);
    assert_true(json_is_null(json_object_get(r.doc, "gender")));
    assert_true(json_is_null(json_object_get(r.doc, "region")));
    assert_true(json_is_true(json_object_get(r.doc, "parental_consent_required")));
    resp_free(&r);
    expect_error("PATCH", "/v1/me", t1, "{\"dob\":\"1990-01-01\"}", 400, "unknown_field");
    expect_error("PATCH", "/v1/me", t1, "{\"name\":null}", 400, "invalid_type");
    expect_error("PATCH", "/v1/me", NULL, "{\"name\":\"x\"}", 401, "unauthorized");

    /* Devices. */
    assert_int_equal(req("GET", "/v1/devices", t1, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *devs = json_object_get(r.doc, "devices");
    assert_int_equal(json_array_size(devs), 2);
    int current = 0;
    for (size_t i = 0; i < 2; i++) {
        json_t *d = json_array_get(devs, i);
        const char *id = json_string_value(json_object_get(d, "device_id"));
        if (json_is_true(json_object_get(d, "current"))) {
            current++;
            assert_string_equal(id, d1);
            assert_string_equal(json_string_value(json_object_get(d, "name")), "laptop");
        } else {
            assert_string_equal(id, d2);
            assert_true(json_is_null(json_object_get(d, "name")));
        }
    }
    assert_int_equal(current, 1);
    resp_free(&r);

    /* Revoke device 2: its token dies at once; a slot frees up. */
    char path[128];
    snprintf(path, sizeof path, "/v1/devices/%s", d2);
    assert_int_equal(req("DELETE", path, t1, NULL, &r), 0);
    assert_int_equal(r.status, 204);
    resp_free(&r);
    expect_error("GET", "/v1/me", t2, NULL, 401, "unauthorized");
    expect_error("DELETE", path, t1, NULL, 404, "not_found");
    expect_error("DELETE", "/v1/devices/xyz", t1, NULL, 404, "not_found");
    /* Someone else's device is not found either. */
    char t3[64], d3[STORE_ID_LEN + 1];
    login_ok("alice", "phone", t3, d3);
    snprintf(path, sizeof path, "/v1/devices/%s", d1);
    expect_error("DELETE", path, t3, NULL, 404, "not_found");

    /* Logout. */
    assert_int_equal(req("DELETE", "/v1/sessions/current", t1, NULL, &r), 0);
    assert_int_equal(r.status, 204);
    resp_free(&r);
    expect_error("GET", "/v1/me", t1, NULL, 401, "unauthorized");
    expect_error("DELETE", "/v1/sessions/current", t1, NULL, 401, "unauthorized");
    expect_error("GET", "/v1/devices", NULL, NULL, 401, "unauthorized");
    expect_error("GET", "/v1/devices", "short", NULL, 401, "unauthorized");
    expect_error("GET", "/v1/me", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, 401,
                 "unauthorized");

    /* Expiry: move the clock past the TTL. */
    char t4[64];
    login_ok("carol", NULL, t4, NULL);
    assert_int_equal(req("GET", "/v1/me", t4, NULL, &r), 0);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    clock_set_offset_s(F.cfg.session_ttl_s + 1);
    expect_error("GET", "/v1/me", t4, NULL, 401, "unauthorized");
    clock_set_offset_s(0);

    /* Log scan (P24): no usernames, names, passwords, tokens, IPs or raw ids. */
    char logbuf[65536];
    int fd = open(F.logpath, O_RDONLY);
    assert_true(fd >= 0);
    ssize_t n = read(fd, logbuf, sizeof logbuf - 1);
    close(fd);
    assert_true(n > 0);
    logbuf[n] = '\0';
    const char *banned[] = {"carol", "alice", "kiddo", PASSWORD,  "127.0.0.1",       t1, t2, t3, t4,
                            uid,     d1,      d2,      "Carol C", "Test \xc3\x9cser"};
    for (size_t i = 0; i < sizeof banned / sizeof banned[0]; i++)
        if (strstr(logbuf, banned[i]))
            fail_msg("log contains \"%s\"", banned[i]);
    assert_non_null(strstr(logbuf, "\"login_ok\""));
    assert_non_null(strstr(logbuf, "\"login_failed\""));
    assert_non_null(strstr(logbuf, "\"device_revoked\""));
    assert_non_null(strstr(logbuf, "\"account_created\""));
}

static void test_rate_limits(void **state)
{
    (void)state;
    /* 5 login attempts per account per minute, then 429 with Retry-After. */
    for (int i = 0; i < 5; i++)
        expect_error("POST", "/v1/sessions", NULL,
                     "{\"username\":\"rl_probe\",\"password\":\"nope nope\"}", 401,
                     "invalid_credentials");
    struct resp r;
    assert_int_equal(req("POST", "/v1/sessions", NULL,
                         "{\"username\":\"rl_probe\",\"password\":\"nope nope\"}", &r),
                     0);
    assert_int_equal(r.status, 429);
    assert_string_equal(err_code(&r), "rate_limited");
    const char *ra = strstr(r.head, "\r\nRetry-After:");
    assert_non_null(ra);
    long secs = strtol(ra + 14, NULL, 10);
    assert_true(secs >= 1 && secs <= 60);
    resp_free(&r);
    /* Other accounts are unaffected. */
    expect_error("POST", "/v1/sessions", NULL,
                 "{\"username\":\"rl_other\",\"password\":\"nope nope\"}", 401,
                 "invalid_credentials");
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register),
        cmocka_unit_test(test_sessions_me_devices),
        cmocka_unit_test(test_rate_limits),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}

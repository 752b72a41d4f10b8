/*
 * account.c — the account calls of parley/client.h: register, login, logout, profile,
 * devices. Each is one HTTP request through client_call(); answers are validated and
 * copied into the caller's structs, so no JSON crosses the public API.
 */
#include "client_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>

#define MAX_TOKEN 4096

/* Copy a field that may be a string, a number or null/missing. required: missing or
 * null is a protocol error. Numbers are rendered in decimal (timestamps). */
static enum parley_err field(json_t *o, const char *key, bool required, char **out)
{
    *out = NULL;
    json_t *v = json_object_get(o, key);
    char num[32];
    const char *s = NULL;
    if (json_is_string(v)) {
        s = json_string_value(v);
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        s = num;
    } else if (json_is_real(v)) {
        snprintf(num, sizeof num, "%.3f", json_real_value(v));
        s = num;
    } else if (!v || json_is_null(v)) {
        return required ? PARLEY_ERR_PROTO : PARLEY_OK;
    } else {
        return PARLEY_ERR_PROTO;
    }
    *out = strdup(s);
    return *out ? PARLEY_OK : PARLEY_ERR_NOMEM;
}

/* A timestamp: an integer (seconds since the epoch, what parleyd sends) or an RFC 3339
 * UTC string "YYYY-MM-DDTHH:MM:SSZ"; null or missing is 0. */
static enum parley_err time_field(json_t *o, const char *key, int64_t *out)
{
    *out = 0;
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v))
        return PARLEY_OK;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return PARLEY_OK;
    }
    const char *s = json_string_value(v);
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    int used = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 6)
        return PARLEY_ERR_PROTO;
    const char *end = s + used;
    if (*end == '.') /* fractional seconds: dropped */
        while (isdigit((unsigned char)*++end)) {
        }
    if (strcmp(end, "Z") != 0 && strcmp(end, "+00:00") != 0)
        return PARLEY_ERR_PROTO;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = (int64_t)timegm(&tm);
    return PARLEY_OK;
}

static enum parley_err malformed(struct parley_client *c, enum parley_err rc)
{
    if (rc == PARLEY_ERR_PROTO)
        client_set_error(c, 0, NULL, "malformed answer from the server");
    return rc;
}

static bool dob_ok(const char *d)
{
    if (strlen(d) != 10 || d[4] != '-' || d[7] != '-')
        return false;
    for (int i = 0; i < 10; i++)
        if (i != 4 && i != 7 && !isdigit((unsigned char)d[i]))
            return false;
    int m = (d[5] - '0') * 10 + (d[6] - '0');
    int day = (d[8] - '0') * 10 + (d[9] - '0');
    return m >= 1 && m <= 12 && day >= 1 && day <= 31;
}

enum parley_err parley_client_register(struct parley_client *c,
                                       const struct parley_account_params *p, char **user_id)
{
    if (!c)
        return PARLEY_ERR_INVAL;
    client_clear_error(c);
    if (!p || !p->username || !*p->username || !p->name || !*p->name || !p->dob || !p->password ||
        !*p->password) {
        client_set_error(c, 0, NULL, "username, name, dob and password are required");
        return PARLEY_ERR_INVAL;
    }
    if (!dob_ok(p->dob)) {
        client_set_error(c, 0, NULL, "date of birth must be YYYY-MM-DD");
        return PARLEY_ERR_INVAL;
    }
    json_t *body = json_pack("{s:s, s:s, s:s, s:s}", "username", p->username, "name", p->name,
                             "dob", p->dob, "password", p->password);
    if (!body)
        return PARLEY_ERR_NOMEM; /* also: invalid UTF-8 */
    if ((p->region && json_object_set_new(body, "region", json_string(p->region))) ||
        (p->gender && json_object_set_new(body, "gender", json_string(p->gender)))) {
        client_json_wipe(body, "password");
        json_decref(body);
        client_set_error(c, 0, NULL, "region and gender must be UTF-8 text");
        return PARLEY_ERR_INVAL;
    }
    json_t *ans = NULL;
    enum parley_err rc = client_call(c, "POST", "/v1/accounts", body, true, false, NULL, &ans);
    json_decref(body);
    if (rc)
        return rc;
    char *id = NULL;
    rc = malformed(c, field(ans, "user_id", true, &id));
    json_decref(ans);
    if (rc)
        return rc;
    if (user_id)
        *user_id = id;
    else
        free(id);
    return PARLEY_OK;
}

enum parley_err parley_client_login(struct parley_client *c, const char *username,
                                    const char *password, const char *device_name)
{
    if (!c)
        return PARLEY_ERR_INVAL;
    client_clear_error(c);
    if (!username || !*username || !password || !*password) {
        client_set_error(c, 0, NULL, "username and password are required");
        return PARLEY_ERR_INVAL;
    }
    json_t *body = json_pack("{s:s, s:s}", "username", username, "password", password);
    if (!body)
        return PARLEY_ERR_NOMEM;
    if (device_name && json_object_set_new(body, "device_name", json_string(device_name))) {
        client_json_wipe(body, "password");
        json_decref(body);
        return PARLEY_ERR_INVAL;
    }
    json_t *ans = NULL;
    enum parley_err rc = client_call(c, "POST", "/v1/sessions", body, true, false, NULL, &ans);
    json_decref(body);
    if (rc)
        return rc;

    struct client_session s;
    memset(&s, 0, sizeof s);
    json_t *tok = json_object_get(ans, "token");
    const char *token = json_string_value(tok);
    size_t tl = token ? json_string_length(tok) : 0;
    bool tok_ok = token && tl > 0 && tl <= MAX_TOKEN;
    for (size_t i = 0; tok_ok && i < tl; i++)
        tok_ok = (unsigned char)token[i] > ' ' && (unsigned char)token[i] < 0x7f;
    if (!tok_ok) {
        rc = malformed(c, PARLEY_ERR_PROTO);
        goto out;
    }
    rc = field(ans, "user_id", true, &s.user_id);
    if (!rc)
        rc = field(ans, "device_id", true, &s.device_id);
    if (rc) {
        rc = malformed(c, rc);
        goto out;
    }
    s.username = strdup(username);
    s.server = strdup(c->server);
    s.token = sodium_malloc(tl + 1);
    if (!s.username || !s.server || !s.token) {
        rc = PARLEY_ERR_NOMEM;
        goto out;
    }
    memcpy(s.token, token, tl + 1);
    client_session_cleanup(&c->s);
    c->s = s;
    memset(&s, 0, sizeof s);
    rc = home_save(c);
    if (rc && !c->err_msg[0])
        client_set_error(c, 0, NULL, "logged in, but the credentials could not be saved");
out:
    client_session_cleanup(&s);
    client_json_wipe(ans, "token");
    json_decref(ans);
    return rc;
}

static void forget_session(struct parley_client *c)
{
    client_session_cleanup(&c->s);
}

enum parley_err parley_client_logout(struct parley_client *c)
{
    if (!c)
        return PARLEY_ERR_INVAL;
    client_clear_error(c);
    int status = 0;
    enum parley_err rc =
        client_call(c, "DELETE", "/v1/sessions/current", NULL, false, true, &status, NULL);
    if (rc == PARLEY_ERR_SERVER && c->err_status == 401)
        rc = PARLEY_OK; /* already gone on the server: still forget it here */
    if (rc)
        return rc;
    forget_session(c);
    client_clear_error(c);
    return home_forget(c);
}

void parley_profile_cleanup(struct parley_profile *p)
{
    if (!p)
        return;
    free(p->user_id);
    free(p->username);
    free(p->name);
    free(p->dob);
    free(p->region);
    free(p->gender);
    memset(p, 0, sizeof *p);
}

static enum parley_err parse_profile(json_t *o, struct parley_profile *out)
{
    struct parley_profile p;
    memset(&p, 0, sizeof p);
    enum parley_err rc = PARLEY_ERR_PROTO;
    if (!json_is_object(o))
        goto out;
    if ((rc = field(o, "user_id", true, &p.user_id)) ||
        (rc = field(o, "username", true, &p.username)) || (rc = field(o, "name", false, &p.name)) ||
        (rc = field(o, "dob", false, &p.dob)) || (rc = field(o, "region", false, &p.region)) ||
        (rc = field(o, "gender", false, &p.gender)) ||
        (rc = time_field(o, "created_at", &p.created_at)))
        goto out;
    json_t *pc = json_object_get(o, "parental_consent_required");
    if (pc && !json_is_boolean(pc) && !json_is_null(pc)) {
        rc = PARLEY_ERR_PROTO;
        goto out;
    }
    p.parental_consent_required = json_is_true(pc);
    *out = p;
    memset(&p, 0, sizeof p);
out:
    parley_profile_cleanup(&p);
    return rc;
}

enum parley_err parley_client_get_profile(struct parley_client *c, struct parley_profile *out)
{
    if (!c || !out)
        return PARLEY_ERR_INVAL;
    client_clear_error(c);
    json_t *ans = NULL;
    enum parley_err rc = client_call(c, "GET", "/v1/me", NULL, false, true, NULL, &ans);
    if (rc)
        return rc;
    rc = malformed(c, parse_profile(ans, out));
    json_decref(ans);
    return rc;
}

enum parley_err parley_client_update_profile(struct parley_client *c,
                                             const struct parley_profile_update *u,
                                             struct parley_profile *out)
{
    if (!c)
        return PARLEY_ERR_INVAL;
    client_clear_error(c);
    if (!u || (!u->name && !u->region && !u->gender)) {
        client_set_error(c, 0, NULL, "nothing to change");
        return PARLEY_ERR_INVAL;
    }
    json_t *body = json_object();
    if (!body)
        return PARLEY_ERR_NOMEM;
    if ((u->name && json_object_set_new(body, "name", json_string(u->name))) ||
        (u->region && json_object_set_new(body, "region", json_string(u->region))) ||
        (u->gender && json_object_set_new(body, "gender", json_string(u->gender)))) {
        json_decref(body);
        client_set_error(c, 0, NULL, "profile fields must be UTF-8 text");
        return PARLEY_ERR_INVAL;
    }
    json_t *ans = NULL;
    enum parley_err rc = client_call(c, "PATCH", "/v1/me", body, false, true, NULL, &ans);
    json_decref(body);
    if (rc)
        return rc;
    if (out)
        rc = malformed(c, parse_profile(ans, out));
    json_decref(ans);
    return rc;
}

void parley_device_list_cleanup(struct parley_device_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++) {
        free(l->items[i].device_id);
        free(l->items[i].name);
    }
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

enum parley_err parley_client_list_devices(struct parley_client *c, struct parley_device_list *out)
{
    if (!c || !out)
        return PARLEY_ERR_INVAL;
    client_clear_error(c);
    json_t *ans = NULL;
    enum parley_err rc = client_call(c, "GET", "/v1/devices", NULL, false, true, NULL, &ans);
    if (rc)
        return rc;
    struct parley_device_list l = {NULL, 0};
    json_t *arr = json_object_get(ans, "devices");
    if (!json_is_array(arr)) {
        rc = PARLEY_ERR_PROTO;
        goto out;
    }
    size_t n = json_array_size(arr);
    if (n) {
        l.items = calloc(n, sizeof l.items[0]);
        if (!l.items) {
            rc = PARLEY_ERR_NOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < n; i++) {
        json_t *d = json_array_get(arr, i);
        struct parley_device *dv = &l.items[i];
        l.count = i + 1; /* so cleanup frees what this entry got */
        if (!json_is_object(d)) {
            rc = PARLEY_ERR_PROTO;
            goto out;
        }
        if ((rc = field(d, "device_id", true, &dv->device_id)) ||
            (rc = field(d, "name", false, &dv->name)) ||
            (rc = time_field(d, "created_at", &dv->created_at)) ||
            (rc = time_field(d, "last_seen", &dv->last_seen)))
            goto out;
        json_t *cur = json_object_get(d, "current");
        dv->current = json_is_true(cur);
        if (!cur && c->s.device_id)
            dv->current = strcmp(dv->device_id, c->s.device_id) == 0;
    }
    *out = l;
    memset(&l, 0, sizeof l);
out:
    parley_device_list_cleanup(&l);
    json_decref(ans);
    return malformed(c, rc);
}

enum parley_err parley_client_revoke_device(struct parley_client *c, const char *device_id)
{
    if (!c)
        return PARLEY_ERR_INVAL;
    client_clear_error(c);
    if (!device_id || !*device_id) {
        client_set_error(c, 0, NULL, "a device id is required");
        return PARLEY_ERR_INVAL;
    }
    char seg[600], path[640];
    if (client_path_segment(device_id, seg, sizeof seg)) {
        client_set_error(c, 0, NULL, "device id too long");
        return PARLEY_ERR_INVAL;
    }
    snprintf(path, sizeof path, "/v1/devices/%s", seg);
    bool self = c->s.device_id && strcmp(c->s.device_id, device_id) == 0;
    enum parley_err rc = client_call(c, "DELETE", path, NULL, false, true, NULL, NULL);
    if (rc)
        return rc;
    if (self) {
        forget_session(c);
        return home_forget(c);
    }
    return PARLEY_OK;
}

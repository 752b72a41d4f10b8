/*
 * groups.c — the /v1/groups endpoints (see groups.h for the rules).
 *
 * Bodies and path parameters are checked on the loop thread; everything that reads the
 * store (membership and admin checks included) runs on the thread pool, which also
 * builds the answer as JSON, so the done callbacks only send it. A job carries either
 * an answer (status + JSON, or 204), an API refusal (status + code + message) or a store
 * error.
 */
#include "groups.h"

#include <jansson.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accounts_validate.h"
#include "app.h"
#include "auth.h"
#include "body.h"
#include "clock.h"
#include "http_server.h"
#include "job.h"
#include "json_input.h"
#include "respond.h"
#include "store/store.h"

typedef char username_t[ACCOUNTS_USERNAME_MAX + 1];

struct groups_job {
    struct api_job base; /* app, who */
    int64_t now;
    char group_id[STORE_ID_LEN + 1];
    char name[STORE_GROUP_NAME_MAX + 1];
    /* POST /v1/groups: the other members' usernames, distinct */
    username_t *usernames;
    size_t n_usernames;
    /* members endpoints: the target user ("" when the path held no valid username) */
    username_t target;
    bool has_admin, admin;
    /* the group as last read */
    struct store_group g;
    struct store_group_member *members;
    size_t n_members;
    /* outcome */
    enum parley_err err;
    int status;       /* answer or refusal status; 0 with err set: store failure */
    const char *code; /* refusal code, or NULL for an answer */
    char message[96];
    json_t *out; /* answer body; NULL with status 204 */
};

static void job_release(void *p)
{
    struct groups_job *j = p;
    free(j->usernames);
    free(j->members);
    json_decref(j->out);
    free(j);
}

static struct groups_job *job_new(struct http_request *req, struct app *app,
                                  const struct auth_info *who)
{
    struct groups_job *j = api_job_new(req, sizeof *j, app, who, job_release);
    if (j)
        j->now = clock_now_s();
    return j;
}

static void job_done(struct http_request *req, void *p)
{
    struct groups_job *j = p;
    if (j->code) {
        http_respond_error(req, j->status, j->code, j->message);
    } else if (j->err) {
        respond_failure(req, j->err);
    } else if (j->status == 204) {
        respond_no_content(req);
    } else {
        respond_json(req, j->status, j->out);
        j->out = NULL;
    }
    api_job_free(j);
}

__attribute__((format(printf, 4, 5))) static void refuse(struct groups_job *j, int status,
                                                         const char *code, const char *fmt, ...)
{
    va_list ap;
    j->status = status;
    j->code = code;
    va_start(ap, fmt);
    vsnprintf(j->message, sizeof j->message, fmt, ap);
    va_end(ap);
}

static void not_found(struct groups_job *j)
{
    refuse(j, 404, "not_found", "no such group");
}

/* ---- the group as JSON ---- */

static json_t *group_json(const struct store_group *g, const struct store_group_member *m, size_t n)
{
    json_t *arr = json_array();
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:O}", "group_id", g->id, "name", g->name,
                          "created_at", (json_int_t)g->created_at, "updated_at",
                          (json_int_t)g->updated_at, "members", arr);
    if (!arr || !o)
        goto fail;
    for (size_t i = 0; i < n; i++) {
        json_t *e =
            json_pack("{s:s, s:s, s:b, s:I}", "user_id", m[i].user_id, "username", m[i].username,
                      "admin", m[i].admin, "joined_at", (json_int_t)m[i].joined_at);
        if (!e || json_array_append_new(arr, e) != 0)
            goto fail;
    }
    json_decref(arr);
    return o;
fail:
    json_decref(arr);
    json_decref(o);
    return NULL;
}

/* Read the group and its members into j. */
static enum parley_err load(struct groups_job *j)
{
    free(j->members);
    j->members = NULL;
    j->n_members = 0;
    return store_group_get(j->base.app->store, j->group_id, &j->g, &j->members, &j->n_members);
}

static struct store_group_member *find_user(struct groups_job *j, const char *user_id)
{
    for (size_t i = 0; i < j->n_members; i++)
        if (strcmp(j->members[i].user_id, user_id) == 0)
            return &j->members[i];
    return NULL;
}

static struct store_group_member *find_username(struct groups_job *j, const char *username)
{
    for (size_t i = 0; i < j->n_members; i++)
        if (username[0] && strcmp(j->members[i].username, username) == 0)
            return &j->members[i];
    return NULL;
}

static size_t count_admins(const struct groups_job *j)
{
    size_t n = 0;
    for (size_t i = 0; i < j->n_members; i++)
        n += j->members[i].admin;
    return n;
}

/* Load the group for the caller: j->err, or a 404 refusal for a non-member; returns the
 * caller's member row or NULL (then the job's outcome is set). */
static struct store_group_member *load_as_member(struct groups_job *j)
{
    struct store_group_member *me;

    j->err = load(j);
    if (j->err == PARLEY_ERR_NOTFOUND) {
        j->err = PARLEY_OK;
        not_found(j);
        return NULL;
    }
    if (j->err)
        return NULL;
    me = find_user(j, j->base.who.user_id);
    if (!me)
        not_found(j); /* P20 and no probing: a non-member cannot tell the group exists */
    return me;
}

/* Reload and answer 200 with the group. */
static void answer_group(struct groups_job *j, int status)
{
    j->err = load(j);
    if (j->err)
        return;
    j->out = group_json(&j->g, j->members, j->n_members);
    if (!j->out)
        j->err = PARLEY_ERR_NOMEM;
    else
        j->status = status;
}

/* ---- shared decoding ---- */

static bool decode_name(const json_t *v, char out[STORE_GROUP_NAME_MAX + 1],
                        struct json_input_error *err)
{
    size_t n = json_string_length(v);
    if (n > STORE_GROUP_NAME_MAX ||
        !accounts_validate_text(json_string_value(v), n, 1, ACCOUNTS_NAME_MAX_CHARS)) {
        body_error(err, "invalid_name",
                   "name must be 1-64 characters of UTF-8 text without control characters");
        return false;
    }
    memcpy(out, json_string_value(v), n);
    out[n] = '\0';
    return true;
}

static bool valid_username(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    return s && n <= ACCOUNTS_USERNAME_MAX && accounts_validate_username(s, n);
}

/* The {id} path parameter, or a 404 answer (false). */
static bool group_param(struct http_request *req, struct groups_job *j)
{
    const char *id = req->n_params >= 1 ? req->params[0] : NULL;
    if (!store_id_valid(id)) {
        http_respond_error(req, 404, "not_found", "no such group");
        return false;
    }
    memcpy(j->group_id, id, STORE_ID_LEN + 1);
    return true;
}

/* ---- POST /v1/groups ---- */

static void create_work(void *p)
{
    struct groups_job *j = p;
    struct store_group_member *m;
    size_t n = 1;

    m = calloc(j->n_usernames + 1, sizeof *m);
    if (!m) {
        j->err = PARLEY_ERR_NOMEM;
        return;
    }
    memcpy(m[0].user_id, j->base.who.user_id, sizeof m[0].user_id);
    m[0].admin = true;
    m[0].joined_at = j->now;
    for (size_t i = 0; i < j->n_usernames; i++) {
        struct store_user u;
        j->err = store_user_get_by_username(j->base.app->store, j->usernames[i], &u);
        if (j->err == PARLEY_OK && strcmp(u.id, j->base.who.user_id) != 0) {
            memcpy(m[n].user_id, u.id, sizeof m[n].user_id);
            m[n].joined_at = j->now;
            n++;
        }
        sodium_memzero(&u, sizeof u); /* the row holds a password hash */
        if (j->err == PARLEY_ERR_NOTFOUND) {
            j->err = PARLEY_OK;
            refuse(j, 404, "user_not_found", "no user \"%s\"", j->usernames[i]);
            goto out;
        }
        if (j->err)
            goto out;
    }
    if (n > STORE_GROUP_MEMBERS_MAX) {
        refuse(j, 400, "too_many_members", "a group has at most %u members",
               (unsigned)STORE_GROUP_MEMBERS_MAX);
        goto out;
    }
    memset(&j->g, 0, sizeof j->g);
    store_id_new(j->g.id);
    memcpy(j->g.name, j->name, sizeof j->g.name);
    j->g.created_at = j->now;
    j->g.updated_at = j->now;
    j->err = store_group_create(j->base.app->store, &j->g, m, n);
    if (j->err == PARLEY_ERR_NOTFOUND) { /* a member was deleted meanwhile */
        j->err = PARLEY_OK;
        refuse(j, 404, "user_not_found", "a member does not exist");
        goto out;
    }
    if (j->err == PARLEY_ERR_LIMIT) {
        j->err = PARLEY_OK;
        refuse(j, 400, "too_many_members", "a group has at most %u members",
               (unsigned)STORE_GROUP_MEMBERS_MAX);
        goto out;
    }
    if (j->err)
        goto out;
    memcpy(j->group_id, j->g.id, sizeof j->group_id);
    answer_group(j, 201);
out:
    free(m);
}

static enum parley_err decode_create(const struct http_request *req, struct groups_job *j,
                                     struct json_input_error *err)
{
    static const struct body_field fields[] = {
        {"name", BODY_STRING, true},
        {"members", BODY_ARRAY, false},
    };
    json_t *root = NULL, *v[2], *e;
    size_t i;
    enum parley_err rc = body_parse(req->body, req->body_len, &root, err);

    if (rc)
        return rc;
    if ((rc = body_fields(root, NULL, fields, 2, v, err)))
        goto out;
    rc = PARLEY_ERR_INVAL;
    if (!decode_name(v[0], j->name, err))
        goto out;
    if (v[1] && json_array_size(v[1]) > 0) {
        /* The creator is a member too: at most MAX - 1 others. */
        if (json_array_size(v[1]) > STORE_GROUP_MEMBERS_MAX) {
            body_error(err, "too_many_members", "a group has at most %u members",
                       (unsigned)STORE_GROUP_MEMBERS_MAX);
            goto out;
        }
        j->usernames = calloc(json_array_size(v[1]), sizeof *j->usernames);
        if (!j->usernames) {
            rc = PARLEY_ERR_NOMEM;
            goto out;
        }
        json_array_foreach(v[1], i, e)
        {
            const char *s = json_string_value(e);
            bool seen = false;
            if (!json_is_string(e)) {
                body_error(err, "invalid_type", "members must be an array of usernames");
                goto out;
            }
            if (json_string_length(e) != strlen(s) || !valid_username(s)) {
                body_error(err, "invalid_username", "members[%zu] is not a valid username", i);
                goto out;
            }
            for (size_t k = 0; k < j->n_usernames && !seen; k++)
                seen = strcmp(j->usernames[k], s) == 0;
            if (!seen)
                snprintf(j->usernames[j->n_usernames++], sizeof(username_t), "%s", s);
        }
    }
    rc = PARLEY_OK;
out:
    json_decref(root);
    return rc;
}

static void create_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                          void *arg)
{
    struct json_input_error ierr;
    struct groups_job *j = job_new(req, app, who);
    enum parley_err err;

    (void)arg;
    if (!j)
        return;
    if ((err = decode_create(req, j, &ierr))) {
        respond_decode_failure(req, err, &ierr);
        api_job_free(j);
        return;
    }
    api_job_start(req, j, create_work, job_done);
}

static void h_create(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, create_authed, NULL);
}

/* ---- GET /v1/groups ---- */

static void list_work(void *p)
{
    struct groups_job *j = p;
    struct store_group *list = NULL;
    size_t n = 0;
    json_t *arr = json_array();

    j->out = json_pack("{s:O}", "groups", arr);
    if (!arr || !j->out) {
        j->err = PARLEY_ERR_NOMEM;
        goto out;
    }
    j->err = store_group_list(j->base.app->store, j->base.who.user_id, &list, &n);
    for (size_t i = 0; i < n && !j->err; i++) {
        memcpy(j->group_id, list[i].id, sizeof j->group_id);
        j->err = load(j);
        if (j->err == PARLEY_ERR_NOTFOUND) { /* deleted meanwhile */
            j->err = PARLEY_OK;
            continue;
        }
        if (!j->err && json_array_append_new(arr, group_json(&j->g, j->members, j->n_members)) != 0)
            j->err = PARLEY_ERR_NOMEM;
    }
    if (!j->err)
        j->status = 200;
out:
    free(list);
    json_decref(arr);
}

static void list_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                        void *arg)
{
    struct groups_job *j = job_new(req, app, who);
    (void)arg;
    if (j)
        api_job_start(req, j, list_work, job_done);
}

static void h_list(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, list_authed, NULL);
}

/* ---- GET /v1/groups/{id} ---- */

static void get_work(void *p)
{
    struct groups_job *j = p;
    if (!load_as_member(j))
        return;
    j->out = group_json(&j->g, j->members, j->n_members);
    if (!j->out)
        j->err = PARLEY_ERR_NOMEM;
    else
        j->status = 200;
}

static void get_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                       void *arg)
{
    struct groups_job *j = job_new(req, app, who);
    (void)arg;
    if (!j)
        return;
    if (!group_param(req, j)) {
        api_job_free(j);
        return;
    }
    api_job_start(req, j, get_work, job_done);
}

static void h_get(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, get_authed, NULL);
}

/* ---- PATCH /v1/groups/{id} ---- */

static void rename_work(void *p)
{
    struct groups_job *j = p;
    struct store_group_member *me = load_as_member(j);

    if (!me)
        return;
    if (!me->admin) {
        refuse(j, 403, "not_admin", "only an admin of the group may rename it");
        return;
    }
    j->err = store_group_rename(j->base.app->store, j->group_id, j->name, j->now);
    if (j->err == PARLEY_ERR_NOTFOUND) {
        j->err = PARLEY_OK;
        not_found(j);
        return;
    }
    if (!j->err)
        answer_group(j, 200);
}

static void rename_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                          void *arg)
{
    static const struct body_field fields[] = {{"name", BODY_STRING, true}};
    struct json_input_error ierr;
    struct groups_job *j = job_new(req, app, who);
    json_t *root = NULL, *v[1];
    enum parley_err err;

    (void)arg;
    if (!j)
        return;
    if (!group_param(req, j))
        goto fail;
    err = body_decode(req->body, req->body_len, fields, 1, &root, v, &ierr);
    if (!err && !decode_name(v[0], j->name, &ierr))
        err = PARLEY_ERR_INVAL;
    json_decref(root);
    if (err) {
        respond_decode_failure(req, err, &ierr);
        goto fail;
    }
    api_job_start(req, j, rename_work, job_done);
    return;
fail:
    api_job_free(j);
}

static void h_rename(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, rename_authed, NULL);
}

/* ---- POST /v1/groups/{id}/members ---- */

static void add_work(void *p)
{
    struct groups_job *j = p;
    struct store_group_member *me = load_as_member(j), *cur, m;
    struct store_user u;

    if (!me)
        return;
    if (!me->admin) {
        refuse(j, 403, "not_admin", "only an admin of the group may add members");
        return;
    }
    memset(&m, 0, sizeof m);
    cur = find_username(j, j->target);
    if (cur) {
        memcpy(m.user_id, cur->user_id, sizeof m.user_id);
        m.admin = j->has_admin ? j->admin : cur->admin;
        if (cur->admin && !m.admin && count_admins(j) == 1) {
            refuse(j, 409, "last_admin",
                   "the group needs an admin: make another member admin first");
            return;
        }
    } else {
        j->err = store_user_get_by_username(j->base.app->store, j->target, &u);
        if (j->err == PARLEY_OK)
            memcpy(m.user_id, u.id, sizeof m.user_id);
        sodium_memzero(&u, sizeof u);
        if (j->err == PARLEY_ERR_NOTFOUND) {
            j->err = PARLEY_OK;
            refuse(j, 404, "user_not_found", "no user \"%s\"", j->target);
            return;
        }
        if (j->err)
            return;
        m.admin = j->has_admin && j->admin;
    }
    j->err = store_group_member_set(j->base.app->store, j->group_id, &m, j->now);
    if (j->err == PARLEY_ERR_LIMIT) {
        j->err = PARLEY_OK;
        refuse(j, 409, "group_full", "a group has at most %u members",
               (unsigned)STORE_GROUP_MEMBERS_MAX);
        return;
    }
    if (j->err == PARLEY_ERR_NOTFOUND) { /* group or user deleted meanwhile */
        j->err = PARLEY_OK;
        not_found(j);
        return;
    }
    if (!j->err)
        answer_group(j, 200);
}

static void add_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                       void *arg)
{
    static const struct body_field fields[] = {
        {"username", BODY_STRING, true},
        {"admin", BODY_BOOL, false},
    };
    struct json_input_error ierr;
    struct groups_job *j = job_new(req, app, who);
    json_t *root = NULL, *v[2];
    enum parley_err err;

    (void)arg;
    if (!j)
        return;
    if (!group_param(req, j))
        goto fail;
    err = body_decode(req->body, req->body_len, fields, 2, &root, v, &ierr);
    if (!err) {
        const char *s = json_string_value(v[0]);
        if (json_string_length(v[0]) != strlen(s) || !valid_username(s)) {
            body_error(&ierr, "invalid_username", "username is not a valid username");
            err = PARLEY_ERR_INVAL;
        } else {
            snprintf(j->target, sizeof j->target, "%s", s);
            j->has_admin = v[1] != NULL;
            j->admin = v[1] && json_is_true(v[1]);
        }
    }
    json_decref(root);
    if (err) {
        respond_decode_failure(req, err, &ierr);
        goto fail;
    }
    api_job_start(req, j, add_work, job_done);
    return;
fail:
    api_job_free(j);
}

static void h_add(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, add_authed, NULL);
}

/* ---- DELETE /v1/groups/{id}/members/{username} ---- */

static void remove_work(void *p)
{
    struct groups_job *j = p;
    struct store_group_member *me = load_as_member(j), *target;
    bool self;

    if (!me)
        return;
    self = j->target[0] && strcmp(me->username, j->target) == 0;
    if (!self && !me->admin) {
        refuse(j, 403, "not_admin", "only an admin of the group may remove other members");
        return;
    }
    target = find_username(j, j->target);
    if (!target) {
        refuse(j, 404, "not_member", "this user is not a member of the group");
        return;
    }
    j->err = store_group_member_remove(j->base.app->store, j->group_id, target->user_id, j->now);
    if (j->err == PARLEY_ERR_NOTFOUND) { /* removed meanwhile */
        j->err = PARLEY_OK;
        refuse(j, 404, "not_member", "this user is not a member of the group");
        return;
    }
    if (j->err)
        return;
    /* A group keeps an admin: the longest-standing member (members come in joining
     * order) takes over when the last admin is gone. */
    j->err = load(j);
    if (j->err == PARLEY_ERR_NOTFOUND) { /* the last member left: the group is gone */
        j->err = PARLEY_OK;
        j->status = 204;
        return;
    }
    if (j->err)
        return;
    if (j->n_members > 0 && count_admins(j) == 0) {
        struct store_group_member heir = j->members[0];
        heir.admin = true;
        j->err = store_group_member_set(j->base.app->store, j->group_id, &heir, j->now);
        if (j->err)
            return;
    }
    if (self)
        j->status = 204;
    else
        answer_group(j, 200);
}

static void remove_authed(struct http_request *req, struct app *app, const struct auth_info *who,
                          void *arg)
{
    struct groups_job *j = job_new(req, app, who);
    const char *name = req->n_params >= 2 ? req->params[1] : NULL;

    (void)arg;
    if (!j)
        return;
    if (!group_param(req, j)) {
        api_job_free(j);
        return;
    }
    if (valid_username(name))
        snprintf(j->target, sizeof j->target, "%s", name);
    api_job_start(req, j, remove_work, job_done);
}

static void h_remove(struct http_request *req, void *ctx)
{
    auth_then(req, ctx, remove_authed, NULL);
}

enum parley_err groups_register_routes(struct http_server *srv, struct app *app)
{
    enum parley_err err = http_server_route(srv, "POST", "/v1/groups", h_create, app);
    if (!err)
        err = http_server_route(srv, "GET", "/v1/groups", h_list, app);
    if (!err)
        err = http_server_route(srv, "GET", "/v1/groups/{id}", h_get, app);
    if (!err)
        err = http_server_route(srv, "PATCH", "/v1/groups/{id}", h_rename, app);
    if (!err)
        err = http_server_route(srv, "POST", "/v1/groups/{id}/members", h_add, app);
    if (!err)
        err = http_server_route(srv, "DELETE", "/v1/groups/{id}/members/{username}", h_remove, app);
    return err;
}

/*
 * messaging_groups.c — group membership through the server's REST calls
 * (/v1/groups...): create, show, list, add and remove members. Removing a member forgets
 * our sender key for the group so the next message uses a new one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <sodium.h>

#include "messaging_int.h"

void parley_group_cleanup(struct parley_group *g)
{
    if (!g)
        return;
    free(g->group_id);
    free(g->name);
    for (size_t i = 0; i < g->member_count; i++) {
        free(g->members[i].user_id);
        free(g->members[i].username);
    }
    free(g->members);
    memset(g, 0, sizeof *g);
}

void parley_group_list_cleanup(struct parley_group_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->count; i++)
        parley_group_cleanup(&l->items[i]);
    free(l->items);
    memset(l, 0, sizeof *l);
}

static enum parley_err parse_group(json_t *o, struct parley_group *g)
{
    memset(g, 0, sizeof *g);
    json_t *mem = json_object_get(o, "members");
    const char *id = json_string_value(json_object_get(o, "group_id"));
    const char *name = json_string_value(json_object_get(o, "name"));
    if (!msg_id_ok(id) || !name || !json_is_array(mem))
        return PARLEY_ERR_PROTO;
    bool ok = true;
    g->group_id = client_strdup(id, &ok);
    g->name = client_strdup(name, &ok);
    g->created_at = json_integer_value(json_object_get(o, "created_at"));
    g->updated_at = json_integer_value(json_object_get(o, "updated_at"));
    g->members = calloc(json_array_size(mem) + 1, sizeof *g->members);
    if (!g->members)
        ok = false;
    size_t i;
    json_t *e;
    json_array_foreach(mem, i, e)
    {
        if (!ok)
            break;
        const char *uid = json_string_value(json_object_get(e, "user_id"));
        const char *un = json_string_value(json_object_get(e, "username"));
        if (!msg_id_ok(uid) || !un) {
            parley_group_cleanup(g);
            return PARLEY_ERR_PROTO;
        }
        struct parley_group_member *gm = &g->members[g->member_count++];
        gm->user_id = client_strdup(uid, &ok);
        gm->username = client_strdup(un, &ok);
        gm->admin = json_is_true(json_object_get(e, "admin"));
        gm->joined_at = json_integer_value(json_object_get(e, "joined_at"));
    }
    if (!ok) {
        parley_group_cleanup(g);
        return PARLEY_ERR_NOMEM;
    }
    return PARLEY_OK;
}

static enum parley_err group_answer(struct parley_messenger *m, json_t *ans, int status,
                                    struct parley_group *out)
{
    if (!out)
        return PARLEY_OK;
    enum parley_err rc = ans ? parse_group(ans, out) : PARLEY_ERR_PROTO;
    if (rc == PARLEY_ERR_PROTO)
        client_set_error(m->c, status, NULL, "malformed group answer from the server");
    return rc;
}

static enum parley_err group_path(struct parley_messenger *m, char *out, size_t cap,
                                  const char *gid, const char *suffix)
{
    if (!msg_id_ok(gid)) {
        client_set_error(m->c, 0, NULL, "invalid group id");
        return PARLEY_ERR_INVAL;
    }
    int n = snprintf(out, cap, "/v1/groups/%s%s", gid, suffix ? suffix : "");
    return n < 0 || (size_t)n >= cap ? PARLEY_ERR_LIMIT : PARLEY_OK;
}

enum parley_err parley_messenger_group_create(struct parley_messenger *m, const char *name,
                                              const char *const *usernames, size_t n,
                                              struct parley_group *out)
{
    if (!m || !name || (n && !usernames))
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    json_t *arr = json_array();
    json_t *body = json_pack("{s:s, s:o}", "name", name, "members", arr);
    json_t *ans = NULL;
    enum parley_err rc = body ? PARLEY_OK : PARLEY_ERR_NOMEM;
    for (size_t i = 0; i < n && !rc; i++)
        if (!usernames[i] || json_array_append_new(arr, json_string(usernames[i])) != 0)
            rc = PARLEY_ERR_INVAL;
    int status = 0;
    if (!rc)
        rc = client_call(m->c, "POST", "/v1/groups", body, false, true, &status, &ans);
    if (!rc)
        rc = group_answer(m, ans, status, out);
    json_decref(body);
    json_decref(ans);
    return rc;
}

enum parley_err parley_messenger_group_get(struct parley_messenger *m, const char *group_id,
                                           struct parley_group *out)
{
    if (!m || !out)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    char path[200];
    enum parley_err rc = group_path(m, path, sizeof path, group_id, NULL);
    json_t *ans = NULL;
    int status = 0;
    if (!rc)
        rc = client_call(m->c, "GET", path, NULL, false, true, &status, &ans);
    if (rc == PARLEY_ERR_SERVER && status == 404)
        rc = PARLEY_ERR_NOTFOUND;
    if (!rc)
        rc = group_answer(m, ans, status, out);
    json_decref(ans);
    return rc;
}

enum parley_err parley_messenger_group_list(struct parley_messenger *m,
                                            struct parley_group_list *out)
{
    if (!m || !out)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    memset(out, 0, sizeof *out);
    json_t *ans = NULL;
    int status = 0;
    enum parley_err rc = client_call(m->c, "GET", "/v1/groups", NULL, false, true, &status, &ans);
    json_t *arr = json_object_get(ans, "groups");
    if (!rc && !json_is_array(arr)) {
        client_set_error(m->c, status, NULL, "malformed group list from the server");
        rc = PARLEY_ERR_PROTO;
    }
    if (!rc) {
        out->items = calloc(json_array_size(arr) + 1, sizeof *out->items);
        if (!out->items)
            rc = PARLEY_ERR_NOMEM;
    }
    size_t i;
    json_t *e;
    json_array_foreach(arr, i, e)
    {
        if (rc)
            break;
        rc = parse_group(e, &out->items[out->count]);
        if (!rc)
            out->count++;
    }
    if (rc)
        parley_group_list_cleanup(out);
    json_decref(ans);
    return rc;
}

enum parley_err parley_messenger_group_add(struct parley_messenger *m, const char *group_id,
                                           const char *username, bool admin)
{
    if (!m || !username)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    char path[200];
    enum parley_err rc = group_path(m, path, sizeof path, group_id, "/members");
    json_t *body = json_pack("{s:s, s:b}", "username", username, "admin", admin);
    if (!rc && !body)
        rc = PARLEY_ERR_NOMEM;
    int status = 0;
    if (!rc)
        rc = client_call(m->c, "POST", path, body, false, true, &status, NULL);
    if (rc == PARLEY_ERR_SERVER && status == 404)
        rc = PARLEY_ERR_NOTFOUND;
    json_decref(body);
    return rc;
}

enum parley_err parley_messenger_group_remove(struct parley_messenger *m, const char *group_id,
                                              const char *username)
{
    if (!m || !username)
        return PARLEY_ERR_INVAL;
    client_clear_error(m->c);
    char path[800], name[512], suffix[530];
    enum parley_err rc = client_path_segment(username, name, sizeof name);
    if (!rc) {
        snprintf(suffix, sizeof suffix, "/members/%s", name);
        rc = group_path(m, path, sizeof path, group_id, suffix);
    }
    int status = 0;
    if (!rc)
        rc = client_call(m->c, "DELETE", path, NULL, false, true, &status, NULL);
    if (rc == PARLEY_ERR_SERVER && status == 404)
        rc = PARLEY_ERR_NOTFOUND;
    if (!rc)
        rc = skey_forget_own(m, group_id);
    return rc;
}

void group_peer(char *out, size_t cap, const char *gid)
{
    snprintf(out, cap, "g:%s", gid);
}

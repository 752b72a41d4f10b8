/*
 * export.c — libparley's data-rights calls (parley/export.h): the account export to a
 * file, and account deletion. Built on client_call (client_int.h) like account.c.
 */
#include "parley/export.h"

#include <jansson.h>
#include <string.h>

#include "buf.h"
#include "client_int.h"
#include "file_util.h"

#define EXPORT_FILE_MAX ((size_t)64 << 20)

enum parley_err parley_client_export(struct parley_client *c, const char *path,
                                     parley_progress_fn progress, void *ctx, size_t *bytes_out)
{
    json_t *doc = NULL;
    struct buf text;
    int status = 0;
    if (!c || !path || !*path)
        return PARLEY_ERR_INVAL;
    client_clear_error(c);
    buf_init(&text, EXPORT_FILE_MAX);
    if (progress)
        progress(ctx, "requesting", 0);
    enum parley_err rc = client_call(c, "GET", "/v1/me/export", NULL, false, true, &status, &doc);
    if (rc)
        goto out;
    if (!json_is_object(doc) || !json_is_object(json_object_get(doc, "sections"))) {
        client_set_error(c, status, NULL, "the server's export is not a parley export");
        rc = PARLEY_ERR_PROTO;
        goto out;
    }
    rc = client_json_text(doc, JSON_INDENT(2) | JSON_SORT_KEYS, &text);
    if (!rc)
        rc = buf_append(&text, "\n", 1);
    if (rc)
        goto out;
    if (progress)
        progress(ctx, "writing", text.len);
    if (file_write_atomic(path, text.data, text.len, 0600) != PARLEY_OK) {
        client_set_error(c, 0, NULL, "cannot write %s", path);
        rc = PARLEY_ERR_IO;
        goto out;
    }
    if (progress)
        progress(ctx, "done", text.len);
    if (bytes_out)
        *bytes_out = text.len;
out:
    json_decref(doc);
    client_buf_wipe(&text);
    return rc;
}

enum parley_err parley_client_delete_account(struct parley_client *c, const char *password)
{
    if (!c || !password || !*password)
        return PARLEY_ERR_INVAL;
    client_clear_error(c);
    json_t *body = json_pack("{s:s}", "password", password);
    if (!body)
        return PARLEY_ERR_NOMEM;
    int status = 0;
    enum parley_err rc = client_call(c, "DELETE", "/v1/me", body, true, true, &status, NULL);
    client_json_wipe(body, "password");
    json_decref(body);
    if (rc)
        return rc;
    client_session_cleanup(&c->s);
    return home_forget(c);
}

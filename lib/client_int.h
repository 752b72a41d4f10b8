/*
 * client_int.h — the inside of struct parley_client, shared by the files of libparley's
 * API client: client.c (handle, requests, errors), home.c (credentials on disk),
 * account.c (the account calls). Later: the WebSocket stream (stream.c) hangs its
 * connection on the same handle.
 *
 * Invariants: token is NULL or sodium_malloc'd and NUL-terminated, and then username,
 * user_id and device_id are set too (a session is all or nothing). err_msg is "" after
 * a successful call.
 */
#ifndef PARLEY_CLIENT_INT_H
#define PARLEY_CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

#include "buf.h"
#include "parley/client.h"

struct http_client;

struct client_session {
    char *server; /* the server the session belongs to */
    char *username;
    char *user_id;
    char *device_id;
    char *token; /* sodium_malloc'd */
};

struct parley_client {
    char *server; /* normalised: no trailing '/' */
    char *home;
    char *ca_file;
    bool insecure_skip_verify;
    uint32_t timeout_ms;
    struct http_client *http; /* created on first request */

    struct client_session s; /* s.token == NULL: logged out */

    int err_status;
    char *err_code; /* NULL unless the server sent one */
    char err_msg[512];
    uint32_t retry_after;
};

/* ---- client.c ---- */

/* Forget the last error (start of every public call). */
void client_clear_error(struct parley_client *c);
/* Record an error: status 0 and code NULL for local/transport errors. */
void client_set_error(struct parley_client *c, int status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* One JSON request. body: borrowed, NULL for none; its string values are wiped after
 * sending when wipe_body (passwords). auth: send the bearer token (PARLEY_ERR_DENIED
 * without a session). On a 2xx answer *status is set and, if out is not NULL, *out
 * gets the parsed object (NULL for an empty body; caller json_decref's it). Non-2xx:
 * PARLEY_ERR_SERVER with the detail on the handle. */
enum parley_err client_call(struct parley_client *c, const char *method, const char *path,
                            json_t *body, bool wipe_body, bool auth, int *status, json_t **out);
/* Largest JSON request body we build. */
#define CLIENT_MAX_BODY (1u << 20)
/* Serialise obj into out (appending) with jansson's dump flags. Uses jansson's
 * callback dumper so no jansson-allocated text has to be freed here (an application may
 * have set its own jansson allocator). */
enum parley_err client_json_text(const json_t *obj, size_t flags, struct buf *out);
/* Wipe a buffer's whole capacity, then release it. */
void client_buf_wipe(struct buf *b);
/* Wipe (in place) the string value of key in obj, if it is a string. */
void client_json_wipe(json_t *obj, const char *key);
/* Release a session's strings, wiping the token. */
void client_session_cleanup(struct client_session *s);
/* strdup that treats NULL as NULL; *ok is cleared on allocation failure. */
char *client_strdup(const char *s, bool *ok);
/* Percent-encode one URL path segment (everything but RFC 3986 unreserved characters)
 * into out (cap bytes, NUL-terminated). PARLEY_ERR_INVAL for NULL or an empty segment,
 * PARLEY_ERR_LIMIT when it does not fit. */
enum parley_err client_path_segment(const char *in, char *out, size_t cap);

/* ---- home.c ---- */

/* The default home: $XDG_DATA_HOME/parley or $HOME/.local/share/parley (malloc'd). */
enum parley_err home_default(char **out);
/* Read <home>/credentials.json into *s (zeroed first). A missing file is PARLEY_OK with
 * s->token == NULL. */
enum parley_err home_load(const char *home, struct client_session *s);
/* Write c->s to <home>/credentials.json (dir 0700, file 0600, temp + fsync + rename). */
enum parley_err home_save(struct parley_client *c);
/* Remove the saved credentials (missing is fine). */
enum parley_err home_forget(struct parley_client *c);

#endif

/*
 * parley/client.h — libparley's API client: one handle per (server, home directory),
 * holding the HTTP connection and the device's saved credentials.
 *
 * Accounts: register, log in (creates a session for this device and saves it), log
 * out, read and update the profile, list and revoke devices. Each call maps 1:1 to one
 * request of the server's HTTP API (/v1/...) and blocks until the answer or the
 * timeout. Results come back as plain C structs (no JSON in this API); strings in them
 * are heap copies owned by the caller and released with the matching *_cleanup().
 *
 * Credentials (server URL, username, user id, device id, token) live in
 * <home>/credentials.json: directory 0700, file 0600, written to a temp file, fsync'd,
 * renamed, directory fsync'd. The token is held in sodium_malloc'd memory, wiped on
 * free, and never returned by this API. Passwords passed in are never copied beyond
 * the request and are wiped from every buffer the library made.
 *
 * Errors: every call returns enum parley_err. When the server answers non-2xx the call
 * returns PARLEY_ERR_SERVER and the HTTP status, the server's error code and message are
 * kept on the handle (parley_client_last_error); transport failures (PARLEY_ERR_IO,
 * PARLEY_ERR_TIMEOUT) keep a description there too (status 0, code NULL).
 *
 * Threads: a handle belongs to one thread at a time; different handles are independent.
 */
#ifndef PARLEY_CLIENT_H
#define PARLEY_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "parley/err.h"

#define PARLEY_DEFAULT_SERVER "http://127.0.0.1:8080"

struct parley_client;

struct parley_client_options {
    /* "http://host:port" or "https://host[:port]". NULL: the server saved with the
     * credentials, else PARLEY_DEFAULT_SERVER. */
    const char *server_url;
    /* Directory for credentials (and, later, the local store). NULL: the default,
     * $XDG_DATA_HOME/parley or ~/.local/share/parley. Created (0700) on first save. */
    const char *home_dir;
    const char *ca_file;       /* NULL: system trust store (https) */
    bool insecure_skip_verify; /* tests with self-signed certificates only */
    uint32_t timeout_ms;       /* per request; 0 = 30000 */
};

/* Create a handle. Reads saved credentials from the home dir if present; they are used
 * only when they were saved for the same server URL (else the handle is logged out).
 * Connects lazily. *out is set only on success; free with parley_client_free.
 * Errors: PARLEY_ERR_INVAL (bad URL, no home), PARLEY_ERR_NOMEM, PARLEY_ERR_STORE
 * (unreadable or corrupt credentials file). */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_client_open(const struct parley_client_options *opts, struct parley_client **out);
/* Shorthand for parley_client_open with only server_url and home_dir (both may be
 * NULL, meaning the defaults above). */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_client_new(const char *server_url, const char *home_dir, struct parley_client **out);
/* Close the connection, wipe secrets, free. Accepts NULL. Saved credentials stay. */
PARLEY_EXPORT void parley_client_free(struct parley_client *c);

/* The server URL and home directory in use (owned by the handle, never NULL). */
PARLEY_EXPORT const char *parley_client_server(const struct parley_client *c);
PARLEY_EXPORT const char *parley_client_home(const struct parley_client *c);
/* True when the handle holds a session token for its server. */
PARLEY_EXPORT bool parley_client_logged_in(const struct parley_client *c);
/* Identity of the logged-in session, owned by the handle; NULL when logged out. */
PARLEY_EXPORT const char *parley_client_username(const struct parley_client *c);
PARLEY_EXPORT const char *parley_client_user_id(const struct parley_client *c);
PARLEY_EXPORT const char *parley_client_device_id(const struct parley_client *c);

/* Detail of the last failed call on c. Each out pointer may be NULL. *status: the HTTP
 * status (0 when none came); *code: the server's error code (e.g. "username_taken"),
 * NULL for transport or local errors; *message: human-readable text, never NULL ("" after
 * a successful call). Strings are owned by the handle, valid until the next call. */
PARLEY_EXPORT void parley_client_last_error(const struct parley_client *c, int *status,
                                            const char **code, const char **message);
/* Seconds from the Retry-After header of the last 429 answer; 0 when none. */
PARLEY_EXPORT uint32_t parley_client_retry_after(const struct parley_client *c);

/* ---- accounts ---- */

struct parley_account_params {
    const char *username; /* required */
    const char *name;     /* required: display name */
    const char *dob;      /* required: "YYYY-MM-DD" */
    const char *password; /* required; wiped from the library's buffers after use */
    const char *region;   /* optional (NULL) */
    const char *gender;   /* optional (NULL) */
};

/* POST /v1/accounts. Creates an account; does not log in. On success, if user_id is
 * not NULL, *user_id receives the new id (malloc'd; free with free()).
 * PARLEY_ERR_INVAL when a required field is missing or dob is not YYYY-MM-DD (checked
 * locally); PARLEY_ERR_SERVER for refusals (code on the handle). */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_client_register(struct parley_client *c, const struct parley_account_params *p,
                       char **user_id);

/* POST /v1/sessions. Logs this device in (device_name may be NULL) and saves the
 * credentials to the home dir, replacing any saved session. The password is only
 * borrowed. PARLEY_ERR_STORE if the credentials could not be saved (the session is
 * then still usable through this handle; the reason is on the handle). */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_client_login(struct parley_client *c,
                                                             const char *username,
                                                             const char *password,
                                                             const char *device_name);

/* DELETE /v1/sessions/current, then forget the saved credentials. A server answer of
 * 401 (session already gone) counts as success. On transport errors the credentials are
 * kept so the logout can be retried. PARLEY_ERR_DENIED when not logged in;
 * PARLEY_ERR_STORE when the credentials file could not be removed. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_client_logout(struct parley_client *c);

struct parley_profile {
    char *user_id;
    char *username;
    char *name;
    char *dob;          /* "YYYY-MM-DD" */
    char *region;       /* NULL when unset */
    char *gender;       /* NULL when unset */
    int64_t created_at; /* seconds since the epoch (UTC); 0 when the server sent none */
    bool parental_consent_required;
};
/* Free the strings of a profile filled by this API and zero it. Accepts NULL. */
PARLEY_EXPORT void parley_profile_cleanup(struct parley_profile *p);

/* GET /v1/me. *out is filled on success (release with parley_profile_cleanup).
 * PARLEY_ERR_DENIED when not logged in; PARLEY_ERR_PROTO on a malformed answer. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_client_get_profile(struct parley_client *c,
                                                                   struct parley_profile *out);

struct parley_profile_update {
    const char *name;   /* NULL = leave unchanged */
    const char *region; /* NULL = leave unchanged */
    const char *gender; /* NULL = leave unchanged */
};
/* PATCH /v1/me with the fields that are not NULL (at least one: else PARLEY_ERR_INVAL).
 * If out is not NULL it receives the updated profile. */
PARLEY_EXPORT PARLEY_WUR enum parley_err
parley_client_update_profile(struct parley_client *c, const struct parley_profile_update *u,
                             struct parley_profile *out);

struct parley_device {
    char *device_id;
    char *name;         /* NULL when the device has none */
    int64_t created_at; /* seconds since the epoch (UTC); 0 when unknown */
    int64_t last_seen;  /* seconds since the epoch (UTC); 0 when never seen */
    bool current;       /* the device this handle is logged in as */
};
struct parley_device_list {
    struct parley_device *items;
    size_t count;
};
/* Free a list filled by parley_client_list_devices and zero it. Accepts NULL. */
PARLEY_EXPORT void parley_device_list_cleanup(struct parley_device_list *l);

/* GET /v1/devices. *out is filled on success. */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_client_list_devices(struct parley_client *c,
                                                                    struct parley_device_list *out);

/* DELETE /v1/devices/{device_id}. Revoking this handle's own device also forgets the
 * saved credentials (the token is dead). */
PARLEY_EXPORT PARLEY_WUR enum parley_err parley_client_revoke_device(struct parley_client *c,
                                                                     const char *device_id);

#endif

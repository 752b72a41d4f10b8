/*
 * home.c — the client's home directory and the saved session (credentials.json).
 *
 * Layout: <home>/credentials.json = {"server","username","user_id","device_id","token"}.
 * The directory is created 0700 (parents too, when missing) only when something is
 * saved, so read-only commands leave no trace. The file is written to a mkstemp() temp
 * file (0600) in the same directory, fsync'd, renamed over the old one, and the
 * directory is fsync'd, so a crash leaves the old or the new file, never half of one.
 * Every buffer that held the token is wiped before it is freed.
 */
#include "client_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <sodium.h>

#define CREDS_FILE "credentials.json"
#define MAX_CREDS (64 * 1024)
#define MAX_TOKEN 4096

enum parley_err home_default(char **out)
{
    char path[4096];
    const char *xdg = getenv("XDG_DATA_HOME");
    int n;
    if (xdg && xdg[0] == '/') {
        n = snprintf(path, sizeof path, "%s/parley", xdg);
    } else {
        const char *home = getenv("HOME");
        if (!home || home[0] != '/') {
            struct passwd *pw = getpwuid(getuid());
            home = pw ? pw->pw_dir : NULL;
        }
        if (!home || home[0] != '/')
            return PARLEY_ERR_INVAL;
        n = snprintf(path, sizeof path, "%s/.local/share/parley", home);
    }
    if (n < 0 || (size_t)n >= sizeof path)
        return PARLEY_ERR_LIMIT;
    *out = strdup(path);
    return *out ? PARLEY_OK : PARLEY_ERR_NOMEM;
}

static enum parley_err creds_path(const char *home, char *out, size_t len)
{
    int n = snprintf(out, len, "%s/%s", home, CREDS_FILE);
    return (n < 0 || (size_t)n >= len) ? PARLEY_ERR_LIMIT : PARLEY_OK;
}

/* Printable ASCII without spaces: safe in an HTTP header. */
static bool token_ok(const char *t, size_t len)
{
    if (len == 0 || len > MAX_TOKEN)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)t[i] <= ' ' || (unsigned char)t[i] >= 0x7f)
            return false;
    return true;
}

enum parley_err home_load(const char *home, struct client_session *s)
{
    memset(s, 0, sizeof s[0]);
    char path[4200];
    enum parley_err rc = creds_path(home, path, sizeof path);
    if (rc)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR ? PARLEY_OK : PARLEY_ERR_STORE;
    char *data = NULL;
    json_t *root = NULL;
    size_t len = 0;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = PARLEY_ERR_STORE;
        goto out;
    }
    if (st.st_size > MAX_CREDS) {
        rc = PARLEY_ERR_STORE;
        goto out;
    }
    data = malloc((size_t)st.st_size + 1);
    if (!data) {
        rc = PARLEY_ERR_NOMEM;
        goto out;
    }
    while (len < (size_t)st.st_size) {
        ssize_t r = read(fd, data + len, (size_t)st.st_size - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES, NULL);
    const char *server = json_string_value(json_object_get(root, "server"));
    const char *username = json_string_value(json_object_get(root, "username"));
    const char *user_id = json_string_value(json_object_get(root, "user_id"));
    const char *device_id = json_string_value(json_object_get(root, "device_id"));
    json_t *tok = json_object_get(root, "token");
    const char *token = json_string_value(tok);
    if (!server || !username || !user_id || !device_id || !token ||
        !token_ok(token, json_string_length(tok))) {
        rc = PARLEY_ERR_STORE;
        goto out;
    }
    bool ok = true;
    s->server = client_strdup(server, &ok);
    s->username = client_strdup(username, &ok);
    s->user_id = client_strdup(user_id, &ok);
    s->device_id = client_strdup(device_id, &ok);
    size_t tl = json_string_length(tok);
    s->token = sodium_malloc(tl + 1);
    if (!ok || !s->token) {
        client_session_cleanup(s);
        rc = PARLEY_ERR_NOMEM;
        goto out;
    }
    memcpy(s->token, token, tl + 1);
out:
    if (root) {
        client_json_wipe(root, "token");
        json_decref(root);
    }
    if (data) {
        sodium_memzero(data, len);
        free(data);
    }
    close(fd);
    return rc;
}

/* mkdir -p with mode 0700 for every directory we create. */
static enum parley_err make_dirs(const char *dir)
{
    char p[4096];
    int n = snprintf(p, sizeof p, "%s", dir);
    if (n < 0 || (size_t)n >= sizeof p)
        return PARLEY_ERR_LIMIT;
    for (char *q = p + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return PARLEY_ERR_STORE;
        *q = '/';
    }
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return PARLEY_ERR_STORE;
    struct stat st;
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode))
        return PARLEY_ERR_STORE;
    return PARLEY_OK;
}

static bool write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

enum parley_err home_save(struct parley_client *c)
{
    if (!c->s.token)
        return PARLEY_ERR_INVAL;
    enum parley_err rc = make_dirs(c->home);
    if (rc) {
        client_set_error(c, 0, NULL, "cannot create %s: %s", c->home, strerror(errno));
        return rc;
    }
    char path[4200], tmp[4220];
    rc = creds_path(c->home, path, sizeof path);
    if (rc)
        return rc;
    int n = snprintf(tmp, sizeof tmp, "%s.XXXXXX", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return PARLEY_ERR_LIMIT;

    struct buf text;
    buf_init(&text, MAX_CREDS);
    int fd = -1;
    bool created = false; /* the temp file exists and must go on failure */
    json_t *root =
        json_pack("{s:s, s:s, s:s, s:s, s:s}", "server", c->server, "username", c->s.username,
                  "user_id", c->s.user_id, "device_id", c->s.device_id, "token", c->s.token);
    if (!root) {
        rc = PARLEY_ERR_NOMEM;
        goto out;
    }
    rc = client_json_text(root, JSON_INDENT(2), &text);
    if (!rc)
        rc = buf_append(&text, "\n", 1);
    if (rc)
        goto out;
    fd = mkstemp(tmp); /* creates the file 0600 */
    created = fd >= 0;
    if (fd < 0) {
        client_set_error(c, 0, NULL, "cannot write %s: %s", path, strerror(errno));
        rc = PARLEY_ERR_STORE;
        goto out;
    }
    if (fchmod(fd, 0600) != 0 || !write_all(fd, (const char *)text.data, text.len) ||
        fsync(fd) != 0) {
        client_set_error(c, 0, NULL, "cannot write %s: %s", tmp, strerror(errno));
        rc = PARLEY_ERR_STORE;
        goto out;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = PARLEY_ERR_STORE;
        goto out;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        client_set_error(c, 0, NULL, "cannot rename %s: %s", tmp, strerror(errno));
        rc = PARLEY_ERR_STORE;
        goto out;
    }
    created = false;
    fsync_dir(c->home);
out:
    if (fd >= 0)
        close(fd);
    if (rc && created)
        (void)unlink(tmp);
    client_buf_wipe(&text);
    if (root) {
        client_json_wipe(root, "token");
        json_decref(root);
    }
    return rc;
}

enum parley_err home_forget(struct parley_client *c)
{
    char path[4200];
    enum parley_err rc = creds_path(c->home, path, sizeof path);
    if (rc)
        return rc;
    if (unlink(path) != 0 && errno != ENOENT) {
        client_set_error(c, 0, NULL, "cannot remove %s: %s", path, strerror(errno));
        return PARLEY_ERR_STORE;
    }
    fsync_dir(c->home);
    return PARLEY_OK;
}

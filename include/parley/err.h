/*
 * parley/err.h — the one error enum shared by libparley, the server and the CLI.
 *
 * Every function that can fail returns enum parley_err (0 = PARLEY_OK) and writes its
 * results through out-parameters only on success. Detail (the failing path, errno) lives
 * on the handle or connection, never in a global.
 */
#ifndef PARLEY_ERR_H
#define PARLEY_ERR_H

#if defined(__GNUC__)
#define PARLEY_WUR __attribute__((warn_unused_result))
#else
#define PARLEY_WUR
#endif

#if defined(__GNUC__)
#define PARLEY_EXPORT __attribute__((visibility("default")))
#else
#define PARLEY_EXPORT
#endif

enum parley_err {
    PARLEY_OK = 0,
    PARLEY_ERR_NOMEM,       /* allocation failed */
    PARLEY_ERR_INVAL,       /* invalid argument or malformed input */
    PARLEY_ERR_LIMIT,       /* a hard limit was reached (size, count) */
    PARLEY_ERR_IO,          /* file or socket error (errno on the handle) */
    PARLEY_ERR_CRYPTO,      /* verification or decryption failed (no detail, by design) */
    PARLEY_ERR_NOTFOUND,    /* no such object */
    PARLEY_ERR_EXISTS,      /* object already exists / conflict */
    PARLEY_ERR_DENIED,      /* not authorised */
    PARLEY_ERR_STORE,       /* storage backend failure */
    PARLEY_ERR_PROTO,       /* peer violated the protocol */
    PARLEY_ERR_TIMEOUT,     /* operation timed out */
    PARLEY_ERR_CLOSED,      /* connection or object already closed */
    PARLEY_ERR_SERVER,      /* the server answered with an error (code on the handle) */
    PARLEY_ERR_AGAIN,       /* try again later (rate limit, would block) */
    PARLEY_ERR__COUNT
};

/* Static, human-readable text for an error code; never NULL. Thread-safe. */
PARLEY_EXPORT const char *parley_strerror(enum parley_err err);

#endif

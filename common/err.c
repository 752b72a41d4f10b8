/* err.c — text for enum parley_err. */
#include "parley/err.h"

const char *parley_strerror(enum parley_err err)
{
    static const char *const text[PARLEY_ERR__COUNT] = {
        [PARLEY_OK] = "ok",
        [PARLEY_ERR_NOMEM] = "out of memory",
        [PARLEY_ERR_INVAL] = "invalid argument",
        [PARLEY_ERR_LIMIT] = "limit exceeded",
        [PARLEY_ERR_IO] = "input/output error",
        [PARLEY_ERR_CRYPTO] = "cryptographic operation failed",
        [PARLEY_ERR_NOTFOUND] = "not found",
        [PARLEY_ERR_EXISTS] = "already exists",
        [PARLEY_ERR_DENIED] = "permission denied",
        [PARLEY_ERR_STORE] = "storage failure",
        [PARLEY_ERR_PROTO] = "protocol error",
        [PARLEY_ERR_TIMEOUT] = "timed out",
        [PARLEY_ERR_CLOSED] = "closed",
        [PARLEY_ERR_SERVER] = "server error",
        [PARLEY_ERR_AGAIN] = "try again later",
    };
    if ((unsigned)err >= PARLEY_ERR__COUNT || !text[err])
        return "unknown error";
    return text[err];
}

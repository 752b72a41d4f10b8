/*
 * respond.c — see respond.h.
 */
#include "respond.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "http_server.h"
#include "json_input.h"

void respond_json(struct http_request *req, int status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    if (!text) {
        http_respond_error(req, 500, "internal", "internal error");
        return;
    }
    http_respond_json(req, status, text);
    free(text);
}

void respond_input_error(struct http_request *req, const struct json_input_error *err)
{
    http_respond_error(req, err->status ? err->status : 400, err->code ? err->code : "invalid",
                       err->message);
}

void respond_decode_failure(struct http_request *req, enum parley_err err,
                            const struct json_input_error *ierr)
{
    if (err == PARLEY_ERR_INVAL)
        respond_input_error(req, ierr);
    else
        respond_failure(req, err);
}

void respond_rate_limited(struct http_request *req, uint32_t retry_after_s)
{
    static const char body[] =
        "{\"error\":{\"code\":\"rate_limited\",\"message\":\"too many requests, retry later\"}}";
    char hdr[48];
    snprintf(hdr, sizeof hdr, "Retry-After: %u\r\n", (unsigned)retry_after_s);
    http_respond(req, 429, "application/json", body, sizeof body - 1, hdr);
}

void respond_failure(struct http_request *req, enum parley_err err)
{
    if (err == PARLEY_ERR_NOMEM || err == PARLEY_ERR_AGAIN || err == PARLEY_ERR_CLOSED ||
        err == PARLEY_ERR_TIMEOUT)
        http_respond_error(req, 503, "unavailable", "temporarily unavailable, retry later");
    else
        http_respond_error(req, 500, "internal", "internal error");
}

void respond_no_content(struct http_request *req)
{
    http_respond(req, 204, NULL, NULL, 0, NULL);
}

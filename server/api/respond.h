/*
 * respond.h — small answering helpers shared by the API handlers (loop thread only, like
 * http_respond*): JSON bodies from jansson values, input errors, 429 with Retry-After,
 * and the mapping of store errors to statuses.
 */
#ifndef PARLEY_SERVER_API_RESPOND_H
#define PARLEY_SERVER_API_RESPOND_H

#include <stdint.h>
#include "parley/err.h"

struct http_request;
struct json_input_error;
struct json_t; /* jansson's json_t */

/* Answer with the compact JSON text of body and release body (a new reference the call
 * consumes). 500 if it cannot be encoded. */
void respond_json(struct http_request *req, int status, struct json_t *body);
/* Answer a decoder's error. */
void respond_input_error(struct http_request *req, const struct json_input_error *err);
/* Answer a decoder's failure: its input error (ierr) for PARLEY_ERR_INVAL, else as
 * respond_failure(). */
void respond_decode_failure(struct http_request *req, enum parley_err err,
                            const struct json_input_error *ierr);
/* 429 rate_limited with a Retry-After header. */
void respond_rate_limited(struct http_request *req, uint32_t retry_after_s);
/* An unexpected failure: 503 unavailable for NOMEM/AGAIN/CLOSED (retry may work),
 * 500 internal otherwise. Never says more than that (details are in the logs). */
void respond_failure(struct http_request *req, enum parley_err err);
/* 204 No Content. */
void respond_no_content(struct http_request *req);

#endif

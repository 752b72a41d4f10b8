/*
 * job.h — the common head of an API handler's thread-pool job: a handler allocates its
 * job struct (whose first member is struct api_job) with api_job_new(), fills it on the
 * loop thread, and hands it to the pool with api_job_start(). Both answer their own
 * failures (500/503 via respond_failure), so a handler just returns when they fail.
 * Loop thread only, like http_request_work().
 */
#ifndef PARLEY_SERVER_API_JOB_H
#define PARLEY_SERVER_API_JOB_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "http_server.h"

struct app;

/* Releases a whole job (its own buffers too); NULL means plain free(). */
typedef void (*api_job_release_fn)(void *job);

struct api_job {
    struct app *app;
    struct auth_info who; /* all zero for a route that takes no token */
    api_job_release_fn release;
    size_t size; /* of the whole job */
};

/* A zeroed job of size bytes (size >= sizeof(struct api_job); the struct api_job must be
 * the job's first member) with app, a copy of *who (who may be NULL) and release set.
 * On failure answers 503 and returns NULL. */
void *api_job_new(struct http_request *req, size_t size, struct app *app,
                  const struct auth_info *who, api_job_release_fn release);

/* Runs work on the pool, then done on the loop thread; done must answer req and
 * api_job_free() the job. If the job cannot be queued, answers the failure, frees the
 * job and returns false. */
bool api_job_start(struct http_request *req, void *job, http_work_fn work, http_done_fn done);

/* Calls the job's release function (free() when it has none). NULL is a no-op. */
void api_job_free(void *job);

/* A release function for jobs that hold secrets (passwords, tokens, password hashes):
 * wipes the whole job, then frees it. */
void api_job_release_wiped(void *job);

#endif

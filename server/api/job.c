/*
 * job.c — allocation, queueing and release of the API handlers' thread-pool jobs; see
 * job.h.
 */
#include "job.h"

#include <sodium.h>
#include <stdlib.h>

#include "respond.h"

void *api_job_new(struct http_request *req, size_t size, struct app *app,
                  const struct auth_info *who, api_job_release_fn release)
{
    struct api_job *j = calloc(1, size);
    if (!j) {
        respond_failure(req, PARLEY_ERR_NOMEM);
        return NULL;
    }
    j->app = app;
    if (who)
        j->who = *who;
    j->release = release;
    j->size = size;
    return j;
}

bool api_job_start(struct http_request *req, void *job, http_work_fn work, http_done_fn done)
{
    enum parley_err err = http_request_work(req, work, done, job);
    if (err) {
        respond_failure(req, err);
        api_job_free(job);
        return false;
    }
    return true;
}

void api_job_free(void *job)
{
    struct api_job *j = job;
    if (!j)
        return;
    if (j->release)
        j->release(j);
    else
        free(j);
}

void api_job_release_wiped(void *job)
{
    struct api_job *j = job;
    sodium_memzero(j, j->size);
    free(j);
}

/*
 * consent.c — the purposes table and consent_required; see consent.h.
 *
 * Withdrawal hooks: none of the consent-based features stores data yet, so each hook
 * names what it must delete when its feature lands and deletes nothing today. A feature
 * that starts keeping data for a purpose adds the deletion here, in the hook of its
 * purpose (and tests it): the hook table is the one place withdrawal is wired.
 */
#include "consent.h"

#include <stdio.h>
#include <string.h>

#include "http_server.h"
#include "store/store.h"

/* contacts_sync (P11, P12): will delete the account's stored discovery state (OPRF
 * evaluation counters, the synced-contacts list kept for suggestions). */
static enum parley_err withdraw_contacts(struct store *s, const char *user_id)
{
    (void)s;
    (void)user_id;
    return PARLEY_OK;
}

/* suggestions (P15): will delete the suggestion inputs (mutual-contact counts) kept for
 * the account. */
static enum parley_err withdraw_suggestions(struct store *s, const char *user_id)
{
    (void)s;
    (void)user_id;
    return PARLEY_OK;
}

/* diagnostics (P22, P24): call-quality rows carry no account id (P22), so there is
 * nothing to delete per account; withdrawal stops collection (the reporting endpoint
 * calls consent_required). Crash reports, when they exist, go here. */
static enum parley_err withdraw_diagnostics(struct store *s, const char *user_id)
{
    (void)s;
    (void)user_id;
    return PARLEY_OK;
}

/* location_sharing (P17): locations are E2E messages; the server keeps no coordinates.
 * Will delete live-share session state (recipients, end time) when that exists. */
static enum parley_err withdraw_location(struct store *s, const char *user_id)
{
    (void)s;
    (void)user_id;
    return PARLEY_OK;
}

static const struct consent_purpose purposes[] = {
    {"contacts_sync", "Upload your address book's numbers (blinded) to find contacts",
     "P11, P12", withdraw_contacts},
    {"suggestions", "Suggest contacts from mutual contacts (automated decision)", "P15",
     withdraw_suggestions},
    {"diagnostics", "Send call-quality and diagnostic reports", "P22, P24",
     withdraw_diagnostics},
    {"location_sharing", "Share your location with contacts you choose", "P17",
     withdraw_location},
};

const struct consent_purpose *consent_purposes(size_t *n)
{
    *n = sizeof purposes / sizeof purposes[0];
    return purposes;
}

const struct consent_purpose *consent_purpose_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < sizeof purposes / sizeof purposes[0]; i++)
        if (!strcmp(purposes[i].name, name))
            return &purposes[i];
    return NULL;
}

enum parley_err consent_required(struct store *s, const char *user_id, const char *purpose)
{
    bool granted = false;
    if (!consent_purpose_find(purpose))
        return PARLEY_ERR_DENIED;
    enum parley_err err = store_consent_get(s, user_id, purpose, &granted);
    if (err)
        return err;
    return granted ? PARLEY_OK : PARLEY_ERR_DENIED;
}

void consent_respond_required(struct http_request *req, const char *purpose)
{
    char msg[160];
    snprintf(msg, sizeof msg, "this feature needs your consent for \"%s\" (PUT /v1/me/consents/%s)",
             purpose, purpose);
    http_respond_error(req, 403, "consent_required", msg);
}

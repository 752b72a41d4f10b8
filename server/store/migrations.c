/*
 * migrations.c — SQLite schema, as numbered migrations (see migrations.h).
 *
 * What is stored is exactly what POLICY P1/P2/P5 allow: no IP address, no raw token,
 * no plaintext password. Ids are random hex text. Times are seconds since the epoch.
 * Personal profile fields (name, dob, region, gender) are read and written in one place
 * in sqlite.c so per-account encryption can be added there.
 */
#include "migrations.h"

const struct store_migration store_sqlite_migrations[] = {
    {1, "CREATE TABLE users ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  username TEXT NOT NULL UNIQUE,"
        "  name TEXT NOT NULL,"
        "  dob TEXT NOT NULL,"
        "  region TEXT,"
        "  gender TEXT,"
        "  password_hash TEXT NOT NULL,"
        "  parental_consent_required INTEGER NOT NULL DEFAULT 0,"
        "  created_at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE TABLE devices ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        "  name TEXT NOT NULL DEFAULT '',"
        "  created_at INTEGER NOT NULL,"
        "  last_seen INTEGER NOT NULL"
        ") STRICT;"
        "CREATE INDEX devices_user ON devices(user_id);"
        "CREATE TABLE sessions ("
        "  token_hash BLOB PRIMARY KEY NOT NULL,"
        "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        "  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  created_at INTEGER NOT NULL,"
        "  expires_at INTEGER NOT NULL"
        ") STRICT, WITHOUT ROWID;"
        "CREATE INDEX sessions_device ON sessions(device_id);"
        "CREATE INDEX sessions_user ON sessions(user_id);"
        "CREATE INDEX sessions_expires ON sessions(expires_at);"},
    /* Messaging: keys, groups, the queue. Every row hangs off a device or a user with
     * ON DELETE CASCADE, so revoking a device or deleting an account takes its keys,
     * undelivered envelopes, remembered message ids and memberships with it. Column
     * names avoid "ip"/"addr" (test_nothing_secret_at_rest scans them). */
    {2, /* Public keys only (P6): the identity key, the current signed prekey. */
        "CREATE TABLE device_keys ("
        "  device_id TEXT PRIMARY KEY NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  identity_key BLOB NOT NULL,"
        "  spk_id INTEGER NOT NULL,"
        "  spk BLOB NOT NULL,"
        "  spk_sig BLOB NOT NULL,"
        "  updated_at INTEGER NOT NULL"
        ") STRICT, WITHOUT ROWID;"
        /* One-time prekeys: each row is handed out once, then deleted. */
        "CREATE TABLE onetime_prekeys ("
        "  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  key_id INTEGER NOT NULL,"
        "  pk BLOB NOT NULL,"
        "  PRIMARY KEY (device_id, key_id)"
        ") STRICT, WITHOUT ROWID;"
        /* Groups (P20): what fan-out needs and no more. ("groups" is an SQL keyword.) */
        "CREATE TABLE chat_groups ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  name TEXT NOT NULL,"
        "  created_at INTEGER NOT NULL,"
        "  updated_at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE TABLE group_members ("
        "  group_id TEXT NOT NULL REFERENCES chat_groups(id) ON DELETE CASCADE,"
        "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        "  admin INTEGER NOT NULL DEFAULT 0,"
        "  joined_at INTEGER NOT NULL,"
        "  PRIMARY KEY (group_id, user_id)"
        ") STRICT;"
        "CREATE INDEX group_members_user ON group_members(user_id);"
        /* A group goes with its last member, however the member left (removal or the
         * account's deletion cascading here). */
        "CREATE TRIGGER group_members_last AFTER DELETE ON group_members"
        "  WHEN NOT EXISTS (SELECT 1 FROM group_members WHERE group_id = OLD.group_id)"
        "  BEGIN DELETE FROM chat_groups WHERE id = OLD.group_id; END;"
        /* The queue (P8, P9): one row per recipient device; ids never reused
         * (AUTOINCREMENT). The sender columns carry no foreign key: a sender's deletion
         * must not take the envelopes already queued for others. user_id needs none
         * either: the recipient's device cascades, and a user's deletion deletes its
         * devices. body is sealed by the caller; NULL for EXPIRED notices. */
        "CREATE TABLE envelopes ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  device_id TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  user_id TEXT NOT NULL,"
        "  kind INTEGER NOT NULL,"
        "  sender_user TEXT NOT NULL,"
        "  sender_device TEXT NOT NULL,"
        "  client_msg_id BLOB NOT NULL,"
        "  group_id TEXT,"
        "  peer_user TEXT,"
        "  peer_devices INTEGER NOT NULL DEFAULT 0,"
        "  created_at_ms INTEGER NOT NULL,"
        "  expires_at INTEGER NOT NULL,"
        "  body BLOB"
        ") STRICT;"
        "CREATE INDEX envelopes_device ON envelopes(device_id, id);"
        "CREATE INDEX envelopes_expires ON envelopes(expires_at);"
        /* Envelopes held per device, kept by triggers, so the max_queue check of a send
         * is one lookup instead of counting a queue that may hold 100,000 rows. */
        "CREATE TABLE queue_depth ("
        "  device_id TEXT PRIMARY KEY NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  n INTEGER NOT NULL"
        ") STRICT, WITHOUT ROWID;"
        "CREATE TRIGGER envelopes_depth_ins AFTER INSERT ON envelopes BEGIN"
        "  INSERT INTO queue_depth (device_id, n) VALUES (NEW.device_id, 1)"
        "  ON CONFLICT (device_id) DO UPDATE SET n = n + 1; END;"
        "CREATE TRIGGER envelopes_depth_del AFTER DELETE ON envelopes BEGIN"
        "  UPDATE queue_depth SET n = n - 1 WHERE device_id = OLD.device_id; END;"
        /* Accepted client message ids, for idempotent sends, kept as long as the
         * message could still be queued (its expires_at), then purged. */
        "CREATE TABLE sent_msg_ids ("
        "  sender_device TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,"
        "  client_msg_id BLOB NOT NULL,"
        "  expires_at INTEGER NOT NULL,"
        "  PRIMARY KEY (sender_device, client_msg_id)"
        ") STRICT, WITHOUT ROWID;"
        "CREATE INDEX sent_msg_ids_expires ON sent_msg_ids(expires_at);"},
    /* Consent, policy versions, the audit log, and the tables of the retention
     * categories (P12, P15, P22, P26, P28-P31; store_privacy.h, server/retention.c).
     * Everything tied to an account cascades from users; purchases carry no foreign key
     * because erasure overwrites their user_id with a pseudonym (P4). The audit log
     * names accounts only by keyed pseudonym (audit.h) and refuses UPDATE and DELETE. */
    {3, /* Current value per (user, purpose), and every change (P28). */
        "CREATE TABLE consents ("
        "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        "  purpose TEXT NOT NULL,"
        "  granted INTEGER NOT NULL,"
        "  policy_version TEXT NOT NULL DEFAULT '',"
        "  updated_at INTEGER NOT NULL,"
        "  PRIMARY KEY (user_id, purpose)"
        ") STRICT, WITHOUT ROWID;"
        "CREATE TABLE consent_history ("
        "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        "  purpose TEXT NOT NULL,"
        "  granted INTEGER NOT NULL,"
        "  policy_version TEXT NOT NULL DEFAULT '',"
        "  at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE INDEX consent_history_user ON consent_history(user_id, id);"
        /* P29: a parent's consent, recorded by an operator. */
        "CREATE TABLE parental_consents ("
        "  user_id TEXT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        "  reference TEXT NOT NULL,"
        "  recorded_at INTEGER NOT NULL"
        ") STRICT, WITHOUT ROWID;"
        /* P30: versions in publication order (seq), and who accepted which. */
        "CREATE TABLE policies ("
        "  seq INTEGER PRIMARY KEY AUTOINCREMENT,"
        "  version TEXT NOT NULL UNIQUE,"
        "  material INTEGER NOT NULL,"
        "  text TEXT NOT NULL,"
        "  published_at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE TABLE policy_acceptances ("
        "  user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
        "  policy_seq INTEGER NOT NULL REFERENCES policies(seq),"
        "  accepted_at INTEGER NOT NULL,"
        "  PRIMARY KEY (user_id, policy_seq)"
        ") STRICT, WITHOUT ROWID;"
        /* P26: hash-chained, append-only. */
        "CREATE TABLE audit_log ("
        "  seq INTEGER PRIMARY KEY NOT NULL,"
        "  at INTEGER NOT NULL,"
        "  actor TEXT NOT NULL,"
        "  kind TEXT NOT NULL,"
        "  subject TEXT NOT NULL,"
        "  detail TEXT NOT NULL,"
        "  prev_hash BLOB NOT NULL,"
        "  hash BLOB NOT NULL"
        ") STRICT;"
        "CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log"
        "  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;"
        "CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log"
        "  BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;"
        /* P22: exactly the listed fields, no peer, no network address; 90 days. */
        "CREATE TABLE call_quality ("
        "  id INTEGER PRIMARY KEY,"
        "  received_at INTEGER NOT NULL,"
        "  started_at INTEGER NOT NULL,"
        "  duration_ms INTEGER NOT NULL,"
        "  codec TEXT NOT NULL,"
        "  packet_loss_permille INTEGER,"
        "  rtt_ms INTEGER,"
        "  jitter_ms INTEGER,"
        "  render_fps INTEGER,"
        "  packet_len INTEGER,"
        "  max_resolution TEXT"
        ") STRICT;"
        "CREATE INDEX call_quality_received ON call_quality(received_at);"
        /* P23: security log (logins, lockouts); the network origin only here, 7 days. */
        "CREATE TABLE security_events ("
        "  id INTEGER PRIMARY KEY,"
        "  at INTEGER NOT NULL,"
        "  kind TEXT NOT NULL,"
        "  user_id TEXT REFERENCES users(id) ON DELETE CASCADE,"
        "  network_origin TEXT"
        ") STRICT;"
        "CREATE INDEX security_events_at ON security_events(at);"
        /* P25: abuse reports; 1 year. */
        "CREATE TABLE reports ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  reporter_user TEXT REFERENCES users(id) ON DELETE CASCADE,"
        "  reported_user TEXT REFERENCES users(id) ON DELETE CASCADE,"
        "  created_at INTEGER NOT NULL,"
        "  status TEXT NOT NULL DEFAULT 'open'"
        ") STRICT;"
        "CREATE INDEX reports_created ON reports(created_at);"
        /* P4: purchases, 6 years, pseudonymised at erasure. */
        "CREATE TABLE purchases ("
        "  id TEXT PRIMARY KEY NOT NULL,"
        "  user_id TEXT NOT NULL,"
        "  product TEXT NOT NULL,"
        "  order_ref TEXT NOT NULL,"
        "  purchased_at INTEGER NOT NULL"
        ") STRICT;"
        "CREATE INDEX purchases_user ON purchases(user_id);"
        "CREATE INDEX purchases_at ON purchases(purchased_at);"},
    /* Crypto-shredding and erasure (P27). profile_enc: 1 when the row's personal fields
     * (name, dob, region, gender) are ciphertext under the account's data key (keys.db,
     * keystore.h); rows from before stay 0 until store_open_sqlite_keyed encrypts them
     * in place. The envelope indexes let an account's deletion find what it sent and the
     * expiry notices that name it without scanning the queue. */
    {4, "ALTER TABLE users ADD COLUMN profile_enc INTEGER NOT NULL DEFAULT 0;"
        "CREATE INDEX envelopes_sender ON envelopes(sender_user);"
        "CREATE INDEX envelopes_peer ON envelopes(peer_user) WHERE peer_user IS NOT NULL;"
        "CREATE INDEX envelopes_user ON envelopes(user_id);"},
    /* Issue #5: the per-row delete trigger was a large part of an ack's cost; the queue
     * code now lowers queue_depth once per ack op and per purged row, erasure recounts,
     * and a send that finds a full queue recounts before refusing (sqlite_queue.c). */
    {5, "DROP TRIGGER envelopes_depth_del;"},
    /* Issue #5: every index on the queue costs each send and each ack a seek and a
     * write. An account's envelopes are found through its devices (envelopes_device)
     * instead, so envelopes_user went: about a tenth of a drained envelope's cost. */
    {6, "DROP INDEX envelopes_user;"},
};

const size_t store_sqlite_migrations_count =
    sizeof store_sqlite_migrations / sizeof store_sqlite_migrations[0];

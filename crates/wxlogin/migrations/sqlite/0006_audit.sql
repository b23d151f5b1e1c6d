-- The audit log: security events (logins, registrations, links, phone and profile changes, reuse
-- detections, logouts, bans, revocations, key changes, WeChat token invalidations, imports), one row
-- each, appended and never updated; purged after `audit.retention_days`. `details` is a small JSON
-- object whose keys depend on `type` (docs/operations.md, "Audit log"); it never holds a secret, a
-- phone number or a nickname. `user_id` has no foreign key: the record outlives what it names.

CREATE TABLE audit_events (
    id          INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    type        TEXT    NOT NULL,
    actor_kind  TEXT    NOT NULL,
    actor_id    TEXT,
    user_id     TEXT,
    appid       TEXT,
    client_ip   TEXT,
    user_agent  TEXT,
    details     TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_events_at ON audit_events (at);
CREATE INDEX audit_events_user ON audit_events (user_id, at);
CREATE INDEX audit_events_type ON audit_events (type, at);

-- The retention purge finds ended sessions by these, in batches, without scanning the table.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_revoked_at ON sessions (revoked_at);

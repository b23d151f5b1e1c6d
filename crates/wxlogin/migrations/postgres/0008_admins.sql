-- Administrators of the console (`wxlogin admins`, docs/admin.md). password_hash is an Argon2id
-- PHC string. sealed_totp_secret is the TOTP secret sealed with security.sealing_key, the name
-- bound as associated data, so a value copied to another row does not open; NULL until
-- `wxlogin admins totp`. totp_confirmed_at is set by the first code accepted, totp_last_step is
-- the step of the last code accepted (a code is used once). totp_required (0 or 1) is set for
-- owners: the console refuses such an admin without TOTP. failed_attempts and locked_until
-- (Unix ms) serve the console's sign-in lockout; a password reset clears them.

CREATE TABLE admins (
    name               TEXT    PRIMARY KEY,
    role               TEXT    NOT NULL CHECK (role IN ('viewer', 'operator', 'owner')),
    password_hash      TEXT    NOT NULL,
    sealed_totp_secret BYTEA,
    totp_confirmed_at  BIGINT,
    totp_last_step     BIGINT,
    totp_required      BIGINT  NOT NULL CHECK (totp_required IN (0, 1)),
    failed_attempts    BIGINT  NOT NULL DEFAULT 0,
    locked_until       BIGINT,
    created_at         BIGINT  NOT NULL,
    updated_at         BIGINT  NOT NULL
);

-- Phone numbers bound to users (normalised: country code and national number, digits only, one
-- account per number), and the login tickets that finish a `phone_required` registration.

ALTER TABLE users ADD COLUMN phone_country_code TEXT;
ALTER TABLE users ADD COLUMN phone_number TEXT;
ALTER TABLE users ADD COLUMN phone_bound_at BIGINT;

CREATE UNIQUE INDEX users_phone ON users (phone_country_code, phone_number);

-- A ticket is known only by the SHA-256 of its text. It holds the WeChat identity the login proved
-- (with its session_key sealed) until registration completes it, at most a few minutes.
CREATE TABLE login_tickets (
    hash                BYTEA  NOT NULL PRIMARY KEY,
    appid               TEXT   NOT NULL,
    openid              TEXT   NOT NULL,
    unionid             TEXT,
    sealed_session_key  BYTEA  NOT NULL,
    created_at          BIGINT NOT NULL,
    expires_at          BIGINT NOT NULL
);

CREATE INDEX login_tickets_expires_at ON login_tickets (expires_at);

-- Users, their WeChat identities, sessions with their refresh tokens, and the token signing keys.
-- Times are Unix milliseconds. STRICT makes SQLite refuse a value of the wrong type, as PostgreSQL does.

CREATE TABLE users (
    id          TEXT    NOT NULL PRIMARY KEY,
    nickname    TEXT,
    avatar      TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    banned_at   INTEGER
) STRICT;

CREATE TABLE wechat_identities (
    appid               TEXT    NOT NULL,
    openid              TEXT    NOT NULL,
    unionid             TEXT,
    user_id             TEXT    NOT NULL REFERENCES users (id),
    sealed_session_key  BLOB    NOT NULL,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (appid, openid)
) STRICT;

CREATE INDEX wechat_identities_unionid ON wechat_identities (unionid);
CREATE INDEX wechat_identities_user_id ON wechat_identities (user_id);

CREATE TABLE sessions (
    id          TEXT    NOT NULL PRIMARY KEY,
    user_id     TEXT    NOT NULL REFERENCES users (id),
    appid       TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    revoked_at  INTEGER
) STRICT;

CREATE INDEX sessions_user_id ON sessions (user_id);

-- A token means nothing without its session: purging old sessions takes their tokens along.
CREATE TABLE refresh_tokens (
    hash        BLOB    NOT NULL PRIMARY KEY,
    session_id  TEXT    NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at   INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    rotated_at  INTEGER
) STRICT;

CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid                 TEXT    NOT NULL PRIMARY KEY,
    alg                 TEXT    NOT NULL,
    sealed_private_key  BLOB    NOT NULL,
    public_jwk          TEXT    NOT NULL,
    created_at          INTEGER NOT NULL,
    retired_at          INTEGER
) STRICT;

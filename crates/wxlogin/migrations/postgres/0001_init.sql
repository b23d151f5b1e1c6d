-- Users, their WeChat identities, sessions with their refresh tokens, and the token signing keys.
-- Times are Unix milliseconds, the same numbers as in SQLite.

CREATE TABLE users (
    id          TEXT   NOT NULL PRIMARY KEY,
    nickname    TEXT,
    avatar      TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    banned_at   BIGINT
);

CREATE TABLE wechat_identities (
    appid               TEXT   NOT NULL,
    openid              TEXT   NOT NULL,
    unionid             TEXT,
    user_id             TEXT   NOT NULL REFERENCES users (id),
    sealed_session_key  BYTEA  NOT NULL,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    PRIMARY KEY (appid, openid)
);

CREATE INDEX wechat_identities_unionid ON wechat_identities (unionid);
CREATE INDEX wechat_identities_user_id ON wechat_identities (user_id);

CREATE TABLE sessions (
    id          TEXT   NOT NULL PRIMARY KEY,
    user_id     TEXT   NOT NULL REFERENCES users (id),
    appid       TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

CREATE INDEX sessions_user_id ON sessions (user_id);

-- A token means nothing without its session: purging old sessions takes their tokens along.
CREATE TABLE refresh_tokens (
    hash        BYTEA  NOT NULL PRIMARY KEY,
    session_id  TEXT   NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    issued_at   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    rotated_at  BIGINT
);

CREATE INDEX refresh_tokens_session_id ON refresh_tokens (session_id);

CREATE TABLE signing_keys (
    kid                 TEXT   NOT NULL PRIMARY KEY,
    alg                 TEXT   NOT NULL,
    sealed_private_key  BYTEA  NOT NULL,
    public_jwk          TEXT   NOT NULL,
    created_at          BIGINT NOT NULL,
    retired_at          BIGINT
);

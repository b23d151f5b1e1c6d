-- The device a session was opened from, for the admin console: the `User-Agent` of the login
-- request (at most 256 characters, control characters removed; NULL for sessions opened before).
-- When a session was last used is not stored: it is its newest refresh token's `issued_at`.

ALTER TABLE sessions ADD COLUMN user_agent TEXT;

-- The console lists sessions newest first (filtered by app, state or time, or not at all).
CREATE INDEX sessions_created_at ON sessions (created_at);

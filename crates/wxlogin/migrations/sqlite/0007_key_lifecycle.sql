-- Signing keys are published before they sign. A rotation inserts the new key with the moment it
-- starts signing (activates_at, Unix ms); until then it is only in the JWKS, so that every instance
-- and every verifier's cached JWKS knows it before the first token names it. Each instance decides
-- from this stored time, by its own clock, which key signs: the one with the latest activation
-- that has passed. A key stops signing when the next one activates, and it is retired (leaves the
-- JWKS, no longer verifies) once its last token has expired: then plus tokens.access_ttl_secs and
-- tokens.leeway_secs, or earlier at retired_at when an operator retires it (wxlogin keys retire).
-- signing_key_current.kid keeps naming the newest key installed (pending or signing), the value
-- a rotation compares and swaps, so that of concurrent rotations one wins.

ALTER TABLE signing_keys ADD COLUMN activates_at INTEGER NOT NULL DEFAULT 0;

-- Keys from before this migration signed from their creation.
UPDATE signing_keys SET activates_at = created_at;

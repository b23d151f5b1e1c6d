-- One row per algorithm names the key that signs. Instances starting together on an empty database
-- race to insert it; the primary key lets exactly one win, and the losers' keys are rolled back
-- with their attempt, so every instance ends up with the same keyring. A rotation replaces the kid
-- only if it is still the one the rotating process read (compare and swap).

CREATE TABLE signing_key_current (
    alg         TEXT    NOT NULL PRIMARY KEY,
    kid         TEXT    NOT NULL REFERENCES signing_keys (kid),
    since       INTEGER NOT NULL
) STRICT;

-- Databases created before this table: the newest unretired key of each algorithm, the one that
-- signed until now, stays the signing key.
INSERT INTO signing_key_current (alg, kid, since)
SELECT k.alg, k.kid, k.created_at
FROM signing_keys k
WHERE k.retired_at IS NULL
  AND NOT EXISTS (
      SELECT 1 FROM signing_keys n
      WHERE n.alg = k.alg
        AND n.retired_at IS NULL
        AND (n.created_at > k.created_at OR (n.created_at = k.created_at AND n.kid > k.kid))
  );

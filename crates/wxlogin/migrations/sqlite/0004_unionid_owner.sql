-- One unionid, one user. A unionid's owner is written in the same transaction as the identity that
-- brings it (a user's first identity, a link, or a back-fill at a later login), so that two apps'
-- concurrent first logins of one person cannot create two users: the second transaction finds the
-- owner and fails, and its login then links to the owner. And the attempts a login ticket has had.

CREATE TABLE unionid_owners (
    unionid     TEXT    NOT NULL PRIMARY KEY,
    user_id     TEXT    NOT NULL REFERENCES users (id),
    created_at  INTEGER NOT NULL
) STRICT;

-- Existing unionids are owned by their user. One already on two users (what this table prevents
-- from now on) is owned by the older user (user ids are ULIDs, which sort by creation time); the
-- identities stay as they are, and a new identity of that unionid is refused as a conflict until an
-- operator resolves it.
INSERT INTO unionid_owners (unionid, user_id, created_at)
SELECT unionid, MIN(user_id), MIN(created_at)
FROM wechat_identities
WHERE unionid IS NOT NULL
GROUP BY unionid;

ALTER TABLE login_tickets ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;

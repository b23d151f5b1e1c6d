-- Avatar images in the database, so that every instance serves every avatar and a backup of the
-- database holds them. The name is the content hash with the format's extension
-- (`<sha256 hex>.<png|jpg|webp>`), the value of `users.avatar`; users with the same image share one
-- row, which is deleted with the last user that points at it.
--
-- Avatars uploaded before this migration are files under `<server.data_dir>/avatars`; the server
-- imports those a user still points at when it starts (and `wxlogin migrate` does too), and leaves
-- the files in place.

CREATE TABLE avatars (
    name          TEXT    NOT NULL PRIMARY KEY,
    content_type  TEXT    NOT NULL,
    bytes         BYTEA   NOT NULL,
    created_at    BIGINT  NOT NULL
);

-- Whether an image is still used is asked on every replacement.
CREATE INDEX users_avatar ON users (avatar);

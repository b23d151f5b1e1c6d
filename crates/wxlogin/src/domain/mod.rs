//! Newtypes that validate on construction. Nothing behind a handler sees a raw `String` id or secret.

mod admin;
mod ids;
mod phone;
mod secret;

pub use admin::{
    ADMIN_NAME_MAX_CHARS, AdminName, AdminPassword, AdminRole, PASSWORD_MAX_CHARS,
    PASSWORD_MIN_CHARS,
};
pub use ids::{AppId, InvalidId, LoginCode, OpenId, PhoneCode, SessionId, UnionId, UserId};
pub use phone::{InvalidPhone, Phone};
pub use secret::{AccessToken, AppSecret, InvalidSecret, ServiceSecret, SessionKey};

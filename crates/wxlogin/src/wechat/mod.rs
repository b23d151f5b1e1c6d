//! The outbound WeChat client: typed calls for the server APIs wxlogin uses, every errcode typed,
//! secrets kept out of errors and logs, retries only where they are safe.

mod access_token;
mod api;
mod client;
mod error;

pub use access_token::{
    AccessTokens, FetchLock, SharedToken, SharedTokens, SharedTokensError, TokenMode,
    with_access_token,
};
pub use api::{Code2Session, IssuedToken, PhoneInfo};
pub use client::{ClientConfig, RetryPolicy, WechatClient};
pub use error::{ErrCode, WechatError};

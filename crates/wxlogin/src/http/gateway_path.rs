//! The one path the gateway routes and forwards. Syntax-based normalisation (RFC 3986 §6.2.2):
//! percent-encoded unreserved characters are decoded, other escapes written in upper case, runs of
//! `/` merged. What a server behind the gateway could read as another path is refused instead:
//! dot segments (`.` and `..`, raw or percent-encoded, also before a `;` parameter as Java servers
//! read them), encoded slashes (`%2F`), backslashes (raw or `%5C`), encoded control characters and
//! malformed escapes. So a request cannot be matched as one route and reach the upstream as another.

/// Why a path was refused, for the 400 the client receives.
pub(crate) type Refusal = &'static str;

pub(crate) fn normalise(raw: &str) -> Result<String, Refusal> {
    let decoded = decode_unreserved(raw)?;
    let mut out = String::with_capacity(decoded.len() + 1);
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        let name = segment.split(';').next().unwrap_or(segment);
        if name == "." || name == ".." {
            return Err("the path must not contain . or .. segments");
        }
        out.push('/');
        out.push_str(segment);
    }
    if out.is_empty() || decoded.ends_with('/') {
        out.push('/');
    }
    Ok(out)
}

fn decode_unreserved(raw: &str) -> Result<String, Refusal> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => return Err("the path must not contain a backslash"),
            b'%' => {
                let value = bytes
                    .get(i + 1..i + 3)
                    .and_then(|hex| std::str::from_utf8(hex).ok())
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .ok_or("the path has a malformed percent-escape")?;
                match value {
                    b'/' | b'\\' => {
                        return Err("the path must not contain an encoded slash or backslash");
                    }
                    0..=0x1f | 0x7f => {
                        return Err("the path must not contain control characters");
                    }
                    v if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') => {
                        out.push(char::from(v));
                    }
                    v => out.push_str(&format!("%{v:02X}")),
                }
                i += 3;
            }
            b => {
                out.push(char::from(b));
                i += 1;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::normalise;

    #[test]
    fn paths_are_normalised() {
        for (raw, expected) in [
            ("", "/"),
            ("/", "/"),
            ("//", "/"),
            ("/api", "/api"),
            ("/api/", "/api/"),
            ("/api//x///y/", "/api/x/y/"),
            ("/%61pi/%7e%2D", "/api/~-"),
            ("/a/x%3fy%2a", "/a/x%3Fy%2A"),
            ("/a/b.c/..d/.e./...", "/a/b.c/..d/.e./..."),
            ("/a;v=1/b", "/a;v=1/b"),
            ("/%E4%BD%A0", "/%E4%BD%A0"),
        ] {
            assert_eq!(normalise(raw).as_deref(), Ok(expected), "{raw}");
        }
    }

    #[test]
    fn what_an_upstream_could_resolve_elsewhere_is_refused() {
        for raw in [
            "/.",
            "/..",
            "/a/./b",
            "/a/../b",
            "/a/%2e/b",
            "/a/%2E%2e/b",
            "/a/.%2e/b",
            "/a/%2e./b",
            "/a/..;/b",
            "/a/.;x/b",
            "/a%2fb",
            "/a%2Fb",
            "/a%5cb",
            "/a%5Cb",
            "/a\\b",
            "/a%00b",
            "/a%0d%0ab",
            "/a%7f",
            "/a%",
            "/a%2",
            "/a%zz",
            "/a%%32%65",
        ] {
            assert!(normalise(raw).is_err(), "{raw}");
        }
    }
}

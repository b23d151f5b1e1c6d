//! The console's HTML: server-rendered, no script, one stylesheet of its own (`/console.css`), so
//! that the Content-Security-Policy can forbid everything else.

/// Text for HTML content and attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · wxlogin</title>\n<link rel=\"stylesheet\" href=\"/console.css\">\n</head>\n\
         <body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape(title)
    )
}

fn notice(message: Option<&str>) -> String {
    message.map_or_else(String::new, |m| {
        format!("<p class=\"notice\" role=\"alert\">{}</p>\n", escape(m))
    })
}

pub(crate) fn sign_in(csrf: &str, message: Option<&str>) -> String {
    page(
        "Sign in",
        &format!(
            "<h1>wxlogin console</h1>\n{}<form method=\"post\" action=\"/login\">\n\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\n\
             <label for=\"name\">Name</label>\n\
             <input id=\"name\" name=\"name\" autocomplete=\"username\" required>\n\
             <label for=\"password\">Password</label>\n\
             <input id=\"password\" name=\"password\" type=\"password\" \
             autocomplete=\"current-password\" required>\n\
             <button type=\"submit\">Sign in</button>\n</form>\n",
            notice(message),
            escape(csrf)
        ),
    )
}

pub(crate) fn totp(csrf: &str, message: Option<&str>) -> String {
    page(
        "Code",
        &format!(
            "<h1>wxlogin console</h1>\n{}<form method=\"post\" action=\"/login/totp\">\n\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\n\
             <label for=\"code\">Code from your authenticator app</label>\n\
             <input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
             pattern=\"[0-9]{{6}}\" required>\n\
             <button type=\"submit\">Continue</button>\n</form>\n",
            notice(message),
            escape(csrf)
        ),
    )
}

pub(crate) fn home(name: &str, role: &str, csrf: &str) -> String {
    page(
        "Console",
        &format!(
            "<h1>wxlogin console</h1>\n<p>Signed in as <strong>{}</strong> ({}).</p>\n\
             <p>The console's pages are not built yet; use the <code>wxlogin</code> command line \
             (docs/operations.md, \"Administration\").</p>\n\
             <form method=\"post\" action=\"/logout\">\n\
             <input type=\"hidden\" name=\"csrf\" value=\"{}\">\n\
             <button type=\"submit\">Sign out</button>\n</form>\n",
            escape(name),
            escape(role),
            escape(csrf)
        ),
    )
}

pub(crate) fn refused(message: &str) -> String {
    page(
        "Refused",
        &format!(
            "<h1>wxlogin console</h1>\n{}<p><a href=\"/login\">Sign in</a></p>\n",
            notice(Some(message))
        ),
    )
}

pub(crate) const STYLESHEET: &str = "body{font-family:system-ui,sans-serif;margin:0;\
background:#f6f7f9;color:#1d2125}main{max-width:28rem;margin:4rem auto;padding:0 1rem}\
label{display:block;margin-top:1rem}input,button{font:inherit;padding:.4rem;margin-top:.25rem}\
input{display:block;width:100%;box-sizing:border-box}button{margin-top:1rem}\
.notice{background:#fff3cd;padding:.5rem}\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert!(sign_in("\"><script>", None).contains("value=\"&quot;&gt;&lt;script&gt;\""));
    }
}

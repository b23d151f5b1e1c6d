//! The console's HTML primitives: escaping, the document around every page, tables, notices, the
//! pages before sign-in and refusals, the stylesheet and the script. Server-rendered, one
//! stylesheet (`/console.css`) and one small script (`/console.js`, which only tells the server the
//! viewer's time zone), so that the Content-Security-Policy can forbid everything else.

use std::fmt::Write as _;

use super::i18n::Lang;
use crate::domain::AdminRole;

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

/// Text for a URL's query value.
pub(crate) fn query_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte));
            }
            _ => {
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

pub(crate) fn document(lang: Lang, title: &str, header: &str, body: &str, footer: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"{}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{} · wxlogin</title>\n<link rel=\"stylesheet\" href=\"/console.css\">\n\
         <script src=\"/console.js\" defer></script>\n</head>\n<body>\n{header}\
         <main id=\"main\">\n{body}</main>\n{footer}</body>\n</html>\n",
        lang.code(),
        escape(title)
    )
}

/// The other language, as a link that switches to it and comes back to `back`.
pub(crate) fn switch(lang: Lang, back: &str) -> String {
    let (to, label) = match lang {
        Lang::En => ("zh", "中文"),
        Lang::Zh => ("en", "English"),
    };
    format!(
        "<a class=\"lang\" href=\"/lang?to={to}&amp;back={}\" hreflang=\"{to}\">{label}</a>",
        escape(&query_value(back))
    )
}

pub(crate) fn role_name(lang: Lang, role: crate::domain::AdminRole) -> &'static str {
    match role {
        AdminRole::Viewer => lang.t("viewer", "只读"),
        AdminRole::Operator => lang.t("operator", "运维"),
        AdminRole::Owner => lang.t("owner", "所有者"),
    }
}

/// A page before sign-in: no sections, only the language switch.
fn bare(lang: Lang, title: &str, back: &str, body: &str) -> String {
    let header = format!(
        "<header>\n<nav aria-label=\"wxlogin\"><strong class=\"brand\">wxlogin</strong></nav>\n\
         <div class=\"who\">{}</div>\n</header>\n",
        switch(lang, back)
    );
    document(
        lang,
        title,
        &header,
        &format!("<div class=\"narrow\">\n{body}</div>\n"),
        "",
    )
}

pub(crate) fn csrf_field(csrf: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(csrf)
    )
}

pub(crate) fn notice(message: Option<&str>) -> String {
    message.map_or_else(String::new, |m| {
        format!("<p class=\"notice\" role=\"alert\">{}</p>\n", escape(m))
    })
}

/// A confirmation of what an action did.
pub(crate) fn done(message: Option<&str>) -> String {
    message.map_or_else(String::new, |m| {
        format!("<p class=\"done\" role=\"status\">{}</p>\n", escape(m))
    })
}

/// A table: `head` the column titles, each row's cells already HTML. Wide tables scroll inside
/// their box, never the page.
pub(crate) fn table(caption: &str, head: &[&str], rows: &[Vec<String>], empty: &str) -> String {
    if rows.is_empty() {
        return format!("<p class=\"empty\">{}</p>\n", escape(empty));
    }
    let mut out = format!(
        "<div class=\"scroll\"><table>\n<caption>{}</caption>\n<thead><tr>",
        escape(caption)
    );
    for title in head {
        let _ = write!(out, "<th scope=\"col\">{}</th>", escape(title));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            let _ = write!(out, "<td>{cell}</td>");
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody>\n</table></div>\n");
    out
}

/// `<code>` of `text`, escaped.
pub(crate) fn code(text: &str) -> String {
    format!("<code>{}</code>", escape(text))
}

pub(crate) fn sign_in(lang: Lang, csrf: &str, message: Option<&str>) -> String {
    bare(
        lang,
        lang.t("Sign in", "登录"),
        "/login",
        &format!(
            "<h1>{title}</h1>\n{notice}<form method=\"post\" action=\"/login\">\n{csrf}\n\
             <label for=\"name\">{name}</label>\n\
             <input id=\"name\" name=\"name\" autocomplete=\"username\" required>\n\
             <label for=\"password\">{password}</label>\n\
             <input id=\"password\" name=\"password\" type=\"password\" \
             autocomplete=\"current-password\" required>\n\
             <button type=\"submit\">{submit}</button>\n</form>\n",
            title = lang.t("wxlogin console", "wxlogin 管理台"),
            notice = notice(message),
            csrf = csrf_field(csrf),
            name = lang.t("Name", "用户名"),
            password = lang.t("Password", "密码"),
            submit = lang.t("Sign in", "登录"),
        ),
    )
}

pub(crate) fn totp(lang: Lang, csrf: &str, message: Option<&str>) -> String {
    bare(
        lang,
        lang.t("Code", "验证码"),
        "/login/totp",
        &format!(
            "<h1>{title}</h1>\n{notice}<form method=\"post\" action=\"/login/totp\">\n{csrf}\n\
             <label for=\"code\">{label}</label>\n\
             <input id=\"code\" name=\"code\" inputmode=\"numeric\" autocomplete=\"one-time-code\" \
             pattern=\"[0-9]{{6}}\" required>\n\
             <button type=\"submit\">{submit}</button>\n</form>\n",
            title = lang.t("wxlogin console", "wxlogin 管理台"),
            notice = notice(message),
            csrf = csrf_field(csrf),
            label = lang.t(
                "Code from your authenticator app",
                "身份验证器应用中的验证码"
            ),
            submit = lang.t("Continue", "继续"),
        ),
    )
}

/// A refusal, for a signed-in administrator or not.
pub(crate) fn refused(lang: Lang, message: &str) -> String {
    bare(
        lang,
        lang.t("Refused", "已拒绝"),
        "/",
        &format!(
            "<h1>{}</h1>\n{}<p><a href=\"/\">{}</a></p>\n",
            lang.t("wxlogin console", "wxlogin 管理台"),
            notice(Some(message)),
            lang.t("Back to the console", "返回管理台")
        ),
    )
}

/// Sets the time zone cookie from the browser's clock. No page depends on it running.
pub(crate) const SCRIPT: &str = "(function () {\n\
  'use strict';\n\
  var offset = -new Date().getTimezoneOffset();\n\
  document.cookie = 'wxlogin_tz=' + offset + '; path=/; SameSite=Strict';\n\
})();\n";

pub(crate) const STYLESHEET: &str = "\
*{box-sizing:border-box}\
body{font-family:system-ui,-apple-system,'PingFang SC','Microsoft YaHei','WenQuanYi Micro Hei',sans-serif;\
margin:0;background:#f6f7f9;color:#1d2125;line-height:1.45}\
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;justify-content:space-between;\
background:#1f2d3a;color:#fff;padding:.5rem 1rem}\
header a{color:#dfe8f0;text-decoration:none;padding:.25rem .5rem;border-radius:3px}\
header a[aria-current=page]{background:#3c5a73;color:#fff}\
header a:focus,header button:focus{outline:2px solid #ffd24d}\
nav{display:flex;flex-wrap:wrap;gap:.25rem;align-items:center}\
.brand{margin-right:.75rem}\
.who{display:flex;gap:.75rem;align-items:center;flex-wrap:wrap}\
.who form{margin:0}.who button{margin:0}\
.skip{position:absolute;left:-999px}.skip:focus{left:.5rem;top:.5rem;background:#fff;color:#000}\
main{max-width:72rem;margin:1rem auto;padding:0 1rem}\
.narrow{max-width:26rem;margin:3rem auto}\
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:1.75rem}\
label{display:block;margin-top:.75rem}\
input,select,button{font:inherit;padding:.35rem .5rem;margin-top:.25rem}\
.narrow input{display:block;width:100%}\
button{cursor:pointer;background:#2d6cdf;color:#fff;border:1px solid #2459b8;border-radius:3px}\
button.danger{background:#c62828;border-color:#9c1f1f}\
button:focus,input:focus,select:focus,a:focus{outline:2px solid #f0a500;outline-offset:1px}\
form.inline{display:inline-block;margin:0 .25rem .25rem 0}\
form.filters{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:flex-end;background:#fff;\
padding:.5rem .75rem;border:1px solid #dde1e6}\
form.filters label{margin-top:0}\
.scroll{overflow-x:auto;max-width:100%;background:#fff;border:1px solid #dde1e6}\
table{border-collapse:collapse;width:100%}\
caption{text-align:left;padding:.4rem .6rem;font-weight:600}\
th,td{text-align:left;padding:.35rem .6rem;border-top:1px solid #e6e9ed;vertical-align:top}\
td code,dd code{word-break:break-all}\
dl{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;background:#fff;\
padding:.75rem;border:1px solid #dde1e6}dt{font-weight:600}dd{margin:0}\
.notice{background:#fff3cd;padding:.5rem;border:1px solid #f0d27a}\
.done{background:#e3f4e5;padding:.5rem;border:1px solid #a6d6ad}\
.empty{color:#5c6670}\
.badge,button{white-space:nowrap}.badge{display:inline-block;padding:0 .4rem;border-radius:3px;background:#e6e9ed}\
.badge.bad{background:#fde2e1;color:#8c1d18}.badge.good{background:#e3f4e5;color:#1e5b28}\
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(14rem,1fr));gap:1rem}\
.card{background:#fff;border:1px solid #dde1e6;padding:.75rem}\
.card .figure{font-size:1.6rem;font-weight:600}\
figure{margin:1rem 0;background:#fff;border:1px solid #dde1e6;padding:.5rem}\
figure svg.chart{display:block;width:100%;height:auto;max-height:16rem}\
figcaption{font-weight:600}\
.legend span{margin-right:1rem}.legend svg{width:.8rem;height:.8rem;vertical-align:middle}\
.pager{margin:.75rem 0}.pager a{margin-right:1rem}\
footer{max-width:72rem;margin:2rem auto;padding:0 1rem;color:#5c6670;font-size:.9rem}\n";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(
            escape("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        assert!(
            sign_in(Lang::En, "\"><script>", None).contains("value=\"&quot;&gt;&lt;script&gt;\"")
        );
        assert_eq!(query_value("a b&c=/é"), "a%20b%26c%3D%2F%C3%A9");
    }
}

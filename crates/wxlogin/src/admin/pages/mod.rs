//! The pages of the signed-in console: the header every page has (the sections, the language
//! switch, who is signed in, sign out) around each page's body, and the one-button forms of its
//! actions. Every page is at most a laptop screen wide: wide tables scroll inside the page.

pub(crate) mod admins;
pub(crate) mod apps;
pub(crate) mod audit;
pub(crate) mod keys;
pub(crate) mod overview;
mod parts;
pub(crate) mod sessions;
pub(crate) mod users;

use std::fmt::Write as _;

use super::context::Viewer;
use super::i18n::Lang;
pub(crate) use super::view::{code, csrf_field, done, escape, query_value, role_name, table};
use super::view::{document, switch};

/// The sections in every page's header, with the path each starts at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Users,
    Sessions,
    Audit,
    Keys,
    Apps,
    Admins,
}

impl Section {
    const ALL: [Self; 7] = [
        Self::Overview,
        Self::Users,
        Self::Sessions,
        Self::Audit,
        Self::Keys,
        Self::Apps,
        Self::Admins,
    ];

    fn path(self) -> &'static str {
        match self {
            Self::Overview => "/",
            Self::Users => "/users",
            Self::Sessions => "/sessions",
            Self::Audit => "/audit",
            Self::Keys => "/keys",
            Self::Apps => "/apps",
            Self::Admins => "/admins",
        }
    }

    fn title(self, lang: Lang) -> &'static str {
        match self {
            Self::Overview => lang.t("Overview", "概览"),
            Self::Users => lang.t("Users", "用户"),
            Self::Sessions => lang.t("Sessions", "会话"),
            Self::Audit => lang.t("Audit log", "审计日志"),
            Self::Keys => lang.t("Keys", "密钥"),
            Self::Apps => lang.t("Apps", "小程序"),
            Self::Admins => lang.t("Administrators", "管理员"),
        }
    }
}

/// A page for a signed-in administrator: the header with the sections (`current` marked), then
/// `body`.
pub(crate) fn page(viewer: &Viewer, current: Section, title: &str, body: &str) -> String {
    let lang = viewer.lang;
    let mut nav = String::new();
    for section in Section::ALL {
        let here = if section == current {
            " aria-current=\"page\""
        } else {
            ""
        };
        let _ = write!(
            nav,
            "<a href=\"{}\"{here}>{}</a>",
            section.path(),
            section.title(lang)
        );
    }
    let header = format!(
        "<header>\n<a class=\"skip\" href=\"#main\">{skip}</a>\n\
         <nav aria-label=\"{sections}\"><strong class=\"brand\">wxlogin</strong>{nav}</nav>\n\
         <div class=\"who\">{switch}<span>{name} · {role}</span>\
         <form method=\"post\" action=\"/logout\">{csrf}<button type=\"submit\">{out}</button>\
         </form></div>\n</header>\n",
        skip = lang.t("Skip to content", "跳到正文"),
        sections = lang.t("Sections", "栏目"),
        switch = switch(lang, &viewer.path),
        name = escape(viewer.name.as_str()),
        role = role_name(lang, viewer.role),
        csrf = csrf_field(&viewer.csrf),
        out = lang.t("Sign out", "退出"),
    );
    let footer = format!(
        "<footer>{} {}</footer>\n",
        lang.t("Times in", "时间均为"),
        viewer.tz.label()
    );
    document(
        lang,
        title,
        &header,
        &format!("<h1>{}</h1>\n{body}", escape(title)),
        &footer,
    )
}

/// A form of one button that posts `action` with the session's CSRF token and `fields`.
pub(crate) fn action_button(
    viewer: &Viewer,
    action: &str,
    fields: &[(&str, &str)],
    label: &str,
    danger: bool,
) -> String {
    let mut hidden = csrf_field(&viewer.csrf);
    for (name, value) in fields {
        let _ = write!(
            hidden,
            "<input type=\"hidden\" name=\"{}\" value=\"{}\">",
            escape(name),
            escape(value)
        );
    }
    let class = if danger { " class=\"danger\"" } else { "" };
    format!(
        "<form class=\"inline\" method=\"post\" action=\"{}\">{hidden}\
         <button type=\"submit\"{class}>{}</button></form>",
        escape(action),
        escape(label)
    )
}

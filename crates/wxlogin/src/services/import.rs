//! `wxlogin users import`: operators load the phone numbers of people who may use a `closed` app.
//! Each number becomes a user with that phone (no WeChat identity yet); the person's first login
//! with the phone button links their WeChat account to it.
//!
//! The file is CSV, one number per row: either one column (`13800138000`, `+86 13800138000`,
//! `+852 61234567`) or two (`country_code,number`: `852,61234567`). An optional header row
//! (`phone` or `country_code,phone`), blank lines and `#` comments are skipped. Every row is
//! checked before anything is written: one bad row refuses the whole file, naming its line.
//! Numbers that already have a user are left as they are, so an import can be run again.

use crate::domain::{Phone, UserId};
use crate::store::{Store, StoreError, User};

/// What an import did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportReport {
    /// New users created with their phone number.
    pub created: usize,
    /// Numbers that already had a user (left unchanged).
    pub existing: usize,
    /// Rows repeating a number earlier in the file.
    pub duplicates: usize,
}

/// Why a file was refused (nothing was written).
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{} invalid row(s), nothing imported: {}", .0.len(), .0.join("; "))]
    Invalid(Vec<String>),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

fn unquote(field: &str) -> &str {
    let field = field.trim();
    field
        .strip_prefix('"')
        .and_then(|f| f.strip_suffix('"'))
        .unwrap_or(field)
        .trim()
}

fn is_header(fields: &[&str]) -> bool {
    fields
        .iter()
        .all(|f| f.chars().any(|c| c.is_ascii_alphabetic()) && !f.starts_with('+'))
}

/// Parses the whole file; the numbers in file order (duplicates removed, counted) or every bad
/// row with its line number. Phone numbers are not echoed in errors.
pub fn parse_csv(text: &str) -> Result<(Vec<Phone>, usize), Vec<String>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut phones = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut duplicates = 0;
    let mut errors = Vec::new();
    let mut first_row = true;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(unquote).collect();
        if std::mem::take(&mut first_row) && is_header(&fields) {
            continue;
        }
        let parsed = match fields.as_slice() {
            [one] => Phone::parse_text(one),
            [code, number] => Phone::new(code, number),
            _ => {
                errors.push(format!(
                    "line {line_no}: expected 1 or 2 columns, found {}",
                    fields.len()
                ));
                continue;
            }
        };
        match parsed {
            Ok(phone) => {
                if seen.insert(phone.clone()) {
                    phones.push(phone);
                } else {
                    duplicates += 1;
                }
            }
            Err(e) => errors.push(format!("line {line_no}: {e}")),
        }
    }
    if errors.is_empty() {
        Ok((phones, duplicates))
    } else {
        Err(errors)
    }
}

/// Imports `text` (see the module docs) into `store`.
pub async fn import_phones(
    store: &dyn Store,
    text: &str,
    clock: &crate::clock::SharedClock,
) -> Result<ImportReport, ImportError> {
    let (phones, duplicates) = parse_csv(text).map_err(ImportError::Invalid)?;
    let mut report = ImportReport {
        duplicates,
        ..ImportReport::default()
    };
    for phone in phones {
        if store.find_user_by_phone(&phone).await?.is_some() {
            report.existing += 1;
            continue;
        }
        let now = clock.unix_millis();
        let user = User {
            id: UserId::generate(clock.now()),
            nickname: None,
            avatar: None,
            created_at: now,
            updated_at: now,
            banned_at: None,
            phone: Some(phone),
        };
        match store.create_user(&user).await {
            Ok(()) => report.created += 1,
            // Bound meanwhile by a login: that user stands.
            Err(StoreError::Conflict) => report.existing += 1,
            Err(e) => return Err(e.into()),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_one_and_two_column_rows_with_a_header() {
        let text = "\u{feff}country_code,phone\r\n86,13800138000\n\n# a comment\n\"852\",\"61234567\"\n86,138 0013 8000\n";
        let (phones, duplicates) = parse_csv(text).unwrap();
        assert_eq!(phones.len(), 2);
        assert_eq!(duplicates, 1);
        assert_eq!(phones[1].e164(), "+85261234567");
        let (phones, _) = parse_csv("phone\n13800138000\n+852 61234567\n").unwrap();
        assert_eq!(phones.len(), 2);
    }

    #[test]
    fn any_bad_row_refuses_the_file_and_names_the_line_not_the_number() {
        let errors = parse_csv("13800138000\n12345\n86,1,2\nabc\n").unwrap_err();
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].starts_with("line 2:"), "{errors:?}");
        assert!(errors[1].starts_with("line 3:"), "{errors:?}");
        assert!(errors.iter().all(|e| !e.contains("12345")), "{errors:?}");
    }
}

//! The one page-token format of every list the platform serves. A token holds the sort key of
//! the last row of the page it came with, versioned and encoded so that clients treat it as
//! opaque: `p1.` and the key's parts, base64url without padding. A list answers a token it
//! cannot read with `INVALID_ARGUMENT` naming `page_token`, never with a wrong page.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiuzhu_errors::FieldViolations;

const VERSION: &str = "p1.";
/// Separates the key's parts inside the token; never part of a key (a control character).
const SEPARATOR: char = '\u{1f}';
const BAD_TOKEN: &str = "is not a token this service gave";

/// The token that continues after a row with this sort key.
pub fn token_after(key: &[&dyn std::fmt::Display]) -> String {
    let joined = key
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(&SEPARATOR.to_string());
    format!("{VERSION}{}", URL_SAFE_NO_PAD.encode(joined))
}

/// The sort key a request's `page_token` continues after: `None` for the first page (an empty
/// token) and for a token that is not one of ours, which is added to `violations`. `parse` reads
/// the key's parts and returns `None` when they are not a key of this list.
pub fn key_after<T>(
    violations: &mut FieldViolations,
    token: &str,
    parse: impl FnOnce(&[&str]) -> Option<T>,
) -> Option<T> {
    if token.is_empty() {
        return None;
    }
    let key = token
        .strip_prefix(VERSION)
        .and_then(|body| URL_SAFE_NO_PAD.decode(body).ok())
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| parse(&text.split(SEPARATOR).collect::<Vec<_>>()));
    if key.is_none() {
        violations.add("page_token", BAD_TOKEN);
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    fn date_and_number(parts: &[&str]) -> Option<(String, i32)> {
        match parts {
            [date, number] => Some(((*date).to_owned(), number.parse().ok()?)),
            _ => None,
        }
    }

    #[test]
    fn a_token_gives_back_the_key_it_was_made_from() {
        let token = token_after(&[&"2027-01-05", &7]);
        assert!(token.starts_with("p1."), "{token}");
        let mut violations = FieldViolations::new();
        assert_eq!(
            key_after(&mut violations, &token, date_and_number),
            Some(("2027-01-05".to_owned(), 7))
        );
        assert!(violations.is_empty());
    }

    #[test]
    fn no_token_is_the_first_page_and_a_foreign_token_names_the_field() {
        let mut violations = FieldViolations::new();
        assert_eq!(key_after(&mut violations, "", date_and_number), None);
        assert!(violations.is_empty());
        for foreign in ["12345", "p1.!!", &token_after(&[&"only-one-part"])] {
            let mut violations = FieldViolations::new();
            assert_eq!(key_after(&mut violations, foreign, date_and_number), None);
            let text = violations.into_error().to_string();
            assert!(
                text.contains("page_token: is not a token"),
                "{foreign}: {text}"
            );
        }
    }
}

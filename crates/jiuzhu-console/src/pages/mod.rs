//! One module per page family; each handler reads through the member's [`crate::platform::Acting`]
//! and renders a template, or takes a form, calls one command and goes back to the page.

pub mod admin;
pub mod apply;
pub mod cases;
pub mod clues;
pub mod finance;
pub mod followup;
pub mod home;
pub mod persons;
pub mod signin;

/// Why the console reads personal data, as the audit log records it.
pub const PURPOSE: &str = "relief staff console";

/// A fresh request id for a form: sent again (a double click, a reload), it gives the same
/// answer and no second effect.
pub fn request_id() -> String {
    format!("console-{}", uuid::Uuid::new_v4().simple())
}

/// A command's request id from a form: the one the page gave, if it is one of ours.
pub fn form_request_id(sent: &str) -> Result<String, crate::web::PageError> {
    let ok = sent.len() <= 128
        && sent.starts_with("console-")
        && sent.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if ok {
        Ok(sent.to_owned())
    } else {
        Err(crate::web::PageError::BadInput(
            "request_id: the form has no valid request id; reload the page".to_owned(),
        ))
    }
}

/// The fields of a posted form (urlencoded or the text parts of a multipart one), repeated
/// ones (checkboxes) kept.
#[derive(Debug, Clone, Default)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// An `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Self {
        Fields(
            form_urlencoded::parse(body)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The first value of `name`, as sent; empty when absent.
    pub fn one(&self, name: &str) -> String {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    /// The first value of `name` without surrounding spaces.
    pub fn trimmed(&self, name: &str) -> String {
        self.one(name).trim().to_owned()
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

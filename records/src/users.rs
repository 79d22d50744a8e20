//! Users: who someone is, as their identity provider's token says, and the rules a profile
//! from a token must pass before it is stored.

use dojo_ids::UserId;
use serde::Serialize;

use crate::AccountError;

/// A person, as known from their identity provider's token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
#[serde(rename_all = "camelCase")]
pub struct User {
    /// Ours (`u_…`): tokens' subjects are the provider's and may change shape with the provider.
    pub id: UserId,
    /// The token's `sub`.
    pub subject: String,
    pub name: Option<String>,
    pub email: Option<String>,
    /// The current balance, never negative.
    pub credits: i64,
    /// Milliseconds since the Unix epoch, like every timestamp here.
    pub created_at: i64,
    pub updated_at: i64,
    /// The user opted out of optional analytics and usage collection (`docs/data-rights.md`).
    pub analytics_opt_out: bool,
}

/// Longest subject, name and email accepted. Generous for real values; the point is that a
/// hostile token cannot store megabytes per row.
const MAX_SUBJECT_LEN: usize = 255;
const MAX_NAME_LEN: usize = 200;
const MAX_EMAIL_LEN: usize = 320;

pub(crate) fn validate_subject(subject: &str) -> Result<&str, AccountError> {
    if subject.is_empty() {
        return Err(AccountError::InvalidInput { field: "subject", reason: "empty" });
    }
    if subject.len() > MAX_SUBJECT_LEN {
        return Err(AccountError::InvalidInput { field: "subject", reason: "longer than 255 bytes" });
    }
    Ok(subject)
}

/// A profile field from a token: trimmed, blank treated as absent, bounded.
pub(crate) fn profile_field<'a>(
    field: &'static str,
    value: Option<&'a str>,
    max_len: usize,
) -> Result<Option<&'a str>, AccountError> {
    match value.map(str::trim).filter(|value| !value.is_empty()) {
        Some(value) if value.len() > max_len => Err(AccountError::InvalidInput { field, reason: "too long" }),
        value => Ok(value),
    }
}

pub(crate) fn profile(
    name: Option<&str>,
    email: Option<&str>,
) -> Result<(Option<String>, Option<String>), AccountError> {
    let name = profile_field("name", name, MAX_NAME_LEN)?;
    let email = profile_field("email", email, MAX_EMAIL_LEN)?;
    Ok((name.map(str::to_owned), email.map(str::to_owned)))
}

/// Whether an upsert with this profile would change the stored user.
pub(crate) fn profile_changes(user: &User, name: Option<&str>, email: Option<&str>) -> bool {
    name.is_some_and(|name| user.name.as_deref() != Some(name))
        || email.is_some_and(|email| user.email.as_deref() != Some(email))
}

/// Picks `find_user`'s answer among the users whose email matched.
pub(crate) fn single_email_match(query: &str, mut users: Vec<User>) -> Result<Option<User>, AccountError> {
    match users.len() {
        0 | 1 => Ok(users.pop()),
        _ => Err(AccountError::AmbiguousUser(query.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_fields_are_trimmed_and_blank_is_absent() {
        assert_eq!(profile(Some("  Ada "), Some(" ")).ok(), Some((Some("Ada".to_owned()), None)));
        assert!(profile(Some(&"n".repeat(201)), None).is_err());
        assert!(validate_subject("").is_err());
    }
}

//! Checks of query parameters the list operations share, with FC's field names in the errors.

use crate::ControlError;

/// A page size or line count: `default` when absent, else a number in `1..=max`.
pub(crate) fn count(
    field: &str,
    value: Option<&str>,
    default: usize,
    max: usize,
) -> Result<usize, ControlError> {
    match value {
        None => Ok(default),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ControlError::invalid(
                    field,
                    format!("must be a number between 1 and {max}, got '{v}'"),
                )
            }),
    }
}

/// A page token as given (`None` when absent or empty: the first page).
pub(crate) fn token(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|t| !t.is_empty())
}

/// A token this server did not issue.
pub(crate) fn bad_token(field: &str, token: &str) -> ControlError {
    ControlError::invalid(
        field,
        format!("'{token}' is not a token this server issued"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_default_and_stay_in_range() {
        assert_eq!(count("limit", None, 20, 100).unwrap(), 20);
        assert_eq!(count("limit", Some("1"), 20, 100).unwrap(), 1);
        assert_eq!(count("limit", Some("100"), 20, 100).unwrap(), 100);
        for bad in ["0", "101", "-1", "ten", ""] {
            let e = count("limit", Some(bad), 20, 100).unwrap_err();
            assert_eq!(
                e.to_string(),
                format!("limit: must be a number between 1 and 100, got '{bad}'")
            );
        }
    }

    #[test]
    fn empty_tokens_mean_the_first_page() {
        assert_eq!(token(&None), None);
        assert_eq!(token(&Some(String::new())), None);
        assert_eq!(token(&Some("7".into())), Some("7"));
    }
}

//! Function versions and aliases (FC 3.0): PublishFunctionVersion, CreateAlias, UpdateAlias
//! bodies and the records GetAlias / ListFunctionVersions return.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// A published, immutable snapshot of a function.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Version {
    /// Decimal id from the function's counter; never reused.
    pub version_id: String,
    /// Free text given at publishing.
    pub description: String,
    /// RFC 3339, when it was published.
    pub created_time: String,
    /// RFC 3339; equals `createdTime` (versions do not change).
    pub last_modified_time: String,
}

/// PublishFunctionVersion body.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PublishVersionInput {
    /// At most 256 characters.
    #[serde(default)]
    pub description: Option<String>,
}

/// A named pointer to a version, optionally sending a share of requests to a second one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Alias {
    /// Unique per function; FC's name rules.
    pub alias_name: String,
    /// The version most requests go to.
    pub version_id: String,
    /// Free text.
    pub description: String,
    /// versionId → share of requests (0–1) routed to it instead of `versionId`.
    pub additional_version_weight: BTreeMap<String, f64>,
    /// RFC 3339, set at creation.
    pub created_time: String,
    /// RFC 3339, set by every update.
    pub last_modified_time: String,
}

/// CreateAlias body (UpdateAlias takes the same fields but `aliasName`, all optional).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AliasInput {
    /// Required on create; not part of an UpdateAlias body.
    #[serde(default)]
    pub alias_name: Option<String>,
    /// Required on create: a published version id.
    #[serde(default)]
    pub version_id: Option<String>,
    /// Free text.
    #[serde(default)]
    pub description: Option<String>,
    /// A second version and the share of requests (0–1) it gets.
    #[serde(default)]
    pub additional_version_weight: Option<BTreeMap<String, f64>>,
}

fn parse<T: for<'de> Deserialize<'de> + Default>(body: &[u8]) -> Result<T, ModelError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    crate::parse_body(body)
}

/// Parses a PublishFunctionVersion body (empty is allowed).
pub fn parse_publish(body: &[u8]) -> Result<PublishVersionInput, ModelError> {
    let input: PublishVersionInput = parse(body)?;
    if input
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 256)
    {
        return Err(ModelError::new(
            "description",
            "must be at most 256 characters",
        ));
    }
    Ok(input)
}

/// A version id: a positive decimal number, as FC assigns them.
pub fn validate_version_id(field: &str, id: &str) -> Result<(), ModelError> {
    let ok = !id.is_empty()
        && id.len() <= 10
        && id.bytes().all(|b| b.is_ascii_digit())
        && !id.starts_with('0');
    if ok {
        Ok(())
    } else {
        Err(ModelError::new(
            field,
            format!("'{id}' is not a version id (a positive number)"),
        ))
    }
}

/// FC's alias name rule: 1–128 letters, digits, `_` or `-`, starting with a letter or `_`;
/// not `LATEST` (that qualifier is the unpublished function).
pub fn validate_alias_name(name: &str) -> Result<(), ModelError> {
    let mut chars = name.chars();
    let first = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !first || !rest || name.len() > 128 {
        return Err(ModelError::new(
            "aliasName",
            format!(
                "'{}' must be 1-128 letters, digits, '_' or '-', starting with a letter or '_'",
                name.chars().take(64).collect::<String>()
            ),
        ));
    }
    if name == "LATEST" {
        return Err(ModelError::new(
            "aliasName",
            "LATEST is reserved for the unpublished function",
        ));
    }
    Ok(())
}

/// Parses CreateAlias (`create`: aliasName and versionId required) or UpdateAlias.
pub fn parse_alias(body: &[u8], create: bool) -> Result<AliasInput, ModelError> {
    let input: AliasInput = parse(body)?;
    if create {
        let name = input
            .alias_name
            .as_deref()
            .ok_or_else(|| ModelError::new("aliasName", "is required"))?;
        validate_alias_name(name)?;
        if input.version_id.is_none() {
            return Err(ModelError::new("versionId", "is required"));
        }
    } else if input.alias_name.is_some() {
        return Err(ModelError::new(
            "aliasName",
            "cannot be changed; create another alias",
        ));
    }
    if let Some(v) = &input.version_id {
        validate_version_id("versionId", v)?;
    }
    if let Some(weights) = &input.additional_version_weight {
        if weights.len() > 1 {
            return Err(ModelError::new(
                "additionalVersionWeight",
                "routes to at most one additional version",
            ));
        }
        for (v, w) in weights {
            validate_version_id(&format!("additionalVersionWeight.{v}"), v)?;
            if !(0.0..=1.0).contains(w) {
                return Err(ModelError::new(
                    format!("additionalVersionWeight.{v}"),
                    format!("must be between 0 and 1, got {w}"),
                ));
            }
        }
    }
    if input
        .description
        .as_ref()
        .is_some_and(|d| d.chars().count() > 256)
    {
        return Err(ModelError::new(
            "description",
            "must be at most 256 characters",
        ));
    }
    Ok(input)
}

impl Alias {
    /// The version a request goes to, given a uniform random number in `[0, 1)`.
    pub fn pick(&self, r: f64) -> &str {
        let mut acc = 0.0;
        for (version, weight) in &self.additional_version_weight {
            acc += weight;
            if r < acc {
                return version;
            }
        }
        &self.version_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alias_rules() {
        assert!(parse_alias(br#"{"aliasName":"prod","versionId":"1"}"#, true).is_ok());
        assert_eq!(
            parse_alias(br#"{"versionId":"1"}"#, true)
                .unwrap_err()
                .field,
            "aliasName"
        );
        assert_eq!(
            parse_alias(br#"{"aliasName":"LATEST","versionId":"1"}"#, true)
                .unwrap_err()
                .field,
            "aliasName"
        );
        assert_eq!(
            parse_alias(br#"{"aliasName":"1x","versionId":"1"}"#, true)
                .unwrap_err()
                .field,
            "aliasName"
        );
        assert_eq!(
            parse_alias(br#"{"aliasName":"a","versionId":"01"}"#, true)
                .unwrap_err()
                .field,
            "versionId"
        );
        assert_eq!(
            parse_alias(
                br#"{"aliasName":"a","versionId":"1","additionalVersionWeight":{"2":1.5}}"#,
                true
            )
            .unwrap_err()
            .field,
            "additionalVersionWeight.2"
        );
        assert_eq!(
            parse_alias(br#"{"aliasName":"b"}"#, false)
                .unwrap_err()
                .field,
            "aliasName"
        );
        assert!(parse_publish(b"").is_ok());
    }

    #[test]
    fn pick_follows_weights() {
        let a = Alias {
            alias_name: "a".into(),
            version_id: "1".into(),
            description: String::new(),
            additional_version_weight: [("2".to_owned(), 0.2)].into_iter().collect(),
            created_time: String::new(),
            last_modified_time: String::new(),
        };
        assert_eq!(a.pick(0.0), "2");
        assert_eq!(a.pick(0.19), "2");
        assert_eq!(a.pick(0.2), "1");
        assert_eq!(a.pick(0.99), "1");
    }
}

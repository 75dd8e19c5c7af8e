//! Secret fields (a registry password today; a custom domain's private key next): one type,
//! [`Secret`], that can never be serialized as its value, and one way to store it.
//!
//! - In an API answer, a log line or an error a secret is [`REDACTED`]: its `Serialize`,
//!   `Debug` and `Display` never show the value.
//! - In the store it is sealed: the store calls [`seal_all`] on a record before encoding it
//!   (each [`Secret`] becomes the envelope `fcx-sealed:v1:<base64>` its [`SecretCipher`]
//!   made, bound to the record and field) and [`open_all`] after decoding it.
//! - A record type names its secret fields once, in [`HasSecrets`].
//!
//! A secret read from a stored record that holds plain text (written before secrets were
//! sealed) is kept as plain text and reported by [`open_all`], so the store can rewrite the
//! record sealed.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What an answer shows in place of a secret's value. Sent back in an update, it means
/// "keep the stored value".
pub const REDACTED: &str = "******";
/// The prefix of a sealed secret in a stored record.
pub const SEALED_PREFIX: &str = "fcx-sealed:v1:";

/// Encrypts and decrypts secret values; `context` names the record and field, so a sealed
/// value copied elsewhere does not open.
pub trait SecretCipher: Send + Sync {
    /// The sealed form of `plain` (printable, without the prefix).
    fn seal(&self, context: &str, plain: &str) -> Result<String, String>;
    /// The value sealed as `sealed` (without the prefix).
    fn open(&self, context: &str, sealed: &str) -> Result<String, String>;
}

#[derive(Clone, PartialEq, Eq)]
enum State {
    /// The value (as given in a request, or opened).
    Plain(String),
    /// The stored envelope, not opened yet (or sealed for storing).
    Sealed(String),
}

/// A secret string field.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(State);

impl Secret {
    /// A secret holding `value` in plain text (as a request gives it).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(State::Plain(value.into()))
    }

    /// The value; `None` while the secret is still sealed (the store opens every secret
    /// of a record it reads).
    pub fn expose(&self) -> Option<&str> {
        match &self.0 {
            State::Plain(v) => Some(v),
            State::Sealed(_) => None,
        }
    }

    /// Whether this is the [`REDACTED`] placeholder a client sent back.
    pub fn is_placeholder(&self) -> bool {
        self.expose() == Some(REDACTED)
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(REDACTED)
    }
}

/// A plain secret serializes as [`REDACTED`]; only a sealed one serializes as its envelope.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            State::Plain(_) => s.serialize_str(REDACTED),
            State::Sealed(env) => s.serialize_str(&format!("{SEALED_PREFIX}{env}")),
        }
    }
}

/// From a stored record: an envelope stays sealed until [`open_all`], anything else is a
/// plain value (a record written before secrets were sealed).
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        let text = String::deserialize(d)?;
        Ok(match text.strip_prefix(SEALED_PREFIX) {
            Some(env) => Secret(State::Sealed(env.to_owned())),
            None => Secret(State::Plain(text)),
        })
    }
}

/// A record with secret fields.
pub trait HasSecrets {
    /// Every secret field with its path (`customContainerConfig.registryConfig...`).
    fn secrets_mut(&mut self) -> Vec<(&'static str, &mut Secret)>;
}

/// Seals every secret of `record` for storing; `scope` names the record (e.g. the function)
/// and becomes part of each field's context.
pub fn seal_all<T: HasSecrets>(
    record: &mut T,
    cipher: &dyn SecretCipher,
    scope: &str,
) -> Result<(), String> {
    for (path, secret) in record.secrets_mut() {
        if let State::Plain(value) = &secret.0 {
            let sealed = cipher.seal(&format!("{scope}:{path}"), value)?;
            secret.0 = State::Sealed(sealed);
        }
    }
    Ok(())
}

/// Opens every secret of a stored `record`; returns whether one was stored as plain text
/// (the record should be written again, sealed).
pub fn open_all<T: HasSecrets>(
    record: &mut T,
    cipher: &dyn SecretCipher,
    scope: &str,
) -> Result<bool, String> {
    let mut plain = false;
    for (path, secret) in record.secrets_mut() {
        match &secret.0 {
            State::Sealed(env) => {
                let value = cipher
                    .open(&format!("{scope}:{path}"), env)
                    .map_err(|e| format!("{path}: {e}"))?;
                secret.0 = State::Plain(value);
            }
            State::Plain(_) => plain = true,
        }
    }
    Ok(plain)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reverses the text: enough to tell sealed from plain in a unit test.
    struct Mirror;

    impl SecretCipher for Mirror {
        fn seal(&self, context: &str, plain: &str) -> Result<String, String> {
            Ok(format!(
                "{context}|{}",
                plain.chars().rev().collect::<String>()
            ))
        }
        fn open(&self, context: &str, sealed: &str) -> Result<String, String> {
            let (c, v) = sealed.split_once('|').ok_or("no context")?;
            if c != context {
                return Err(format!("sealed for {c}, not {context}"));
            }
            Ok(v.chars().rev().collect())
        }
    }

    struct Record {
        password: Secret,
    }

    impl HasSecrets for Record {
        fn secrets_mut(&mut self) -> Vec<(&'static str, &mut Secret)> {
            vec![("password", &mut self.password)]
        }
    }

    #[test]
    fn a_secret_never_serializes_or_prints_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            format!("\"{REDACTED}\"")
        );
        assert_eq!(format!("{s:?} {s}"), format!("{REDACTED} {REDACTED}"));
        assert_eq!(s.expose(), Some("hunter2"));
    }

    #[test]
    fn sealed_for_the_store_and_opened_again_bound_to_its_scope() {
        let mut r = Record {
            password: Secret::new("hunter2"),
        };
        seal_all(&mut r, &Mirror, "f").unwrap();
        let stored = serde_json::to_string(&r.password).unwrap();
        assert!(
            stored.starts_with(&format!("\"{SEALED_PREFIX}")),
            "{stored}"
        );
        assert!(!stored.contains("hunter2"), "{stored}");
        let mut back = Record {
            password: serde_json::from_str(&stored).unwrap(),
        };
        assert_eq!(back.password.expose(), None);
        assert!(open_all(&mut back.clone_for("g"), &Mirror, "g").is_err());
        assert_eq!(open_all(&mut back, &Mirror, "f"), Ok(false));
        assert_eq!(back.password.expose(), Some("hunter2"));
    }

    #[test]
    fn plain_text_from_an_old_record_is_reported_for_rewriting() {
        let mut old = Record {
            password: serde_json::from_str("\"legacy\"").unwrap(),
        };
        assert_eq!(open_all(&mut old, &Mirror, "f"), Ok(true));
        assert_eq!(old.password.expose(), Some("legacy"));
    }

    impl Record {
        fn clone_for(&self, _: &str) -> Record {
            Record {
                password: self.password.clone(),
            }
        }
    }
}

//! JWT authentication of HTTP triggers and custom domains: the JWKS of a trigger's
//! `authConfig` turned into verification keys once (when the trigger is applied), and a
//! token checked against them (signature, `exp`, `nbf`) with `jsonwebtoken`. Finding the
//! token in a request and passing claims on is HTTP work, done by the gateway.

use fcx_model::http_trigger::JwtConfig;
use fcx_model::ModelError;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

/// A trigger's (or domain's) JWT settings with its keys ready.
pub struct JwtAuth {
    /// The settings as configured.
    pub config: JwtConfig,
    keys: Vec<Key>,
}

struct Key {
    kid: Option<String>,
    algorithm: Algorithm,
    key: DecodingKey,
}

/// Why a token was refused; the message is the answer's.
#[derive(Debug, thiserror::Error)]
pub enum JwtRejected {
    #[error("the JWT is malformed: {0}")]
    /// The token could not be decoded.
    Malformed(String),
    #[error("the JWT names key '{0}', which is not in the JWKS of this trigger")]
    /// The token's `kid` is not in the JWKS.
    UnknownKey(String),
    #[error("the JWT is signed with {0:?}, which no key of this trigger's JWKS uses")]
    /// No key of the JWKS uses the token's algorithm.
    Algorithm(Algorithm),
    #[error("the JWT has expired (exp is in the past)")]
    /// `exp` is in the past.
    Expired,
    #[error("the JWT is not valid yet (nbf is in the future)")]
    /// `nbf` is in the future.
    NotYetValid,
    #[error("the JWT's signature does not match the keys of this trigger's JWKS")]
    /// The signature does not verify.
    Signature,
    #[error("the JWT was refused: {0}")]
    /// Any other refusal of the JWT crate.
    Other(String),
}

impl JwtAuth {
    /// Checks the JWKS of `config` (found at `field`) and prepares its keys.
    pub fn new(field: &str, config: JwtConfig) -> Result<JwtAuth, ModelError> {
        let set: JwkSet = serde_json::from_value(config.jwks.clone()).map_err(|e| {
            ModelError::new(
                format!("{field}.jwks"),
                format!("is not a JWKS document: {e}"),
            )
        })?;
        let keys = set
            .keys
            .iter()
            .enumerate()
            .map(|(i, jwk)| key(&format!("{field}.jwks.keys[{i}]"), jwk))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(JwtAuth { config, keys })
    }

    /// The claims of a valid `token`.
    pub fn verify(&self, token: &str) -> Result<Map<String, Value>, JwtRejected> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| JwtRejected::Malformed(e.to_string()))?;
        let candidates: Vec<&Key> = match &header.kid {
            Some(kid) if self.keys.iter().any(|k| k.kid.is_some()) => {
                let found: Vec<&Key> = self
                    .keys
                    .iter()
                    .filter(|k| k.kid.as_deref() == Some(kid.as_str()))
                    .collect();
                if found.is_empty() {
                    return Err(JwtRejected::UnknownKey(kid.clone()));
                }
                found
            }
            _ => self.keys.iter().collect(),
        };
        let candidates: Vec<&Key> = candidates
            .into_iter()
            .filter(|k| k.algorithm == header.alg)
            .collect();
        if candidates.is_empty() {
            return Err(JwtRejected::Algorithm(header.alg));
        }
        let mut last = JwtRejected::Signature;
        for k in candidates {
            let mut validation = Validation::new(k.algorithm);
            // FC checks the time claims a token has; it does not require any.
            validation.required_spec_claims.clear();
            validation.validate_nbf = true;
            validation.validate_aud = false;
            validation.leeway = 0;
            match jsonwebtoken::decode::<Map<String, Value>>(token, &k.key, &validation) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = match e.kind() {
                        K::ExpiredSignature => return Err(JwtRejected::Expired),
                        K::ImmatureSignature => return Err(JwtRejected::NotYetValid),
                        K::InvalidSignature => JwtRejected::Signature,
                        K::InvalidToken | K::Base64(_) | K::Json(_) | K::Utf8(_) => {
                            return Err(JwtRejected::Malformed(e.to_string()))
                        }
                        _ => JwtRejected::Other(e.to_string()),
                    };
                }
            }
        }
        Err(last)
    }
}

fn key(field: &str, jwk: &Jwk) -> Result<Key, ModelError> {
    let algorithm = jwk
        .common
        .key_algorithm
        .ok_or_else(|| ModelError::new(format!("{field}.alg"), "is required (e.g. RS256, ES256)"))
        .and_then(|a| {
            Algorithm::try_from(a).map_err(|_| {
                ModelError::new(
                    format!("{field}.alg"),
                    format!("{a:?} is not a signature algorithm"),
                )
            })
        })?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| {
        ModelError::new(field.to_owned(), format!("is not a usable public key: {e}"))
    })?;
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        algorithm,
        key,
    })
}

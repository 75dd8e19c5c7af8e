//! `--store`: which store a server uses. `sqlite` (the default) is the embedded database in the
//! data dir; `postgres://...` (or `postgresql://...`) is a PostgreSQL database shared by nodes.

use std::fmt;

/// A parsed `--store` value.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// `<data dir>/fcx.db`.
    Sqlite,
    /// A libpq-style URL, e.g. `postgres://fcx:secret@db:5432/fcx`.
    Postgres(String),
}

impl std::str::FromStr for StoreUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<StoreUrl, String> {
        let s = s.trim();
        if s.is_empty() || s == "sqlite" {
            return Ok(StoreUrl::Sqlite);
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(s.to_owned()));
        }
        Err(format!(
            "unknown store '{}': use `sqlite` (the embedded database in the data dir) or a \
             PostgreSQL URL `postgres://USER:PASSWORD@HOST:PORT/DATABASE`",
            redact(s)
        ))
    }
}

impl StoreUrl {
    /// Whether several nodes may share this store (PostgreSQL).
    pub fn is_shared(&self) -> bool {
        matches!(self, StoreUrl::Postgres(_))
    }
}

/// The URL with any password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (auth, host) = match rest.rsplit_once('@') {
        Some((auth, host)) => (auth, host),
        None => return url.to_owned(),
    };
    match auth.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_owned(),
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite => f.write_str("sqlite"),
            StoreUrl::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_never_shows_the_password() {
        assert_eq!("sqlite".parse::<StoreUrl>().unwrap(), StoreUrl::Sqlite);
        let pg: StoreUrl = "postgres://fcx:hunter2@db:5432/fcx".parse().unwrap();
        assert!(pg.is_shared());
        assert_eq!(pg.to_string(), "postgres://fcx:***@db:5432/fcx");
        let err = "mysql://u:pw@h/db".parse::<StoreUrl>().unwrap_err();
        assert!(
            err.contains("mysql://u:***@h/db") && !err.contains("pw"),
            "{err}"
        );
    }
}

//! A Postgres store's URL: the connection settings, the index name, and the URL as shown in
//! messages (the password replaced by `***`).

use crate::{RagError, Result};
use std::str::FromStr;
use std::time::Duration;

/// The index name of a URL without `?index=`.
pub const DEFAULT_INDEX_NAME: &str = "main";
/// Longest index name: its tables' and indexes' names must stay within Postgres's 63 bytes.
const MAX_NAME: usize = 30;
/// Connection timeout unless the URL sets `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where a Postgres index lives.
#[derive(Clone, Debug)]
pub struct PgLocation {
    config: postgres::Config,
    redacted: String,
    password: Option<String>,
    name: String,
}

impl PgLocation {
    /// Parses `postgres://USER:PASSWORD@HOST:PORT/DB[?index=NAME&...]`.
    pub fn parse(url: &str) -> Result<Self> {
        let (redacted, password) = redact(url);
        let invalid = |msg: String| RagError::Postgres {
            url: redacted.clone(),
            msg,
        };
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut name = DEFAULT_INDEX_NAME.to_string();
        let mut rest = Vec::new();
        for param in query.split('&').filter(|p| !p.is_empty()) {
            match param.strip_prefix("index=") {
                Some(n) => name = n.to_string(),
                None => rest.push(param),
            }
        }
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid {
            return Err(invalid(format!(
                "index name `{name}`: expected 1 to {MAX_NAME} characters of a-z, 0-9 and _, starting with a letter"
            )));
        }
        let conn = if rest.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", rest.join("&"))
        };
        let mut config = postgres::Config::from_str(&conn).map_err(|e| {
            let msg = format!("not a PostgreSQL connection URL: {e}");
            invalid(scrub(&msg, password.as_deref()))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        Ok(Self {
            config,
            redacted,
            password,
            name,
        })
    }

    /// The URL without its password.
    pub fn redacted(&self) -> &str {
        &self.redacted
    }

    /// The index name (`?index=`).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub(crate) fn config(&self) -> &postgres::Config {
        &self.config
    }

    pub(crate) fn database(&self) -> String {
        self.config
            .get_dbname()
            .map_or_else(|| self.user(), str::to_string)
    }

    pub(crate) fn user(&self) -> String {
        self.config.get_user().unwrap_or("").to_string()
    }

    /// `msg` with the password (if any) replaced.
    pub(crate) fn scrub(&self, msg: &str) -> String {
        scrub(msg, self.password.as_deref())
    }
}

fn scrub(msg: &str, password: Option<&str>) -> String {
    match password {
        Some(p) if !p.is_empty() => msg.replace(p, "***"),
        _ => msg.to_string(),
    }
}

/// The URL with the password of its user info (and of a `password=` parameter) replaced by
/// `***`, and that password.
pub(crate) fn redact(url: &str) -> (String, Option<String>) {
    let Some(scheme_end) = url.find("://") else {
        return (url.to_string(), None);
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let auth_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (auth, tail) = rest.split_at(auth_end);
    let mut password = None;
    let auth = match auth.rfind('@') {
        Some(at) => {
            let (userinfo, host) = auth.split_at(at);
            match userinfo.split_once(':') {
                Some((user, pass)) => {
                    password = Some(pass.to_string());
                    format!("{user}:***{host}")
                }
                None => auth.to_string(),
            }
        }
        None => auth.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.strip_prefix("password=") {
                    Some(pass) => {
                        password.get_or_insert_with(|| pass.to_string());
                        "password=***".to_string()
                    }
                    None => p.to_string(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_string(),
    };
    (format!("{scheme}{auth}{tail}"), password)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_is_never_shown() {
        let (r, p) = redact("postgres://me:s3cret@db.example:5433/idx?index=squad");
        assert_eq!(r, "postgres://me:***@db.example:5433/idx?index=squad");
        assert_eq!(p.as_deref(), Some("s3cret"));
        let (r, p) = redact("postgresql://me@host/db?password=hunter2&sslmode=disable");
        assert_eq!(r, "postgresql://me@host/db?password=***&sslmode=disable");
        assert_eq!(p.as_deref(), Some("hunter2"));
        let (r, p) = redact("postgres://host/db");
        assert_eq!((r.as_str(), p), ("postgres://host/db", None));
    }

    #[test]
    fn the_index_name_comes_from_the_url() {
        let loc = PgLocation::parse("postgres://u:pw@localhost:5432/db?index=squad_v2").unwrap();
        assert_eq!(loc.name(), "squad_v2");
        assert_eq!(loc.database(), "db");
        assert_eq!(
            loc.redacted(),
            "postgres://u:***@localhost:5432/db?index=squad_v2"
        );
        let loc = PgLocation::parse("postgres://u@localhost/db").unwrap();
        assert_eq!(loc.name(), DEFAULT_INDEX_NAME);
        let e = PgLocation::parse("postgres://u:pw@localhost/db?index=Bad-Name")
            .unwrap_err()
            .to_string();
        assert!(e.contains("Bad-Name") && !e.contains("pw@"), "{e}");
        let e = PgLocation::parse("postgres://u:pw@localhost/db?nonsense=1")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nonsense") && !e.contains(":pw"), "{e}");
    }
}

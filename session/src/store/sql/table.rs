//! Table names: validated once, when a store is built, then quoted into every statement.
//!
//! A name is one identifier, or two joined by a dot (a schema or database, then the
//! table), each an ASCII letter or `_` followed by letters, digits or `_`, at most
//! [`MAX_PART_LEN`] bytes. Nothing else is accepted, so no name can carry SQL into a
//! statement; it is quoted all the same (`"…"`, or `` `…` `` on MySQL), which also keeps
//! reserved words such as `session` usable.

use crate::Error;

/// The longest part of a name: PostgreSQL truncates identifiers at 63 bytes, and the
/// index names add at most 15 (`_expires_minute`, `_expires_at`, `_index_key`).
pub(crate) const MAX_PART_LEN: usize = 48;

/// How a backend quotes identifiers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Quote {
    /// `"name"`: PostgreSQL and SQLite.
    #[cfg_attr(not(any(feature = "postgres", feature = "sqlite")), allow(dead_code))]
    Double,
    /// `` `name` ``: MySQL and MariaDB.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    Backtick,
}

/// A validated table name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    schema: Option<String>,
    name: String,
    quote: Quote,
}

impl Table {
    /// Validates `name` (`table` or `schema.table`).
    ///
    /// # Errors
    ///
    /// [`Error::Config`], naming the rule, for anything else.
    pub(crate) fn parse(name: &str, quote: Quote) -> Result<Self, Error> {
        let mut parts = name.split('.');
        let (schema, table) = match (parts.next(), parts.next(), parts.next()) {
            (Some(table), None, None) => (None, table),
            (Some(schema), Some(table), None) => (Some(schema), table),
            _ => return Err(invalid(name)),
        };
        for part in schema.iter().chain([&table]) {
            if !is_identifier(part) {
                return Err(invalid(name));
            }
        }
        Ok(Self {
            schema: schema.map(str::to_owned),
            name: table.to_owned(),
            quote,
        })
    }

    /// The quoted, qualified name for statements: `"schema"."table"` or `"table"`.
    pub(crate) fn quoted(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{}.{}", self.quote(schema), self.quote(&self.name)),
            None => self.quote(&self.name),
        }
    }

    /// The expiry index's quoted name, unqualified: `"table_expires_minute"`.
    pub(crate) fn expiry_index(&self) -> String {
        self.quote(&format!("{}_expires_minute", self.name))
    }

    /// The quoted name, unqualified, of the expiry index tables had before
    /// `expires_minute` (on `expires_at`), which `migrate` drops: `"table_expires_at"`.
    #[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
    pub(crate) fn old_expiry_index(&self) -> String {
        self.quote(&format!("{}_expires_at", self.name))
    }

    /// [`old_expiry_index`](Self::old_expiry_index) as an SQL string literal:
    /// `'table_expires_at'`.
    #[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
    pub(crate) fn old_expiry_index_literal(&self) -> String {
        format!("'{}_expires_at'", self.name)
    }

    /// The session index's quoted name, unqualified: `"table_index_key"`.
    pub(crate) fn key_index(&self) -> String {
        self.quote(&format!("{}_index_key", self.name))
    }

    /// The table name, unquoted, as an SQL string literal (validated: nothing to escape).
    #[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
    pub(crate) fn name_literal(&self) -> String {
        format!("'{}'", self.name)
    }

    /// The schema, unquoted, as an SQL string literal, if the name has one.
    #[cfg_attr(not(any(feature = "sqlite", feature = "mysql")), allow(dead_code))]
    pub(crate) fn schema_literal(&self) -> Option<String> {
        self.schema.as_deref().map(|schema| format!("'{schema}'"))
    }

    /// The quoted, qualified name as an SQL string literal: `'"schema"."table"'`.
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn quoted_literal(&self) -> String {
        format!("'{}'", self.quoted())
    }

    /// The quoted schema, if the name has one.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn schema(&self) -> Option<String> {
        self.schema.as_deref().map(|schema| self.quote(schema))
    }

    /// The quoted table name, unqualified.
    #[cfg_attr(not(feature = "sqlite"), allow(dead_code))]
    pub(crate) fn bare(&self) -> String {
        self.quote(&self.name)
    }

    /// The name as given: for logs and `Debug`.
    pub(crate) fn display(&self) -> String {
        match &self.schema {
            Some(schema) => format!("{schema}.{}", self.name),
            None => self.name.clone(),
        }
    }

    fn quote(&self, identifier: &str) -> String {
        // Validated: no quote character can occur inside.
        match self.quote {
            Quote::Double => format!("\"{identifier}\""),
            Quote::Backtick => format!("`{identifier}`"),
        }
    }
}

fn is_identifier(part: &str) -> bool {
    let mut chars = part.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && part.len() <= MAX_PART_LEN
}

fn invalid(name: &str) -> Error {
    Error::Config(format!(
        "invalid session table name {name:?}: use `table` or `schema.table`, each part an ASCII letter or `_` \
         followed by letters, digits or `_`, at most {MAX_PART_LEN} characters"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_qualified_names_are_quoted() {
        let table = Table::parse("sessions", Quote::Double).unwrap();
        assert_eq!(table.quoted(), "\"sessions\"");
        assert_eq!(table.old_expiry_index(), "\"sessions_expires_at\"");
        assert_eq!(table.schema(), None);
        let table = Table::parse("app.user_sessions2", Quote::Backtick).unwrap();
        assert_eq!(table.quoted(), "`app`.`user_sessions2`");
        assert_eq!(table.old_expiry_index(), "`user_sessions2_expires_at`");
        assert_eq!(table.key_index(), "`user_sessions2_index_key`");
        assert_eq!(table.name_literal(), "'user_sessions2'");
        assert_eq!(table.schema_literal().as_deref(), Some("'app'"));
        assert_eq!(table.quoted_literal(), "'`app`.`user_sessions2`'");
        assert_eq!(table.schema().as_deref(), Some("`app`"));
        assert_eq!(table.display(), "app.user_sessions2");
        assert!(Table::parse("_x", Quote::Double).is_ok());
        assert!(Table::parse(&"a".repeat(MAX_PART_LEN), Quote::Double).is_ok());
    }

    #[test]
    fn anything_that_could_carry_sql_is_refused() {
        for name in [
            "",
            ".",
            "a.",
            ".a",
            "a.b.c",
            "1sessions",
            "sessions; DROP TABLE users",
            "sessions\"",
            "sess`ions",
            "sess ions",
            "sessions--",
            "séssions",
            "a-b",
            "sessions\0",
            &"a".repeat(MAX_PART_LEN + 1),
        ] {
            let error = Table::parse(name, Quote::Double).unwrap_err();
            assert!(matches!(error, Error::Config(_)), "{name:?}: {error}");
        }
    }
}

//! Map-name patterns of a policy (PROTOCOL.md §8.1): `*`, exact names, a
//! trailing `*` for a prefix, and `{userId}` taken from the principal.

use std::fmt;

/// The placeholder replaced by the principal's `userId`.
pub const USER_ID_PLACEHOLDER: &str = "{userId}";

/// A parsed `mapNamePattern`; any text is a valid pattern.
///
/// Only the *first* `{userId}` is a placeholder, as upstream; later ones are
/// literal text. A `*` is a wildcard only when it is the whole pattern or its
/// last character; anywhere else it is literal.
///
/// Two deliberate differences from upstream, which substitutes the text and
/// then matches the result:
/// - The `userId` is always literal text. Upstream lets a `userId` of `*` turn
///   `notes/{userId}` into `notes/*` (every user's notes), and JavaScript's
///   `$&`-style replacement sequences in a `userId` rewrite the pattern.
/// - A pattern with `{userId}` never matches a principal without one; upstream
///   substitutes the text `undefined`, so `notes/{userId}` matches the map
///   `notes/undefined` for every such principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapPattern {
    source: String,
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Any,
    Exact(String),
    Prefix(String),
    /// `before` + userId + `after`; `prefix` when the pattern ends in `*`.
    User {
        before: String,
        after: String,
        prefix: bool,
    },
}

impl MapPattern {
    /// Parses a `mapNamePattern`.
    pub fn new(pattern: impl Into<String>) -> Self {
        let source = pattern.into();
        let kind = Kind::parse(&source);

        MapPattern { source, kind }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether `name` matches for a principal with this `userId`.
    pub fn matches(&self, name: &str, user_id: Option<&str>) -> bool {
        match &self.kind {
            Kind::Any => true,
            Kind::Exact(exact) => name == exact,
            Kind::Prefix(prefix) => name.starts_with(prefix.as_str()),
            Kind::User {
                before,
                after,
                prefix,
            } => {
                let Some(user_id) = user_id else {
                    return false;
                };
                let rest = name
                    .strip_prefix(before.as_str())
                    .and_then(|rest| rest.strip_prefix(user_id));

                match rest {
                    Some(rest) if *prefix => rest.starts_with(after.as_str()),
                    Some(rest) => rest == after,
                    None => false,
                }
            }
        }
    }
}

impl Kind {
    fn parse(source: &str) -> Kind {
        if let Some((before, after)) = source.split_once(USER_ID_PLACEHOLDER) {
            let (after, prefix) = match after.strip_suffix('*') {
                Some(stem) => (stem, true),
                None => (after, false),
            };
            return Kind::User {
                before: before.to_owned(),
                after: after.to_owned(),
                prefix,
            };
        }

        if source == "*" {
            Kind::Any
        } else if let Some(prefix) = source.strip_suffix('*') {
            Kind::Prefix(prefix.to_owned())
        } else {
            Kind::Exact(source.to_owned())
        }
    }
}

impl fmt::Display for MapPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl From<&str> for MapPattern {
    fn from(pattern: &str) -> Self {
        MapPattern::new(pattern)
    }
}

//! Loading a [`PolicySet`] from a JSON file of upstream `PermissionPolicy` objects.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::{FieldAccess, MapPattern, Permission, Policy, PolicySet};

/// Why a policy file cannot be used; a start-up error that names the file.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading policy file {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("parsing policy file {} as a JSON array of policies", path.display())]
    Json {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("policy file {}: policy at index {index}: {problem}", path.display())]
    Invalid {
        path: PathBuf,
        index: usize,
        problem: &'static str,
    },
}

/// Upstream's `PermissionPolicy`; unknown fields are refused so that a
/// misspelt `allowedFields` cannot silently expose every field.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RawPolicy {
    role: String,
    map_name_pattern: String,
    actions: Vec<Permission>,
    #[serde(default)]
    allowed_fields: Option<Vec<String>>,
}

impl PolicySet {
    /// Reads a JSON array of policies, each `{role, mapNamePattern, actions, allowedFields?}`.
    ///
    /// `actions` entries are `READ`, `PUT`, `REMOVE` or `ALL`. A missing or
    /// null `allowedFields`, or one containing `*`, means every field. Refused,
    /// besides malformed JSON, unknown actions and unknown fields: an empty
    /// `role`, `mapNamePattern` or `actions`, and an empty `allowedFields`,
    /// which upstream reads as *every* field, the opposite of how it looks.
    /// An empty array is accepted and allows nothing except to ADMIN.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PolicyError> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| PolicyError::Read {
            path: path.to_owned(),
            source,
        })?;

        let raw: Vec<RawPolicy> =
            serde_json::from_slice(&bytes).map_err(|source| PolicyError::Json {
                path: path.to_owned(),
                source,
            })?;

        let policies = raw
            .into_iter()
            .enumerate()
            .map(|(index, raw)| {
                raw.check().map_err(|problem| PolicyError::Invalid {
                    path: path.to_owned(),
                    index,
                    problem,
                })
            })
            .collect::<Result<_, _>>()?;

        Ok(PolicySet::new(policies))
    }
}

impl RawPolicy {
    fn check(self) -> Result<Policy, &'static str> {
        if self.role.is_empty() {
            return Err("`role` is empty");
        }
        if self.map_name_pattern.is_empty() {
            return Err("`mapNamePattern` is empty");
        }
        if self.actions.is_empty() {
            return Err("`actions` is empty, so the policy would allow nothing");
        }

        let fields = match self.allowed_fields {
            None => FieldAccess::All,
            Some(fields) if fields.is_empty() => {
                return Err("`allowedFields` is empty, which would mean every field; \
                            omit it for every field or list the fields");
            }
            Some(fields) => FieldAccess::from_list(fields),
        };

        Ok(Policy {
            role: self.role,
            pattern: MapPattern::new(self.map_name_pattern),
            permissions: self.actions,
            fields,
        })
    }
}

//! Permission policies (PROTOCOL.md §8): who may read, write or remove which
//! maps, topics and locks, and which fields of a map's values they may see.
//!
//! Pure logic apart from [`PolicySet::from_file`]. Choosing the resource and
//! action of a message, answering a denial and applying a [`ReadView`] to
//! outgoing values are left to the data plane.

use std::collections::BTreeSet;
use std::fmt;

use rmpv::Value;
use serde::Deserialize;

use crate::auth::{Principal, DEFAULT_ROLE};

mod file;
mod pattern;
mod view;

pub use file::PolicyError;
pub use pattern::{MapPattern, USER_ID_PLACEHOLDER};
pub use view::ReadView;

/// The role that may do everything, whatever the policies say.
pub const ADMIN_ROLE: &str = "ADMIN";

/// Resources starting with this are system maps, readable and writable by [`ADMIN_ROLE`] only.
pub const SYSTEM_PREFIX: &str = "$sys/";

/// Prefix of the resource name of a topic (PROTOCOL.md §8.2, §12).
pub const TOPIC_PREFIX: &str = "topic:";

/// The resource a policy sees for a topic: `topic:<name>`.
pub fn topic_resource(topic: &str) -> String {
    format!("{TOPIC_PREFIX}{topic}")
}

/// What a message tries to do to a resource (PROTOCOL.md §8.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// `QUERY_SUB`, `SYNC_INIT`, `MERKLE_REQ_BUCKET`, `TOPIC_SUB`.
    Read,
    /// A write that is not a removal, `LOCK_REQUEST`, `TOPIC_PUB`.
    Put,
    /// A write that removes a value.
    Remove,
}

impl Action {
    /// The action of a `CLIENT_OP` or `OP_BATCH` op (PROTOCOL.md §3.3 step 1).
    ///
    /// [`Action::Remove`] when `op_type` is `REMOVE` or the op carries a
    /// `record` whose `value` is nil (`nil_record_value`); otherwise
    /// [`Action::Put`], which includes `OR_ADD` and `OR_REMOVE`.
    pub fn for_write(op_type: Option<&str>, nil_record_value: bool) -> Action {
        if op_type == Some("REMOVE") || nil_record_value {
            Action::Remove
        } else {
            Action::Put
        }
    }

    /// The spelling in policies and logs, e.g. `PUT`.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Read => "READ",
            Action::Put => "PUT",
            Action::Remove => "REMOVE",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One entry of a policy's `actions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Permission {
    /// `READ`.
    Read,
    /// `PUT`.
    Put,
    /// `REMOVE`.
    Remove,
    /// `ALL`: every action.
    All,
}

impl Permission {
    /// Whether this entry allows `action`.
    pub fn allows(self, action: Action) -> bool {
        matches!(
            (self, action),
            (Permission::All, _)
                | (Permission::Read, Action::Read)
                | (Permission::Put, Action::Put)
                | (Permission::Remove, Action::Remove)
        )
    }
}

/// The fields of a map's values a policy lets its role read (`allowedFields`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldAccess {
    /// Every field: `allowedFields` missing, empty or containing `*`.
    All,
    /// Only these top-level fields.
    Only(BTreeSet<String>),
}

impl FieldAccess {
    /// Reads an `allowedFields` list as upstream does: empty or containing `*` means [`FieldAccess::All`].
    pub fn from_list<I, S>(fields: I) -> FieldAccess
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let fields: BTreeSet<String> = fields.into_iter().map(Into::into).collect();

        if fields.is_empty() || fields.contains("*") {
            FieldAccess::All
        } else {
            FieldAccess::Only(fields)
        }
    }
}

/// One `PermissionPolicy`: a role may do these actions on resources matching a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `role`: the principal must have it, compared exactly.
    pub role: String,
    /// `mapNamePattern`.
    pub pattern: MapPattern,
    /// `actions`.
    pub permissions: Vec<Permission>,
    /// `allowedFields`; only used when the policy grants READ.
    pub fields: FieldAccess,
}

impl Policy {
    /// A policy that lets `role` do `permissions` on resources matching `pattern`, seeing every field.
    pub fn new(
        role: impl Into<String>,
        pattern: impl Into<String>,
        permissions: impl IntoIterator<Item = Permission>,
    ) -> Self {
        Policy {
            role: role.into(),
            pattern: MapPattern::new(pattern),
            permissions: permissions.into_iter().collect(),
            fields: FieldAccess::All,
        }
    }

    /// The same policy with `allowedFields`; see [`FieldAccess::from_list`].
    pub fn with_fields<I, S>(mut self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.fields = FieldAccess::from_list(fields);
        self
    }

    /// Whether this policy's role and pattern cover `principal` and `resource`.
    pub fn applies_to(&self, principal: &Principal, resource: &str) -> bool {
        principal.roles.contains(&self.role)
            && self.pattern.matches(resource, principal.user_id.as_deref())
    }

    /// Whether `actions` allows `action`.
    pub fn allows(&self, action: Action) -> bool {
        self.permissions
            .iter()
            .any(|permission| permission.allows(action))
    }
}

/// Why [`PolicySet::decide`] allowed or denied; useful in a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed: the principal has [`ADMIN_ROLE`].
    Admin,
    /// Allowed by the policy at this index, the first that grants the action.
    Policy(usize),
    /// Denied: a `$sys/` resource and the principal is not ADMIN.
    SystemResource,
    /// Denied: no policy grants the action.
    NoPolicy,
}

impl Decision {
    /// Whether the action may go ahead.
    pub fn is_allowed(self) -> bool {
        matches!(self, Decision::Admin | Decision::Policy(_))
    }
}

/// The policies of a node, in order; checks are read-only, so share it freely.
///
/// An empty set allows nothing except to ADMIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySet {
    policies: Vec<Policy>,
}

impl PolicySet {
    /// A set of these policies.
    pub fn new(policies: Vec<Policy>) -> Self {
        PolicySet { policies }
    }

    /// Upstream's `start-server.ts` default (PROTOCOL.md §8.4): role `USER`, pattern `*`, `ALL`.
    ///
    /// Since a token without `roles` gets `USER`, any valid token may then do
    /// everything except touch `$sys/` resources.
    pub fn upstream_default() -> Self {
        PolicySet::new(vec![Policy::new(DEFAULT_ROLE, "*", [Permission::All])])
    }

    /// The policies, in the order they were given.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }

    /// Whether `principal` may do `action` on `resource` (a map, lock or `topic:` name), and why.
    ///
    /// ADMIN may do everything; otherwise `$sys/` resources are refused, and
    /// anything else needs one policy whose role the principal has, whose
    /// pattern matches and whose actions include `action` or `ALL`.
    pub fn decide(&self, principal: &Principal, resource: &str, action: Action) -> Decision {
        if is_admin(principal) {
            return Decision::Admin;
        }

        if resource.starts_with(SYSTEM_PREFIX) {
            return Decision::SystemResource;
        }

        self.policies
            .iter()
            .position(|policy| policy.allows(action) && policy.applies_to(principal, resource))
            .map_or(Decision::NoPolicy, Decision::Policy)
    }

    /// Whether `principal` may do `action` on `resource`; see [`PolicySet::decide`].
    pub fn check(&self, principal: &Principal, resource: &str, action: Action) -> bool {
        self.decide(principal, resource, action).is_allowed()
    }

    /// What `principal` may read of the values of `map` (PROTOCOL.md §8.3).
    ///
    /// ADMIN reads everything. Otherwise, among the policies that apply and
    /// grant READ or ALL: none means [`ReadView::Denied`]; any one with every
    /// field means [`ReadView::Whole`]; else the union of their fields. A
    /// `$sys/` map is [`ReadView::Denied`] to non-ADMINs, matching
    /// [`PolicySet::check`]; upstream's filter does not look at the prefix.
    pub fn read_view(&self, principal: &Principal, map: &str) -> ReadView {
        if is_admin(principal) {
            return ReadView::Whole;
        }

        if map.starts_with(SYSTEM_PREFIX) {
            return ReadView::Denied;
        }

        let mut union: Option<BTreeSet<String>> = None;
        let readers = self
            .policies
            .iter()
            .filter(|policy| policy.allows(Action::Read) && policy.applies_to(principal, map));
        for policy in readers {
            match &policy.fields {
                FieldAccess::All => return ReadView::Whole,
                FieldAccess::Only(fields) => union
                    .get_or_insert_with(BTreeSet::new)
                    .extend(fields.iter().cloned()),
            }
        }

        union.map_or(ReadView::Denied, ReadView::Fields)
    }

    /// The part of `value`, a value of `map`, that `principal` may see; see [`ReadView::filter`].
    ///
    /// For many values to one recipient, compute [`PolicySet::read_view`] once instead.
    pub fn filter(&self, principal: &Principal, map: &str, value: &Value) -> Value {
        self.read_view(principal, map).filter(value)
    }
}

fn is_admin(principal: &Principal) -> bool {
    principal.roles.iter().any(|role| role == ADMIN_ROLE)
}

#[cfg(test)]
mod tests;

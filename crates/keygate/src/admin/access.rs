//! Who may do what in the admin API. An admin credential carries a role
//! scoped to the whole instance, one organisation or one project:
//!
//! | role   | reads in scope | keys in scope            | projects, organisations | admin credentials |
//! |--------|----------------|--------------------------|-------------------------|-------------------|
//! | viewer | yes            | no                       | no                      | no                |
//! | member | yes            | create; change own keys  | no                      | no                |
//! | admin  | yes            | everything               | create (in scope)       | no                |
//! | owner  | yes            | everything               | create (in scope)       | create, revoke    |
//!
//! Limits (rates, concurrency, budgets) are policy: a member may set them
//! on a key it creates (they can only restrict it), but changing a key's
//! limits afterwards takes an admin or owner in scope, so nobody raises
//! their own. The limits of a project, an organisation, an owner, and an
//! organisation's prepaid balance are set from above: by an admin or owner
//! of the organisation or the instance, never by a project-scoped one.
//!
//! Instance-wide settings (provider credentials, the audit log) need an
//! instance-scoped credential. Anything outside the caller's scope is
//! answered as if it did not exist (404), so ids cannot be probed across
//! tenants (OWASP API1); an action the role does not allow is a 403
//! (OWASP API5).

use super::fail;
use crate::error::{ApiError, ShapedError};
use crate::store::{KeyRecord, Project};

/// An admin role, from least to most powerful.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Reads only.
    Viewer,
    /// Creates keys and manages the keys it owns.
    Member,
    /// Manages every key and project in scope.
    Admin,
    /// Admin, plus the admin credentials of the scope.
    Owner,
}

impl Role {
    /// Every role, for messages and validation.
    pub const NAMES: &'static str = "owner, admin, member, viewer";

    /// Parse a stored or requested role name.
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "member" => Some(Role::Member),
            "admin" => Some(Role::Admin),
            "owner" => Some(Role::Owner),
            _ => None,
        }
    }

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }
}

/// The admin credential making a request, as the store holds it now (a
/// role change applies to the next request).
#[derive(Clone, Debug)]
pub struct Actor {
    /// The credential's key id (the audit log's actor).
    pub id: String,
    /// Its role.
    pub role: Role,
    /// Its organisation; `None`: the whole instance.
    pub org_id: Option<String>,
    /// Its project; `None`: the whole organisation (or instance).
    pub project_id: Option<String>,
    /// The person or service it belongs to: the default owner of the keys
    /// it creates, and what a member may manage.
    pub identity: String,
}

fn insufficient(message: impl Into<String>) -> ShapedError {
    fail(ApiError::forbidden("insufficient_role", message))
}

impl Actor {
    /// The actor behind a stored admin credential.
    pub fn from_record(record: &KeyRecord) -> Actor {
        Actor {
            id: record.id.clone(),
            // A credential without a readable role may only read.
            role: record
                .role
                .as_deref()
                .and_then(Role::parse)
                .unwrap_or(Role::Viewer),
            org_id: record.org_id.clone(),
            project_id: record.project_id.clone(),
            identity: record.owner.clone().unwrap_or_else(|| record.id.clone()),
        }
    }

    /// Scoped to the whole instance.
    pub fn is_instance_wide(&self) -> bool {
        self.org_id.is_none()
    }

    /// Whether `(org_id, project_id)` lies inside this actor's scope.
    pub fn covers(&self, org_id: Option<&str>, project_id: Option<&str>) -> bool {
        match (&self.org_id, &self.project_id) {
            (None, _) => true,
            (Some(org), None) => org_id == Some(org.as_str()),
            (Some(org), Some(project)) => {
                org_id == Some(org.as_str()) && project_id == Some(project.as_str())
            }
        }
    }

    /// Whether the actor may see this key (or admin credential) at all.
    pub fn sees_key(&self, key: &KeyRecord) -> bool {
        self.covers(key.org_id.as_deref(), key.project_id.as_deref())
    }

    /// Whether the actor may see this project.
    pub fn sees_project(&self, project: &Project) -> bool {
        self.covers(Some(&project.org_id), Some(&project.id))
    }

    /// Refuse a change unless the role is at least `needed`.
    pub fn require(&self, needed: Role, what: &str) -> Result<(), ShapedError> {
        if self.role >= needed {
            return Ok(());
        }
        Err(insufficient(format!(
            "This admin credential's role ({}) may not {what}; it needs {} or above.",
            self.role.as_str(),
            needed.as_str()
        )))
    }

    /// Refuse unless the credential is instance-wide (settings that belong
    /// to no tenant).
    pub fn require_instance(&self, what: &str) -> Result<(), ShapedError> {
        if self.is_instance_wide() {
            return Ok(());
        }
        Err(insufficient(format!(
            "Only an instance-wide admin credential may {what}."
        )))
    }

    /// Refuse changing a visible key the actor may not change: viewers
    /// change nothing, members only the keys they own.
    pub fn require_key_change(&self, key: &KeyRecord) -> Result<(), ShapedError> {
        self.require(Role::Member, "change keys")?;
        if self.role == Role::Member && key.owner.as_deref() != Some(self.identity.as_str()) {
            return Err(insufficient("A member may only change the keys it owns."));
        }
        Ok(())
    }

    /// Refuse changing a key's limits unless the role is admin or owner:
    /// a member may not raise (or drop) the limits set on its own keys.
    pub fn require_limits_change(&self) -> Result<(), ShapedError> {
        if self.role >= Role::Admin {
            return Ok(());
        }
        Err(fail(ApiError::forbidden(
            "field_not_allowed",
            format!(
                "A {} may not change a key's limits (rpm, tpm, max_concurrent, budget); \
                 that takes an admin or owner.",
                self.role.as_str()
            ),
        )))
    }

    /// Refuse setting the limits of a project or an organisation (or an
    /// organisation's owner budgets and balance) unless the credential is
    /// an admin or owner scoped above projects: a project-scoped admin
    /// does not set the limits it is held to.
    pub fn require_tenant_limits(&self, what: &str) -> Result<(), ShapedError> {
        self.require(Role::Admin, what)?;
        if self.project_id.is_some() {
            return Err(insufficient(format!(
                "A project-scoped admin credential may not {what}; that takes an organisation or \
                 instance admin."
            )));
        }
        Ok(())
    }

    /// Refuse a field the role may not set (OWASP API3): only admins and
    /// owners choose a key's owner; members own what they create.
    pub fn require_owner_field(&self, owner: Option<&str>) -> Result<(), ShapedError> {
        match owner {
            Some(owner) if self.role < Role::Admin && owner != self.identity => {
                Err(fail(ApiError::forbidden(
                    "field_not_allowed",
                    format!(
                        "A {} may not set 'owner' to anyone but itself.",
                        self.role.as_str()
                    ),
                )))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn actor(role: Role, org: Option<&str>, project: Option<&str>) -> Actor {
        Actor {
            id: "key_actor".into(),
            role,
            org_id: org.map(Into::into),
            project_id: project.map(Into::into),
            identity: "alice".into(),
        }
    }

    #[test]
    fn scopes_nest_instance_organisation_project() {
        let instance = actor(Role::Viewer, None, None);
        let org = actor(Role::Viewer, Some("org_a"), None);
        let project = actor(Role::Viewer, Some("org_a"), Some("proj_1"));
        assert!(instance.covers(Some("org_b"), Some("proj_9")));
        assert!(org.covers(Some("org_a"), Some("proj_2")));
        assert!(!org.covers(Some("org_b"), Some("proj_2")));
        assert!(project.covers(Some("org_a"), Some("proj_1")));
        assert!(!project.covers(Some("org_a"), Some("proj_2")));
        // An instance-wide admin credential (no organisation) is outside
        // every tenant's scope.
        assert!(!org.covers(None, None));
    }

    #[test]
    fn roles_are_ordered_and_parse_round_trip() {
        for role in [Role::Viewer, Role::Member, Role::Admin, Role::Owner] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert!(Role::Owner > Role::Admin && Role::Admin > Role::Member);
        assert!(Role::Member > Role::Viewer);
        assert_eq!(Role::parse("root"), None);
        assert!(actor(Role::Viewer, None, None)
            .require(Role::Member, "create keys")
            .is_err());
    }

    #[test]
    fn limits_are_set_from_above() {
        assert!(actor(Role::Member, None, None)
            .require_limits_change()
            .is_err());
        assert!(actor(Role::Admin, Some("org_a"), Some("proj_1"))
            .require_limits_change()
            .is_ok());
        let what = "set project limits";
        assert!(actor(Role::Admin, Some("org_a"), None)
            .require_tenant_limits(what)
            .is_ok());
        assert!(actor(Role::Owner, None, None)
            .require_tenant_limits(what)
            .is_ok());
        assert!(actor(Role::Owner, Some("org_a"), Some("proj_1"))
            .require_tenant_limits(what)
            .is_err());
        assert!(actor(Role::Member, Some("org_a"), None)
            .require_tenant_limits(what)
            .is_err());
    }

    #[test]
    fn members_set_no_owner_but_themselves() {
        let member = actor(Role::Member, None, None);
        assert!(member.require_owner_field(Some("alice")).is_ok());
        assert!(member.require_owner_field(None).is_ok());
        assert!(member.require_owner_field(Some("bob")).is_err());
        assert!(actor(Role::Admin, None, None)
            .require_owner_field(Some("bob"))
            .is_ok());
    }
}

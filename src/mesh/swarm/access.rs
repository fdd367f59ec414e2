//! Who may change a swarm: its owner (the `ownerToken` that `swarm_init` hands out once), a
//! holder of its join secret (adding agents only), or anyone when it was created open. The
//! store keeps only digests.

use crate::error::{MeshError, Result};
use crate::mesh::model::{Membership, SwarmRecord};
use crate::secret;

impl SwarmRecord {
    fn owned_by(&self, owner_token: Option<&str>) -> bool {
        match (&self.owner_digest, owner_token) {
            (Some(digest), Some(token)) => secret::verify(token, digest),
            _ => false,
        }
    }

    /// A swarm-wide change (`what`) needs the owner's token, unless the swarm is open.
    pub(crate) fn authorize_owner(&self, owner_token: Option<&str>, what: &str) -> Result<()> {
        if self.membership == Membership::Open || self.owned_by(owner_token) {
            return Ok(());
        }
        let problem = if owner_token.is_some() { "the ownerToken is wrong" } else { "it needs the ownerToken" };
        Err(MeshError::Unauthorized(format!(
            "{what} in swarm `{}`: {problem} (returned once by swarm_init; `mesh-mcp call` keeps it beside the database)",
            self.id
        )))
    }

    /// Adding an agent needs the owner's token or, for `secret` membership, the join secret.
    pub(crate) fn authorize_join(&self, owner_token: Option<&str>, join_secret: Option<&str>) -> Result<()> {
        if self.membership != Membership::Secret {
            return self.authorize_owner(owner_token, "adding an agent");
        }
        match (&self.join_digest, join_secret) {
            (Some(digest), Some(s)) if secret::verify(s, digest) => Ok(()),
            (_, Some(_)) if !self.owned_by(owner_token) => {
                Err(MeshError::Unauthorized(format!("wrong joinSecret for swarm `{}`", self.id)))
            }
            _ => self.authorize_owner(owner_token, "adding an agent (or pass the swarm's joinSecret)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::SwarmId;
    use crate::mesh::model::{Strategy, SwarmSettings};
    use crate::mesh::topology::TopologyKind;

    fn record(membership: Membership) -> SwarmRecord {
        SwarmRecord {
            id: SwarmId::new("s"),
            topology: TopologyKind::Mesh,
            max_agents: 8,
            strategy: Strategy::Balanced,
            settings: SwarmSettings::default(),
            created_at_ms: 0,
            membership,
            owner_digest: Some(secret::digest("owner")),
            join_digest: (membership == Membership::Secret).then(|| secret::digest("join")),
        }
    }

    #[test]
    fn the_owner_may_do_anything_a_join_secret_only_join_and_nobody_else_anything() {
        for membership in [Membership::Owner, Membership::Secret] {
            let r = record(membership);
            assert!(r.authorize_owner(Some("owner"), "x").is_ok());
            assert!(r.authorize_join(Some("owner"), None).is_ok());
            assert!(r.authorize_owner(None, "x").is_err());
            assert!(r.authorize_owner(Some("guess"), "x").is_err());
            assert!(r.authorize_join(None, None).is_err());
            assert!(r.authorize_join(Some("guess"), None).is_err());
            assert!(r.authorize_owner(Some("join"), "x").is_err(), "a join secret is not the owner's token");
            assert_eq!(r.authorize_join(None, Some("join")).is_ok(), membership == Membership::Secret);
            assert!(r.authorize_join(None, Some("guess")).is_err());
        }
        let open = record(Membership::Open);
        assert!(open.authorize_join(None, None).is_ok() && open.authorize_owner(None, "x").is_ok());
    }

    #[test]
    fn a_record_from_before_owners_reads_as_open() {
        let old = r#"{"id":"s","topology":"mesh","maxAgents":8,"strategy":"balanced","settings":{"heartbeatInterval":5.0,"messageTimeout":30.0,"consensusThreshold":0.75,"faultToleranceLevel":0.33,"maxRetryAttempts":3,"circuitBreakerThreshold":5,"recoveryTimeout":60.0},"createdAtMs":1}"#;
        let r: SwarmRecord = serde_json::from_str(old).unwrap();
        assert_eq!((r.membership, r.owner_digest), (Membership::Open, None));
    }
}

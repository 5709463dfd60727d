//! Use cases: what the API asks hookrelay to do, as plain async methods over the store and
//! the delivery queue. Handlers call these and nothing else; this layer knows neither HTTP
//! nor SQL, and every tenant-scoped method takes the caller's `Principal` and checks it first.

mod auth;
mod deliveries;
mod endpoints;
mod event_types;
mod events;
mod sources;
mod tenants;

use std::sync::Arc;
use std::time::Duration;

pub use auth::{generate_key, hash_key};
pub use deliveries::{EndpointStats, LatencySummary};
pub use endpoints::{EndpointChanges, NewEndpoint};
pub use events::{NewEvent, Published};
pub use sources::{
    DestinationSpec, InboundPolicy, NewSource, ReceiveError, ReceiveReply, ReceivedRequest,
    SourceChanges, SourceView,
};
pub use tenants::CreatedKey;

use crate::delivery::DeliveryQueue;
use crate::delivery::ssrf::AddressPolicy;
use crate::domain::{Invalid, Principal, Tenant};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("missing or unknown API key")]
    Unauthorized,
    #[error("this key may not do that")]
    Forbidden,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict(what) => ServiceError::Conflict {
                code: "already_exists",
                message: format!("{what} already exists"),
            },
            other => ServiceError::Store(other),
        }
    }
}

pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

/// Settings the use cases need.
#[derive(Debug, Clone)]
pub struct Policy {
    pub https_only: bool,
    pub addresses: AddressPolicy,
    pub rotation_grace: Duration,
    pub failing_after_failures: u32,
    pub default_timeout: Duration,
    pub inbound: InboundPolicy,
}

#[derive(Clone)]
pub struct Service {
    store: Arc<dyn Store>,
    queue: DeliveryQueue,
    policy: Arc<Policy>,
    admin_key_hash: Arc<str>,
    /// Pending work as last counted, and when: the inbound back-pressure bounds.
    backlogs: Arc<std::sync::Mutex<sources::BacklogCounts>>,
}

impl Service {
    pub fn new(
        store: Arc<dyn Store>,
        queue: DeliveryQueue,
        policy: Policy,
        admin_key_hash: String,
    ) -> Self {
        Service {
            store,
            queue,
            policy: Arc::new(policy),
            admin_key_hash: admin_key_hash.into(),
            backlogs: Arc::default(),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The tenant named by `tenant_ref` (id or uid), if the caller may see it. Another
    /// tenant's key gets `NotFound`, exactly as for a tenant that does not exist.
    pub async fn tenant_for(&self, who: &Principal, tenant_ref: &str) -> Result<Tenant> {
        let tenant = self
            .store
            .get_tenant(tenant_ref)
            .await?
            .ok_or(ServiceError::NotFound("tenant"))?;
        match who {
            Principal::Admin => Ok(tenant),
            Principal::Tenant(id) if *id == tenant.id => Ok(tenant),
            Principal::Tenant(_) => Err(ServiceError::NotFound("tenant")),
        }
    }

    fn require_admin(who: &Principal) -> Result<()> {
        match who {
            Principal::Admin => Ok(()),
            Principal::Tenant(_) => Err(ServiceError::Forbidden),
        }
    }
}

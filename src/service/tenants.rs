//! Tenants and their API keys.

use chrono::Utc;

use super::auth::{generate_key, hash_key};
use super::{Result, Service, ServiceError};
use crate::domain::names::parse_tenant_uid;
use crate::domain::{ApiKey, Invalid, Page, PageRequest, Principal, Tenant, ids};

/// A key as returned once at creation.
pub struct CreatedKey {
    pub meta: ApiKey,
    pub key: String,
}

fn parse_name(name: &str) -> Result<String, Invalid> {
    let name = name.trim();
    if name.is_empty() || name.len() > 256 {
        return Err(Invalid::new(
            "invalid_name",
            "name must be 1-256 characters",
        ));
    }
    Ok(name.to_string())
}

impl Service {
    pub async fn create_tenant(&self, who: &Principal, uid: &str, name: &str) -> Result<Tenant> {
        Self::require_admin(who)?;
        let now = Utc::now();
        let tenant = Tenant {
            id: ids::new_id(ids::TENANT),
            uid: parse_tenant_uid(uid)?,
            name: parse_name(name)?,
            created_at: now,
            updated_at: now,
        };
        self.store.create_tenant(tenant.clone()).await?;
        Ok(tenant)
    }

    pub async fn list_tenants(
        &self,
        who: &Principal,
        page: PageRequest<'_>,
    ) -> Result<Page<Tenant>> {
        match who {
            Principal::Admin => Ok(self.store.list_tenants(page).await?),
            // A tenant key sees exactly its own tenant.
            Principal::Tenant(id) => {
                let own = self.store.get_tenant(id).await?;
                Ok(Page {
                    data: own.into_iter().filter(|_| page.cursor.is_none()).collect(),
                    next_cursor: None,
                })
            }
        }
    }

    pub async fn update_tenant(
        &self,
        who: &Principal,
        tenant_ref: &str,
        uid: Option<&str>,
        name: Option<&str>,
    ) -> Result<Tenant> {
        // Another tenant's key learns nothing: 404 first, then 403 for its own tenant.
        let mut tenant = self.tenant_for(who, tenant_ref).await?;
        Self::require_admin(who)?;
        if let Some(uid) = uid {
            tenant.uid = parse_tenant_uid(uid)?;
        }
        if let Some(name) = name {
            tenant.name = parse_name(name)?;
        }
        tenant.updated_at = Utc::now();
        self.store.update_tenant(tenant.clone()).await?;
        Ok(tenant)
    }

    pub async fn delete_tenant(&self, who: &Principal, tenant_ref: &str) -> Result<()> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        Self::require_admin(who)?;
        if !self.store.delete_tenant(&tenant.id).await? {
            return Err(ServiceError::NotFound("tenant"));
        }
        Ok(())
    }

    pub async fn create_api_key(
        &self,
        who: &Principal,
        tenant_ref: &str,
        name: Option<String>,
    ) -> Result<CreatedKey> {
        let tenant = self.tenant_for(who, tenant_ref).await?;
        Self::require_admin(who)?;
        let key = generate_key();
        let meta = ApiKey {
            id: ids::new_id(ids::API_KEY),
            tenant_id: Some(tenant.id),
            name: name.map(|n| n.chars().take(256).collect()),
            prefix: key[..7].to_string(),
            created_at: Utc::now(),
        };
        self.store
            .create_api_key(meta.clone(), hash_key(&key))
            .await?;
        Ok(CreatedKey { meta, key })
    }
}

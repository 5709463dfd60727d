//! The event type catalogue. The admin key writes it; every key may read it.

use chrono::Utc;

use super::{Result, Service, ServiceError};
use crate::domain::names::parse_event_type_name;
use crate::domain::{EventType, Invalid, Page, PageRequest, Principal};

fn check_schema(schema: &Option<serde_json::Value>) -> Result<(), Invalid> {
    match schema {
        None | Some(serde_json::Value::Object(_)) => Ok(()),
        Some(_) => Err(Invalid::new(
            "invalid_schema",
            "schema must be a JSON Schema object",
        )),
    }
}

fn check_sample(sample: &Option<serde_json::Value>) -> Result<(), Invalid> {
    match sample {
        None | Some(serde_json::Value::Object(_)) => Ok(()),
        Some(_) => Err(Invalid::new(
            "invalid_sample",
            "sample must be a JSON object, like a payload",
        )),
    }
}

fn check_description(d: &str) -> Result<(), Invalid> {
    if d.len() > 4096 {
        return Err(Invalid::new(
            "invalid_description",
            "description must be at most 4096 characters",
        ));
    }
    Ok(())
}

impl Service {
    pub async fn create_event_type(
        &self,
        who: &Principal,
        name: &str,
        description: String,
        schema: Option<serde_json::Value>,
        sample: Option<serde_json::Value>,
    ) -> Result<EventType> {
        Self::require_admin(who)?;
        check_schema(&schema)?;
        check_sample(&sample)?;
        check_description(&description)?;
        let now = Utc::now();
        let et = EventType {
            name: parse_event_type_name(name)?,
            description,
            schema,
            sample,
            archived: false,
            created_at: now,
            updated_at: now,
        };
        self.store.create_event_type(et.clone()).await?;
        Ok(et)
    }

    pub async fn get_event_type(&self, name: &str) -> Result<EventType> {
        self.store
            .get_event_type(name)
            .await?
            .ok_or(ServiceError::NotFound("event type"))
    }

    pub async fn list_event_types(
        &self,
        page: PageRequest<'_>,
        include_archived: bool,
    ) -> Result<Page<EventType>> {
        Ok(self.store.list_event_types(page, include_archived).await?)
    }

    #[allow(clippy::too_many_arguments)]
    pub async fn update_event_type(
        &self,
        who: &Principal,
        name: &str,
        description: Option<String>,
        schema: Option<Option<serde_json::Value>>,
        sample: Option<Option<serde_json::Value>>,
        archived: Option<bool>,
    ) -> Result<EventType> {
        Self::require_admin(who)?;
        let mut et = self.get_event_type(name).await?;
        if let Some(d) = description {
            check_description(&d)?;
            et.description = d;
        }
        if let Some(s) = schema {
            check_schema(&s)?;
            et.schema = s;
        }
        if let Some(s) = sample {
            check_sample(&s)?;
            et.sample = s;
        }
        if let Some(a) = archived {
            et.archived = a;
        }
        et.updated_at = Utc::now();
        self.store.update_event_type(et.clone()).await?;
        Ok(et)
    }

    /// Archives the type (it can no longer be published, history stays readable); with
    /// `expunge` removes it from the catalogue altogether.
    pub async fn delete_event_type(
        &self,
        who: &Principal,
        name: &str,
        expunge: bool,
    ) -> Result<()> {
        Self::require_admin(who)?;
        if expunge {
            if !self.store.delete_event_type(name).await? {
                return Err(ServiceError::NotFound("event type"));
            }
            return Ok(());
        }
        self.update_event_type(who, name, None, None, None, Some(true))
            .await?;
        Ok(())
    }
}

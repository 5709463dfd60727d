//! The OpenAPI document, generated from the handlers' annotations. A test checks that every
//! route the router serves is in it.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{deliveries, endpoints, event_types, events, ops, receive, sources, tenants};

#[derive(OpenApi)]
#[openapi(
    info(title = "hookrelay", description = "Self-hosted webhook gateway: outbound fan-out with Standard Webhooks signatures, retries and a full delivery log."),
    paths(
        deliveries::get_delivery,
        deliveries::list_deliveries,
        deliveries::list_operational_events,
        deliveries::retry_delivery,
        endpoints::create_endpoint,
        endpoints::delete_endpoint,
        endpoints::endpoint_health,
        endpoints::endpoint_stats,
        endpoints::get_endpoint,
        endpoints::get_secret,
        endpoints::list_endpoints,
        endpoints::recover,
        endpoints::rotate_secret,
        endpoints::send_test,
        endpoints::update_endpoint,
        event_types::create_event_type,
        event_types::delete_event_type,
        event_types::get_event_type,
        event_types::list_event_types,
        event_types::update_event_type,
        events::get_event,
        events::list_events,
        events::publish,
        events::resend,
        ops::health,
        ops::metrics,
        ops::openapi,
        ops::ready,
        receive::receive,
        sources::create_source,
        sources::delete_source,
        sources::get_source,
        sources::list_source_requests,
        sources::list_sources,
        sources::source_health,
        sources::update_source,
        tenants::create_api_key,
        tenants::create_tenant,
        tenants::delete_tenant,
        tenants::get_tenant,
        tenants::list_tenants,
        tenants::update_tenant,
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

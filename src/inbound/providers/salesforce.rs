//! Salesforce Outbound Messages — <https://developer.salesforce.com/docs/atlas.en-us.api.meta/api/sforce_api_om_outboundmessaging_understanding.htm>.
//!
//! An outbound message is a SOAP `notifications` envelope carrying the sender's
//! `OrganizationId`, the `ActionId` of the outbound-message definition and 1 to 100
//! `Notification`s. Salesforce signs nothing in it: the documented check is that the
//! `OrganizationId` is your org's (compared on its case-sensitive 15-character form, so the
//! 15- and 18-character spellings both match), ideally behind a client-certificate check at
//! the TLS edge. That check identifies the sender but cannot detect a tampered body; when
//! something in front of Salesforce signs requests, the optional `hmac` scheme (an HMAC of the
//! raw body in a header) adds that. No time is signed, so there is no tolerance: Salesforce
//! resends the same notification ids until acknowledged, and deduping on them catches
//! replays.
//! Reply: every accepted message is answered with the `notificationsResponse` `<Ack>true</Ack>`
//! envelope, without which Salesforce keeps retrying.
//! Facts: per notification, id `Notification/Id` and type the `sObject`'s `xsi:type`
//! without its prefix (`Contact`), listed in [`Verified::batch`]; no event time.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde::{Deserialize, Serialize};

use crate::inbound::mac;
use crate::inbound::settings::{HmacScheme, SourceSecret, SourceSettings};
use crate::inbound::verify::{
    EventInfo, InboundRequest, Reply, Verified, Verifier, VerifyContext, VerifyError,
};

/// The acknowledgement Salesforce expects for a delivered outbound message.
pub const ACK_RESPONSE: &str = concat!(
    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
    "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\" ",
    "xmlns:xsd=\"http://www.w3.org/2001/XMLSchema\" ",
    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\">\n",
    " <soapenv:Body>\n",
    "  <notificationsResponse xmlns=\"http://soap.sforce.com/2005/09/outbound\">\n",
    "   <Ack>true</Ack>\n",
    "  </notificationsResponse>\n",
    " </soapenv:Body>\n",
    "</soapenv:Envelope>\n",
);

/// Salesforce ids compare on their case-sensitive 15-character form.
const SHORT_ID_LEN: usize = 15;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SalesforceSettings {
    /// The organizations allowed to send (15- or 18-character ids, `00D...`).
    pub organization_ids: Vec<String>,
    /// An HMAC of the raw body in a header, when something signs the requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hmac: Option<HmacScheme>,
    /// The HMAC keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SourceSecret>,
}

pub struct Salesforce;

impl Verifier for Salesforce {
    fn name(&self) -> &'static str {
        "salesforce"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        _ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Salesforce(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        if settings.organization_ids.is_empty() {
            return Err(VerifyError::Misconfigured(
                "no organization id is configured".into(),
            ));
        }
        if let Some(scheme) = &settings.hmac {
            mac::check_header_hmac(request, scheme, &settings.secrets, &[request.body])?;
        }
        let message = OutboundMessage::parse(request.body)?;
        let organization_id = message
            .organization_id
            .as_deref()
            .ok_or_else(|| VerifyError::malformed("the message has no OrganizationId"))?;
        let allowed = settings.organization_ids.iter().fold(false, |any, id| {
            any | mac::same(short_id(id), short_id(organization_id))
        });
        if !allowed {
            return Err(VerifyError::BadOrganization);
        }

        let batch = message.notifications;
        let shared_type = match batch.split_first() {
            Some((first, rest)) if rest.iter().all(|n| n.event_type == first.event_type) => {
                first.event_type.clone()
            }
            _ => None,
        };
        Ok(Verified {
            event: match batch.as_slice() {
                [only] => only.clone(),
                _ => EventInfo {
                    event_type: shared_type,
                    ..EventInfo::default()
                },
            },
            batch,
            reply: Some(Reply {
                status: 200,
                content_type: "text/xml; charset=utf-8",
                body: ACK_RESPONSE.as_bytes().to_vec(),
            }),
            handshake: None,
        })
    }
}

fn short_id(id: &str) -> &[u8] {
    let id = id.trim().as_bytes();
    &id[..id.len().min(SHORT_ID_LEN)]
}

/// What an outbound message says, read without a schema: elements are matched on their local
/// names, so namespace prefixes do not matter. Entities are never expanded.
#[derive(Debug, Default)]
struct OutboundMessage {
    organization_id: Option<String>,
    notifications: Vec<EventInfo>,
}

impl OutboundMessage {
    fn parse(body: &[u8]) -> Result<Self, VerifyError> {
        let malformed =
            |why: &str| VerifyError::Malformed(format!("not an outbound message: {why}"));
        let text = std::str::from_utf8(body).map_err(|_| malformed("not UTF-8"))?;
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut reader = Reader::from_str(text);
        reader.config_mut().trim_text(true);

        let mut message = OutboundMessage::default();
        let mut seen_notifications = false;
        let mut path: Vec<String> = Vec::new();
        loop {
            match reader.read_event() {
                Ok(Event::Start(element)) => {
                    let name = local_name(&element);
                    message.open(&path, &name, &element);
                    seen_notifications |= name == "notifications";
                    path.push(name);
                }
                Ok(Event::Empty(element)) => {
                    let name = local_name(&element);
                    message.open(&path, &name, &element);
                }
                Ok(Event::End(_)) => {
                    path.pop();
                }
                Ok(Event::Text(text)) => message.text(&path, text.trim()),
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(err) => return Err(malformed(&err.to_string())),
            }
        }
        if !seen_notifications {
            return Err(malformed("no notifications element"));
        }
        Ok(message)
    }

    fn open(&mut self, path: &[String], name: &str, element: &BytesStart<'_>) {
        match (parent(path), name) {
            (Some("notifications"), "Notification") => {
                self.notifications.push(EventInfo::default())
            }
            (Some("Notification"), "sObject") => {
                let sobject_type = element
                    .attributes()
                    .flatten()
                    .find(|attr| attr.key.local_name().as_ref() == "type")
                    .map(|attr| attr.value.into_owned());
                if let (Some(last), Some(sobject_type)) =
                    (self.notifications.last_mut(), sobject_type)
                {
                    let bare = sobject_type.rsplit(':').next().unwrap_or(&sobject_type);
                    last.event_type = Some(bare.to_owned());
                }
            }
            _ => {}
        }
    }

    fn text(&mut self, path: &[String], text: &str) {
        let Some((name, above)) = path.split_last() else {
            return;
        };
        match (parent(above), name.as_str()) {
            (Some("notifications"), "OrganizationId") => {
                self.organization_id = Some(text.to_owned())
            }
            (Some("Notification"), "Id") => {
                if let Some(last) = self.notifications.last_mut() {
                    last.id = Some(text.to_owned());
                }
            }
            _ => {}
        }
    }
}

fn parent(path: &[String]) -> Option<&str> {
    path.last().map(String::as_str)
}

fn local_name(element: &BytesStart<'_>) -> String {
    element.local_name().as_ref().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_and_long_organization_ids_compare_equal() {
        assert_eq!(short_id("00D1I000003qqqEUAQ"), short_id("00D1I000003qqqE"));
        assert_ne!(short_id("00D1I000003qqqe"), short_id("00D1I000003qqqE"));
    }

    #[test]
    fn documents_that_are_not_outbound_messages_are_malformed() {
        for body in [&b"<a><b/></a>"[..], b"not xml <", b"\xff\xfe", b""] {
            let err = OutboundMessage::parse(body).unwrap_err();
            assert_eq!(err.code(), "malformed", "{body:?}");
        }
    }
}

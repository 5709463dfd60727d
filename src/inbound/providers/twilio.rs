//! Twilio webhooks — <https://www.twilio.com/docs/usage/webhooks/webhooks-security>.
//!
//! Signature: `X-Twilio-Signature: <base64 HMAC-SHA1(auth token, full URL + every POST form
//! parameter's name and value, sorted by name)>`, over the URL exactly as Twilio called it
//! (query included). JSON bodies are signed differently: the URL carries
//! `bodySHA256=<hex SHA-256 of the body>`, the signature covers the URL alone, and the body
//! must hash to that value. As Twilio's own libraries do, the URL is also tried with the
//! default port added or removed, since proxies disagree about it. No timestamp is signed,
//! so there is no tolerance.
//! Facts, from the form: id `MessageSid` (or `CallSid`), suffixed with `:{status}` on a status
//! callback so each status of one message is its own event; type `message.{MessageStatus or
//! SmsStatus}` (`message.received` for an inbound SMS) or `call.{CallStatus}`. Twilio sends
//! no event time.

use crate::inbound::extract;
use crate::inbound::mac;
use crate::inbound::settings::{HmacAlgorithm, SourceSettings};
use crate::inbound::verify::{
    EventInfo, InboundRequest, Verified, Verifier, VerifyContext, VerifyError,
};

pub const SIGNATURE_HEADER: &str = "x-twilio-signature";
const BODY_HASH_PARAM: &str = "bodySHA256";

pub struct Twilio;

impl Verifier for Twilio {
    fn name(&self) -> &'static str {
        "twilio"
    }

    fn verify(
        &self,
        request: &InboundRequest<'_>,
        settings: &SourceSettings,
        _ctx: &VerifyContext,
    ) -> Result<Verified, VerifyError> {
        let SourceSettings::Twilio(settings) = settings else {
            return Err(settings.mismatch(self.name()));
        };
        let header = request.required_header(SIGNATURE_HEADER, VerifyError::MissingSignature)?;
        let signature = mac::from_base64(header)
            .ok_or_else(|| VerifyError::malformed("X-Twilio-Signature is not base64"))?;

        let body_hash = query_value(request.url, BODY_HASH_PARAM);
        let mut params = if body_hash.is_none() && request.method.eq_ignore_ascii_case("POST") {
            extract::form(request.body)
        } else {
            Vec::new()
        };
        params.sort();
        let params: Vec<u8> = params
            .iter()
            .flat_map(|(name, value)| [name.as_bytes(), value.as_bytes()])
            .flatten()
            .copied()
            .collect();

        let mut genuine = false;
        for url in url_variants(request.url) {
            match mac::matching_secret(&settings.secrets, std::slice::from_ref(&signature), |key| {
                mac::hmac(HmacAlgorithm::Sha1, key, &[url.as_bytes(), &params])
            }) {
                Ok(_) => genuine = true,
                Err(VerifyError::BadSignature) => {}
                Err(other) => return Err(other),
            }
        }
        if !genuine {
            return Err(VerifyError::BadSignature);
        }
        if let Some(expected) = body_hash {
            let actual = mac::to_hex(&mac::sha256(request.body));
            if !mac::same(actual.as_bytes(), expected.to_ascii_lowercase().as_bytes()) {
                return Err(VerifyError::BadSignature);
            }
            return Ok(Verified::default());
        }
        Ok(Verified::event(facts(&extract::form(request.body))))
    }
}

fn facts(form: &[(String, String)]) -> EventInfo {
    let message_status = extract::form_value(form, "MessageStatus");
    let call_status = extract::form_value(form, "CallStatus");
    let sid = extract::form_value(form, "MessageSid")
        .or_else(|| extract::form_value(form, "SmsSid"))
        .or_else(|| extract::form_value(form, "CallSid"));
    let status = message_status.clone().or_else(|| call_status.clone());
    let id = match (sid, status) {
        (Some(sid), Some(status)) => Some(format!("{sid}:{status}")),
        (sid, None) => sid,
        (None, Some(_)) => None,
    };
    let event_type =
        if let Some(status) = message_status.or_else(|| extract::form_value(form, "SmsStatus")) {
            Some(format!("message.{status}"))
        } else {
            call_status.map(|status| format!("call.{status}"))
        };
    EventInfo {
        id,
        event_type,
        occurred_at: None,
    }
}

/// A query parameter of `url`, decoded.
fn query_value(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let query = query.split('#').next().unwrap_or(query);
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.into_owned())
}

/// `url` as given, then with the scheme's default port removed if it has it, or added if it
/// has none. The text is otherwise never rewritten: Twilio signed the URL it called.
fn url_variants(url: &str) -> Vec<String> {
    let mut variants = vec![url.to_owned()];
    let Some((scheme, rest)) = url.split_once("://") else {
        return variants;
    };
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return variants,
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let port_colon = authority
        .rfind(':')
        .filter(|&i| !authority[i..].contains(']'));
    match port_colon {
        Some(i) if &authority[i + 1..] == default_port => {
            variants.push(format!("{scheme}://{}{tail}", &authority[..i]));
        }
        Some(_) => {}
        None => variants.push(format!("{scheme}://{authority}:{default_port}{tail}")),
    }
    variants
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_port_is_tried_both_ways() {
        assert_eq!(
            url_variants("https://a.example/p?x=1"),
            ["https://a.example/p?x=1", "https://a.example:443/p?x=1"]
        );
        assert_eq!(
            url_variants("https://a.example:443/p"),
            ["https://a.example:443/p", "https://a.example/p"]
        );
        assert_eq!(url_variants("http://[::1]:8080/p"), ["http://[::1]:8080/p"]);
        assert_eq!(
            url_variants("http://[::1]/p"),
            ["http://[::1]/p", "http://[::1]:80/p"]
        );
    }

    #[test]
    fn status_callbacks_get_one_id_per_status() {
        let form = |s: &str| extract::form(s.as_bytes());
        let inbound = facts(&form("MessageSid=SM1&SmsStatus=received"));
        assert_eq!(inbound.id.as_deref(), Some("SM1"));
        assert_eq!(inbound.event_type.as_deref(), Some("message.received"));
        let delivered = facts(&form("MessageSid=SM1&MessageStatus=delivered"));
        assert_eq!(delivered.id.as_deref(), Some("SM1:delivered"));
        assert_eq!(delivered.event_type.as_deref(), Some("message.delivered"));
        let call = facts(&form("CallSid=CA1&CallStatus=completed"));
        assert_eq!(call.id.as_deref(), Some("CA1:completed"));
        assert_eq!(call.event_type.as_deref(), Some("call.completed"));
    }
}

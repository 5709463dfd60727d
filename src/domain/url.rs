//! Endpoint URLs: absolute `http`/`https` URLs with a host and no credentials.
//! Whether the host's *address* may be reached is decided at connect time
//! (`delivery::ssrf`), because a name can resolve differently later.

use super::Invalid;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndpointUrl(url::Url);

impl EndpointUrl {
    pub fn parse(s: &str, https_only: bool) -> Result<Self, Invalid> {
        let bad = |why: &str| Invalid::new("invalid_url", format!("url is invalid: {why}"));
        if s.len() > 2048 {
            return Err(bad("longer than 2048 characters"));
        }
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        match url.scheme() {
            "https" => {}
            "http" if https_only => {
                return Err(Invalid::new(
                    "https_required",
                    "this server only delivers to https:// URLs",
                ));
            }
            "http" => {}
            _ => return Err(bad("the scheme must be http or https")),
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(bad("it has no host"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "credentials in the URL are not allowed: use custom headers instead",
            ));
        }
        if url.fragment().is_some() {
            return Err(bad("a fragment (#...) is never sent: remove it"));
        }
        Ok(EndpointUrl(url))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host as an IP address, when the URL names one directly.
    pub fn ip_literal(&self) -> Option<std::net::IpAddr> {
        match self.0.host()? {
            url::Host::Ipv4(ip) => Some(ip.into()),
            url::Host::Ipv6(ip) => Some(ip.into()),
            url::Host::Domain(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_urls_and_refuses_the_rest() {
        assert!(EndpointUrl::parse("https://example.com/hook?x=1", true).is_ok());
        assert!(EndpointUrl::parse("http://127.0.0.1:9000/", false).is_ok());
        assert_eq!(
            EndpointUrl::parse("http://example.com/", true)
                .unwrap_err()
                .code,
            "https_required"
        );
        for bad in [
            "ftp://example.com",
            "not a url",
            "https://user:pw@example.com/",
            "https://example.com/#frag",
        ] {
            assert_eq!(
                EndpointUrl::parse(bad, false).unwrap_err().code,
                "invalid_url",
                "{bad}"
            );
        }
    }

    #[test]
    fn exposes_ip_literals() {
        let u = EndpointUrl::parse("http://[::1]:8080/", false).unwrap();
        assert_eq!(u.ip_literal(), Some("::1".parse().unwrap()));
        assert_eq!(
            EndpointUrl::parse("http://example.com/", false)
                .unwrap()
                .ip_literal(),
            None
        );
    }
}

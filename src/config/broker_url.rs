//! `mqtt.url`: `mqtt://host[:port]` or `mqtts://host[:port]` (TLS), parsed once into the parts a
//! client needs. Shared by the MQTT source and the simulator so both read an address alike.

use std::fmt;
use std::net::SocketAddr;

use serde::Deserialize;

use super::without_credentials;

/// A broker address. In `[mqtt]` it is parsed when the configuration is loaded, so a
/// [`super::MqttSettings`] always holds a usable one.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    /// Parses the URL; the error is a reason to show after the URL. The port defaults to 1883
    /// (8883 for TLS); an IPv6 host is written in brackets. Credentials do not belong in the URL
    /// (they would reach logs): use `mqtt.username` and `mqtt.password_file`.
    pub fn parse(url: &str) -> Result<BrokerUrl, String> {
        let (tls, rest) = if let Some(r) = url.strip_prefix("mqtts://") {
            (true, r)
        } else if let Some(r) = url.strip_prefix("mqtt://") {
            (false, r)
        } else {
            return Err("expected mqtt://host:port or mqtts://host:port".into());
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') {
            return Err("expected mqtt://host:port, without path or credentials".into());
        }
        let (host, port) = match rest.rsplit_once(':') {
            // A bare IPv6 address without brackets has colons but no port.
            Some((h, _)) if !h.ends_with(']') && h.contains(':') => (rest, None),
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let port = match port {
            Some(p) => p
                .parse::<u16>()
                .map_err(|_| "port must be a number 1–65535".to_string())?,
            None if tls => 8883,
            None => 1883,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err("host and port are required".into());
        }
        Ok(BrokerUrl {
            tls,
            host: host.to_owned(),
            port,
        })
    }
}

/// The configuration's error: the URL (credentials masked, they must not reach logs) and why.
impl TryFrom<String> for BrokerUrl {
    type Error = String;

    fn try_from(url: String) -> Result<BrokerUrl, String> {
        BrokerUrl::parse(&url)
            .map_err(|reason| format!("{:?}: {reason}", without_credentials(&url)))
    }
}

/// A plain broker on a local address (the demo's embedded broker).
impl From<SocketAddr> for BrokerUrl {
    fn from(addr: SocketAddr) -> BrokerUrl {
        BrokerUrl {
            tls: false,
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

/// `mqtt://host:port` or `mqtts://host:port`, an IPv6 host in brackets: parses back to itself.
impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (bool, String, u16) {
        let u = BrokerUrl::parse(url).unwrap();
        (u.tls, u.host, u.port)
    }

    #[test]
    fn urls_parse_with_default_ports() {
        assert_eq!(
            parts("mqtt://127.0.0.1:1884"),
            (false, "127.0.0.1".into(), 1884)
        );
        assert_eq!(
            parts("mqtts://broker.example"),
            (true, "broker.example".into(), 8883)
        );
        assert_eq!(parts("mqtt://host").2, 1883);
        assert_eq!(
            parts("mqtt://broker.local"),
            (false, "broker.local".into(), 1883)
        );
        assert_eq!(parts("mqtt://[::1]:1883/"), (false, "::1".into(), 1883));
        assert!(BrokerUrl::parse("tcp://host:1883").is_err());
        assert!(BrokerUrl::parse("mqtt://:1883").is_err());
        assert!(BrokerUrl::parse("mqtt://host:port").is_err());
        assert!(BrokerUrl::parse("mqtt://u:p@h:1883").is_err());
    }

    #[test]
    fn display_parses_back() {
        for url in [
            "mqtt://127.0.0.1:1884",
            "mqtts://broker.example:8883",
            "mqtt://[::1]:1883",
        ] {
            let u = BrokerUrl::parse(url).unwrap();
            assert_eq!(u.to_string(), url);
            assert_eq!(BrokerUrl::parse(&u.to_string()).unwrap(), u);
        }
        let local: SocketAddr = "[::1]:1999".parse().unwrap();
        assert_eq!(BrokerUrl::from(local).to_string(), "mqtt://[::1]:1999");
    }

    #[test]
    fn the_error_masks_credentials() {
        let e = BrokerUrl::try_from("mqtt://u:SECRET@host:1883".to_string()).unwrap_err();
        assert!(!e.contains("SECRET") && e.contains("host:1883"), "{e}");
    }
}

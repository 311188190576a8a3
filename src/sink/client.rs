//! The HTTP side: one write request to InfluxDB, v1 or v2, answered as a plain [`Reply`].
//!
//! reqwest is used directly rather than the `influxdb2` crate: `influxdb2` 0.5 reduces a failed
//! write to status and text (the `Retry-After` header is lost, so 429/503 cannot be honoured),
//! does no batching or retry of its own, pins reqwest 0.11 (a second HTTP stack in the build),
//! and speaks only the v2 API while InfluxDB 1.x sites need `/write`.
//!
//! The two API versions differ only in the URL and the credentials ([`Api`]); everything else
//! (timeout, body, reading the answer) is shared. Secrets stay [`SecretString`]s until the
//! request is built, and errors are logged without their URL.

use std::future::Future;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::Url;
use secrecy::{ExposeSecret, SecretString};

use super::classify::ErrorKind;
use crate::config::{InfluxApi, InfluxSettings};

/// What the driver needs from InfluxDB: send one body of line protocol, get the answer.
/// [`Client`] is the real one; tests use a fake.
pub trait WriteApi: Send + Sync + 'static {
    /// Writes `body` (lines joined by `\n`, millisecond timestamps).
    fn write(&self, body: String) -> impl Future<Output = Result<Reply, WriteError>> + Send;
}

/// An HTTP answer, reduced to what classification reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: String,
}

/// A write that got no HTTP answer.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The server could not be reached (refused, DNS, TLS).
    #[error("cannot connect to InfluxDB: {0}")]
    Connect(String),
    /// No answer within `influx.timeout_ms`.
    #[error("InfluxDB did not answer in time: {0}")]
    Timeout(String),
    /// The connection broke while sending or reading.
    #[error("InfluxDB request failed: {0}")]
    Other(String),
}

impl WriteError {
    /// The `kind` label this failure counts under.
    pub fn kind(&self) -> ErrorKind {
        match self {
            WriteError::Connect(_) => ErrorKind::Connect,
            WriteError::Timeout(_) => ErrorKind::Timeout,
            WriteError::Other(_) => ErrorKind::Server,
        }
    }
}

/// Settings that make no client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("influx.{key}: {reason}")]
    Invalid { key: &'static str, reason: String },
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// The API version: where to write and how to prove who we are.
enum Api {
    /// `POST /api/v2/write?org=&bucket=&precision=ms`, `Authorization: Token …`.
    V2 { token: Option<SecretString> },
    /// `POST /write?db=&rp=&precision=ms`, optional basic auth.
    V1 {
        username: String,
        password: Option<SecretString>,
    },
}

impl Api {
    fn authorize(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match self {
            Api::V2 { token: Some(token) } => {
                req.header(AUTHORIZATION, format!("Token {}", token.expose_secret()))
            }
            Api::V2 { token: None } => req,
            Api::V1 { username, password } if !username.is_empty() => req.basic_auth(
                username,
                password.as_ref().map(|p| p.expose_secret().to_owned()),
            ),
            Api::V1 { .. } => req,
        }
    }
}

/// The real InfluxDB writer.
pub struct Client {
    http: reqwest::Client,
    url: Url,
    api: Api,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The path and query (org, bucket, db) are not secret; credentials are not shown.
        f.debug_struct("Client")
            .field("url", &self.url.as_str())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds the client from `[influx]`; `None` when `url` is empty (no InfluxDB: readings
    /// stay in the journal).
    pub fn from_settings(s: &InfluxSettings) -> Result<Option<Client>, Error> {
        if s.url.trim().is_empty() {
            return Ok(None);
        }
        let invalid = |key, reason: String| Error::Invalid { key, reason };
        let mut url =
            Url::parse(s.url.trim()).map_err(|e| invalid("url", format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("url", "must start with http:// or https://".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "url",
                "put credentials in influx.token or influx.username/password, not in the URL"
                    .into(),
            ));
        }
        let base = url.path().trim_end_matches('/').to_owned();
        let api = match s.api {
            InfluxApi::V2 => {
                if s.bucket.is_empty() {
                    return Err(invalid("bucket", "the v2 API needs a bucket".into()));
                }
                url.set_path(&format!("{base}/api/v2/write"));
                url.query_pairs_mut()
                    .clear()
                    .append_pair("org", &s.org)
                    .append_pair("bucket", &s.bucket)
                    .append_pair("precision", "ms");
                Api::V2 {
                    token: s.token.clone(),
                }
            }
            InfluxApi::V1 => {
                if s.database.is_empty() {
                    return Err(invalid("database", "the v1 API needs a database".into()));
                }
                url.set_path(&format!("{base}/write"));
                {
                    let mut q = url.query_pairs_mut();
                    q.clear().append_pair("db", &s.database);
                    if !s.retention_policy.is_empty() {
                        q.append_pair("rp", &s.retention_policy);
                    }
                    q.append_pair("precision", "ms");
                }
                Api::V1 {
                    username: s.username.clone(),
                    password: s.password.clone(),
                }
            }
        };
        // One client for the life of the writer: its pool keeps a connection per request on
        // the wire alive between batches (no handshake per write). Nagle off, so the last
        // segment of a body is not held back waiting for InfluxDB's delayed ACK.
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .timeout(Duration::from_millis(s.timeout_ms.max(1)))
            .connect_timeout(Duration::from_millis(s.timeout_ms.clamp(1, 10_000)))
            .build()
            .map_err(|e| Error::Http(error_text(&e)))?;
        Ok(Some(Client { http, url, api }))
    }

    /// The write URL (no credentials in it), for the start-up log line.
    pub fn url(&self) -> &str {
        self.url.as_str()
    }
}

impl WriteApi for Client {
    async fn write(&self, body: String) -> Result<Reply, WriteError> {
        let req = self
            .http
            .post(self.url.clone())
            .header(CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(body);
        let resp = self.api.authorize(req).send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // An answer whose body breaks off is still an answer: its status decides.
        let body = resp.text().await.unwrap_or_default();
        Ok(Reply {
            status,
            retry_after,
            body,
        })
    }
}

fn transport(e: reqwest::Error) -> WriteError {
    // The URL carries org/bucket or db; never credentials, but it is noise in every log line.
    let e = e.without_url();
    let text = error_text(&e);
    if e.is_timeout() {
        WriteError::Timeout(text)
    } else if e.is_connect() {
        WriteError::Connect(text)
    } else {
        WriteError::Other(text)
    }
}

/// The error and its causes on one line, without the request URL.
fn error_text(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(api: InfluxApi) -> InfluxSettings {
        InfluxSettings {
            url: "http://influx.local:8086/".into(),
            api,
            token: Some(SecretString::from("t0ken")),
            ..InfluxSettings::default()
        }
    }

    #[test]
    fn empty_url_means_no_client() {
        let s = InfluxSettings {
            url: "  ".into(),
            ..InfluxSettings::default()
        };
        assert!(Client::from_settings(&s).unwrap().is_none());
    }

    // contract.md [influx]: v2 writes to /api/v2/write with org and bucket, ms precision.
    #[test]
    fn v2_url_has_org_bucket_and_ms_precision() {
        let mut s = settings(InfluxApi::V2);
        s.org = "my org&co".into();
        let c = Client::from_settings(&s).unwrap().unwrap();
        assert_eq!(
            c.url(),
            "http://influx.local:8086/api/v2/write?org=my+org%26co&bucket=quantrac&precision=ms"
        );
        assert!(!format!("{c:?}").contains("t0ken"));
    }

    // contract.md [influx]: v1 writes to /write?db=&rp= (rp only when set).
    #[test]
    fn v1_url_has_db_optional_rp_and_ms_precision() {
        let mut s = settings(InfluxApi::V1);
        s.url = "https://h/influx".into();
        let c = Client::from_settings(&s).unwrap().unwrap();
        assert_eq!(c.url(), "https://h/influx/write?db=quantrac&precision=ms");
        s.retention_policy = "one_year".into();
        let c = Client::from_settings(&s).unwrap().unwrap();
        assert_eq!(
            c.url(),
            "https://h/influx/write?db=quantrac&rp=one_year&precision=ms"
        );
    }

    #[test]
    fn bad_settings_name_the_key() {
        let mut s = settings(InfluxApi::V1);
        s.database.clear();
        assert!(Client::from_settings(&s)
            .unwrap_err()
            .to_string()
            .starts_with("influx.database:"));
        let mut s = settings(InfluxApi::V2);
        s.url = "http://user:pw@h:8086".into();
        let e = Client::from_settings(&s).unwrap_err().to_string();
        assert!(e.starts_with("influx.url:") && !e.contains("pw"), "{e}");
        s.url = "ftp://h".into();
        assert!(Client::from_settings(&s).is_err());
    }

    #[test]
    fn credentials_go_in_headers_only_when_built() {
        let http = reqwest::Client::new();
        let v2 = Api::V2 {
            token: Some(SecretString::from("t0ken")),
        };
        let req = v2.authorize(http.post("http://h/")).build().unwrap();
        assert_eq!(req.headers()[AUTHORIZATION], "Token t0ken");
        assert!(!req.url().as_str().contains("t0ken"));

        let v1 = Api::V1 {
            username: "writer".into(),
            password: Some(SecretString::from("pw")),
        };
        let req = v1.authorize(http.post("http://h/")).build().unwrap();
        // base64("writer:pw")
        assert_eq!(req.headers()[AUTHORIZATION], "Basic d3JpdGVyOnB3");

        let anonymous = Api::V1 {
            username: String::new(),
            password: None,
        };
        let req = anonymous.authorize(http.post("http://h/")).build().unwrap();
        assert!(req.headers().get(AUTHORIZATION).is_none());
    }

    #[test]
    fn transport_errors_map_to_metric_kinds() {
        assert_eq!(WriteError::Connect("x".into()).kind(), ErrorKind::Connect);
        assert_eq!(WriteError::Timeout("x".into()).kind(), ErrorKind::Timeout);
        assert_eq!(WriteError::Other("x".into()).kind(), ErrorKind::Server);
    }

    #[tokio::test]
    async fn an_unreachable_server_is_a_connect_error() {
        // A port that was just free: nothing listens, the connection is refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let s = InfluxSettings {
            url: format!("http://127.0.0.1:{port}"),
            timeout_ms: 2000,
            ..InfluxSettings::default()
        };
        let c = Client::from_settings(&s).unwrap().unwrap();
        let e = c.write("m f=1 1".into()).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Connect, "{e}");
        assert!(
            !e.to_string().contains("bucket="),
            "no URL in the error: {e}"
        );
    }
}

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
use crate::tls::Handshake;

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
    /// The TLS handshake failed: a certificate was refused (by us or by InfluxDB).
    #[error("InfluxDB {0}")]
    Tls(Handshake),
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
            WriteError::Tls(_) => ErrorKind::Tls,
            WriteError::Other(_) => ErrorKind::Server,
        }
    }
}

/// A client that cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
    #[error("InfluxDB {0}")]
    Tls(#[from] crate::tls::Error),
}

/// The API version: where to write and how to prove who we are.
enum Api {
    /// `POST /api/v2/write?org=&bucket=&precision=ms`, `Authorization: Token …`.
    V2 { token: Option<SecretString> },
    /// `POST /write?db=&rp=&precision=ms`, optional basic auth.
    V1 {
        username: Option<String>,
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
            Api::V1 {
                username: Some(username),
                password,
            } => req.basic_auth(
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
    /// Builds the client from `[influx]`; `None` when there is no `url` (no InfluxDB:
    /// readings stay in the journal). The settings were checked when they were loaded.
    pub fn from_settings(s: &InfluxSettings) -> Result<Option<Client>, Error> {
        let Some(base) = &s.url else {
            return Ok(None);
        };
        let mut url = base.as_url().clone();
        let base = url.path().trim_end_matches('/').to_owned();
        let api = match &s.api {
            InfluxApi::V2(v2) => {
                url.set_path(&format!("{base}/api/v2/write"));
                url.query_pairs_mut()
                    .clear()
                    .append_pair("org", &v2.org)
                    .append_pair("bucket", &v2.bucket)
                    .append_pair("precision", "ms");
                Api::V2 {
                    token: v2.token.clone(),
                }
            }
            InfluxApi::V1(v1) => {
                url.set_path(&format!("{base}/write"));
                {
                    let mut q = url.query_pairs_mut();
                    q.clear().append_pair("db", &v1.database);
                    if let Some(rp) = &v1.retention_policy {
                        q.append_pair("rp", rp);
                    }
                    q.append_pair("precision", "ms");
                }
                Api::V1 {
                    username: v1.username.clone(),
                    password: v1.password.clone(),
                }
            }
        };
        // One client for the life of the writer: its pool keeps a connection per request on
        // the wire alive between batches (no handshake per write). Nagle off, so the last
        // segment of a body is not held back waiting for InfluxDB's delayed ACK.
        let mut builder = reqwest::Client::builder();
        if url.scheme() == "https" {
            // TLS as every client of quantrac has it (`crate::tls`): the private CA or the
            // system's roots, the client certificate, TLS 1.3/1.2.
            builder = builder.use_preconfigured_tls(s.tls.client_config()?);
        }
        let http = builder
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
    if let Some(h) = Handshake::find(&e) {
        return WriteError::Tls(h);
    }
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
    use crate::config::{InfluxV1, InfluxV2};

    fn settings(api: InfluxApi) -> InfluxSettings {
        InfluxSettings {
            url: Some("http://influx.local:8086/".parse().unwrap()),
            api,
            ..InfluxSettings::default()
        }
    }

    fn v2() -> InfluxV2 {
        InfluxV2 {
            token: Some(SecretString::from("t0ken")),
            ..InfluxV2::default()
        }
    }

    #[test]
    fn no_url_means_no_client() {
        let s = InfluxSettings {
            url: None,
            ..InfluxSettings::default()
        };
        assert!(Client::from_settings(&s).unwrap().is_none());
    }

    // contract.md [influx]: v2 writes to /api/v2/write with org and bucket, ms precision.
    #[test]
    fn v2_url_has_org_bucket_and_ms_precision() {
        let s = settings(InfluxApi::V2(InfluxV2 {
            org: "my org&co".into(),
            ..v2()
        }));
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
        let mut s = settings(InfluxApi::V1(InfluxV1::default()));
        s.url = Some("https://h/influx".parse().unwrap());
        let c = Client::from_settings(&s).unwrap().unwrap();
        assert_eq!(c.url(), "https://h/influx/write?db=quantrac&precision=ms");
        s.api = InfluxApi::V1(InfluxV1 {
            retention_policy: Some("one_year".into()),
            ..InfluxV1::default()
        });
        let c = Client::from_settings(&s).unwrap().unwrap();
        assert_eq!(
            c.url(),
            "https://h/influx/write?db=quantrac&rp=one_year&precision=ms"
        );
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
            username: Some("writer".into()),
            password: Some(SecretString::from("pw")),
        };
        let req = v1.authorize(http.post("http://h/")).build().unwrap();
        // base64("writer:pw")
        assert_eq!(req.headers()[AUTHORIZATION], "Basic d3JpdGVyOnB3");

        let anonymous = Api::V1 {
            username: None,
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
        let h = Handshake {
            failure: crate::tls::Failure::UnknownCa,
            detail: "x".into(),
        };
        assert_eq!(WriteError::Tls(h).kind(), ErrorKind::Tls);
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
            url: Some(format!("http://127.0.0.1:{port}").parse().unwrap()),
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
        // The causes on one line, down to the operating system's reason.
        assert!(
            e.to_string().to_lowercase().contains("connection refused"),
            "{e}"
        );
    }
}

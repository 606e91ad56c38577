//! The client of the JobManager's HTTP API (`docs/http-api.md`): what
//! `eddy run -m`, `eddy list`, `eddy cancel`, `eddy upload` and
//! `eddy taskmanagers` use. Blocking, over `ureq`.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

/// Why a request to the JobManager failed. Messages are one lowercase line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The address is not `HOST:PORT` (or `http://HOST:PORT`).
    #[error("bad JobManager address {0:?} (expected HOST:PORT)")]
    BadAddress(String),
    /// No connection could be made.
    #[error("cannot reach the JobManager at {addr}: {reason}")]
    Unreachable {
        /// `HOST:PORT`.
        addr: String,
        /// Why, e.g. `connection refused`.
        reason: String,
    },
    /// The connection broke or the JobManager did not answer in time.
    #[error("lost the connection to the JobManager at {addr}: {reason}")]
    Connection {
        /// `HOST:PORT`.
        addr: String,
        /// Why, e.g. `connection reset`.
        reason: String,
    },
    /// `401`: the JobManager wants an API key and did not get a valid one.
    #[error("the JobManager refused the API key: {0} (give one with --token-file, --token or EDDY_TOKEN)")]
    Unauthorized(String),
    /// A 4xx answer, with the JobManager's `errors[0]`.
    #[error("the JobManager refused the request: {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The JobManager's reason.
        message: String,
    },
    /// A 5xx answer, with the JobManager's `errors[0]`.
    #[error("the JobManager failed: {message}")]
    Server {
        /// The HTTP status.
        status: u16,
        /// The JobManager's reason.
        message: String,
    },
    /// The CA certificate to trust could not be read.
    #[error("bad CA certificate: {0}")]
    BadCa(String),
    /// The answer was not what the API promises.
    #[error("unexpected answer from the JobManager: {0}")]
    BadResponse(String),
}

impl ClientError {
    /// The HTTP status of a refused or failed request, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Unauthorized(_) => Some(401),
            ClientError::Refused { status, .. } | ClientError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A component known to the JobManager (`GET /jars/{id}`).
#[derive(Debug, Clone, Deserialize)]
pub struct Jar {
    /// The sha256 of its bytes.
    pub id: String,
    /// The file name it was uploaded as.
    #[serde(default)]
    pub name: String,
    /// Its size in bytes.
    #[serde(default)]
    pub size: u64,
    /// The entries (jobs) it offers.
    #[serde(default)]
    pub entries: Vec<String>,
}

/// What [`Client::upload`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upload {
    /// The component's id on the cluster: the sha256 of its bytes.
    pub digest: String,
    /// False when the cluster already had it.
    pub uploaded: bool,
}

/// One line of `GET /jobs`.
#[derive(Debug, Clone, Deserialize)]
pub struct JobSummary {
    /// The job id.
    pub id: String,
    /// The job's name.
    #[serde(default)]
    pub name: String,
    /// `CREATED`, `RUNNING`, `FINISHED`, `FAILED` or `CANCELED`.
    pub status: String,
}

/// What a job's sources read of their inputs, as `GET /jobs/{id}` says.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct InputRead {
    /// Bytes read.
    pub bytes_read: u64,
    /// Of this many, if every source knows its input's size.
    pub bytes: Option<u64>,
}

/// A job as `GET /jobs/{id}` describes it.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Job {
    /// The job id.
    pub jid: String,
    /// The job's name.
    #[serde(default)]
    pub name: String,
    /// The entry it was planned from (none for a job file mixing components).
    #[serde(default)]
    pub entry: Option<String>,
    /// `CREATED`, `RUNNING`, `FINISHED`, `FAILED` or `CANCELED`.
    pub status: String,
    /// The default parallelism it was submitted with.
    #[serde(default)]
    pub parallelism: Option<u64>,
    /// When it started, in ms since the epoch.
    #[serde(default)]
    pub start_time: Option<i64>,
    /// When it ended, in ms since the epoch (absent, null or negative while running).
    #[serde(default)]
    pub end_time: Option<i64>,
    /// How long it ran (or has run), in ms.
    #[serde(default)]
    pub duration: Option<i64>,
    /// Why it failed: one line.
    #[serde(default)]
    pub failure: Option<String>,
    /// Records read by its sources.
    #[serde(default)]
    pub records_in: Option<u64>,
    /// Records written by its sinks.
    #[serde(default)]
    pub records_out: Option<u64>,
    /// Whether all its sources are bounded, if the JobManager says.
    #[serde(default)]
    pub bounded: Option<bool>,
    /// How much of their inputs its sources read (this attempt).
    #[serde(default)]
    pub input: Option<InputRead>,
    /// The job's vertices, as the JobManager describes them.
    #[serde(default)]
    pub vertices: Vec<Value>,
    /// The job's tasks and where their subtasks run.
    #[serde(default)]
    pub tasks: Vec<Value>,
    /// Restarts so far (0 before the first).
    #[serde(default)]
    pub attempt: u64,
    /// Recent failures: `{"timestamp", "exception"}`, newest last.
    #[serde(default)]
    pub exceptions: Vec<Value>,
}

/// One TaskManager of `GET /taskmanagers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskManager {
    /// Its id.
    pub id: String,
    /// Address of its data endpoint.
    #[serde(default)]
    pub data_address: String,
    /// How many slots it offers.
    #[serde(default)]
    pub slots_number: u64,
    /// How many of them are free.
    #[serde(default)]
    pub free_slots: u64,
    /// How long ago its last heartbeat arrived, in ms.
    #[serde(default)]
    pub last_heartbeat_ms_ago: Option<u64>,
    /// How many subtasks it runs.
    #[serde(default)]
    pub running_tasks: Option<u64>,
}

#[derive(Deserialize)]
struct JobsAnswer {
    jobs: Vec<JobSummary>,
}

#[derive(Deserialize)]
struct TaskManagersAnswer {
    taskmanagers: Vec<TaskManager>,
}

#[derive(Deserialize)]
struct UploadAnswer {
    id: String,
}

#[derive(Deserialize)]
struct RunAnswer {
    jobid: String,
}

/// A blocking client of one JobManager's HTTP API.
pub struct Client {
    base: String,
    addr: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("base", &self.base).field("token", &self.token.as_ref().map(|_| "..")).finish()
    }
}

/// The `http://HOST:PORT` base URL of `HOST:PORT` (an `http://` prefix and a
/// trailing `/` are accepted).
pub fn base_url(addr: &str) -> Result<String, ClientError> {
    let a = addr.trim();
    let (scheme, rest) = if let Some(r) = a.strip_prefix("http://") {
        ("http", r)
    } else if let Some(r) = a.strip_prefix("https://") {
        ("https", r)
    } else if a.contains("://") {
        return Err(ClientError::BadAddress(addr.to_string()));
    } else {
        ("http", a)
    };
    let rest = rest.trim_end_matches('/');
    let valid = !rest.is_empty()
        && !rest.contains('/')
        && !rest.contains(char::is_whitespace)
        && rest.rsplit_once(':').is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid {
        return Err(ClientError::BadAddress(addr.to_string()));
    }
    Ok(format!("{scheme}://{rest}"))
}

/// Percent-encodes `s` for a path segment or a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The one-line reason of an error answer: `errors[0]` of its JSON body, or
/// else a short description of the status.
pub fn error_message(status: u16, body: &str) -> String {
    let from_json = serde_json::from_str::<Value>(body).ok().and_then(|v| {
        let e = v.get("errors")?;
        let first = e.as_array().and_then(|a| a.first()).unwrap_or(e);
        Some(first.as_str().map_or_else(|| first.to_string(), str::to_string))
    });
    if let Some(m) = from_json.filter(|m| !m.trim().is_empty()) {
        return one_line(&m);
    }
    let first = body.lines().map(str::trim).find(|l| !l.is_empty());
    match (status, first) {
        (413, _) => "the component is larger than the JobManager accepts".into(),
        (404, None) => "not found".into(),
        (_, Some(l)) if l.len() <= 200 => format!("{l} (HTTP {status})"),
        _ => format!("HTTP {status}"),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::ConnectionRefused => "connection refused".into(),
        K::ConnectionReset => "connection reset".into(),
        K::ConnectionAborted => "connection aborted".into(),
        K::BrokenPipe => "the JobManager closed the connection".into(),
        K::UnexpectedEof => "the JobManager closed the connection".into(),
        K::TimedOut | K::WouldBlock => "timed out".into(),
        K::AddrNotAvailable => "address not available".into(),
        _ => {
            // "Network is unreachable (os error 101)" -> "network is unreachable"
            let s = e.to_string();
            let s = s.split(" (os error").next().unwrap_or(&s).to_string();
            let mut c = s.chars();
            c.next().map_or(s.clone(), |f| f.to_lowercase().chain(c).collect())
        }
    }
}

/// Maps a transport error of `ureq` to a [`ClientError`].
fn transport_error(addr: &str, e: ureq::Error) -> ClientError {
    use ureq::Timeout as T;
    let unreachable = |reason: String| ClientError::Unreachable { addr: addr.to_string(), reason };
    let lost = |reason: String| ClientError::Connection { addr: addr.to_string(), reason };
    match e {
        ureq::Error::Io(io) => {
            use std::io::ErrorKind as K;
            match io.kind() {
                K::ConnectionRefused | K::AddrNotAvailable | K::NotFound | K::PermissionDenied => {
                    unreachable(io_reason(&io))
                }
                K::TimedOut | K::WouldBlock => lost("no answer in time".into()),
                _ if io.raw_os_error().is_some_and(|c| c == 101 || c == 113) => unreachable(io_reason(&io)),
                _ => lost(io_reason(&io)),
            }
        }
        ureq::Error::HostNotFound => unreachable("host not found".into()),
        ureq::Error::ConnectionFailed => unreachable("connection failed".into()),
        ureq::Error::Timeout(T::Connect | T::Resolve) => unreachable("timed out".into()),
        ureq::Error::Timeout(_) => lost("no answer in time".into()),
        ureq::Error::BadUri(u) => ClientError::BadAddress(u),
        ureq::Error::Protocol(p) => ClientError::BadResponse(format!("not HTTP/1.1 ({p})")),
        ureq::Error::StatusCode(s) => ClientError::BadResponse(format!("HTTP {s}")),
        ureq::Error::BodyExceedsLimit(_) => ClientError::BadResponse("answer too large".into()),
        other => lost(one_line(&other.to_string())),
    }
}

/// How long a connection may take to set up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the JobManager may take to answer (uploads are validated before
/// the answer, so this is generous).
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);
/// Largest answer read.
const MAX_ANSWER: u64 = 64 << 20;

impl Client {
    /// A client of the JobManager at `HOST:PORT` (or `https://HOST:PORT`), sending
    /// `token` (if any) as `Authorization: Bearer`.
    pub fn new(addr: &str, token: Option<String>) -> Result<Client, ClientError> {
        Self::with_ca(addr, token, None)
    }

    /// The same, trusting over `https://` the CA certificates of the PEM `ca`
    /// (the cluster's `ca.pem`) instead of the webpki roots.
    pub fn with_ca(addr: &str, token: Option<String>, ca: Option<&[u8]>) -> Result<Client, ClientError> {
        use ureq::tls::{Certificate, RootCerts, TlsConfig, TlsProvider};
        let base = base_url(addr)?;
        let roots = match ca {
            Some(pem) => {
                let certs = ureq::tls::parse_pem(pem)
                    .filter_map(|item| match item {
                        Ok(ureq::tls::PemItem::Certificate(c)) => Some(Ok(c)),
                        Ok(_) => None,
                        Err(e) => Some(Err(e)),
                    })
                    .collect::<Result<Vec<Certificate<'static>>, _>>()
                    .map_err(|e| ClientError::BadCa(e.to_string()))?;
                RootCerts::new_with_certs(&certs)
            }
            None => RootCerts::WebPki,
        };
        let tls = TlsConfig::builder().provider(TlsProvider::Rustls).root_certs(roots).build();
        let config = ureq::Agent::config_builder()
            .tls_config(tls)
            .http_status_as_error(false)
            .proxy(None)
            .max_redirects(0)
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_recv_response(Some(ANSWER_TIMEOUT))
            .user_agent(concat!("eddy/", env!("CARGO_PKG_VERSION")))
            .build();
        Ok(Client {
            addr: base.trim_start_matches("http://").trim_start_matches("https://").to_string(),
            base,
            token: token.filter(|t| !t.is_empty()),
            agent: ureq::Agent::new_with_config(config),
        })
    }

    /// `http://HOST:PORT`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends one request; answers `(status, body)` for any status but 401.
    fn request(&self, method: &str, path: &str, body: Body<'_>) -> Result<(u16, String), ClientError> {
        let url = self.url(path);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        macro_rules! with_auth {
            ($r:expr) => {{
                let r = $r;
                match &auth {
                    Some(a) => r.header("Authorization", a.as_str()),
                    None => r,
                }
            }};
        }
        let result = match (method, body) {
            ("GET", _) => with_auth!(self.agent.get(&url)).call(),
            ("DELETE", _) => with_auth!(self.agent.delete(&url)).call(),
            ("PATCH", Body::Json(v)) => with_auth!(self.agent.patch(&url)).send_json(v),
            (_, Body::Json(v)) => with_auth!(self.agent.post(&url)).send_json(v),
            (_, Body::Wasm(bytes)) => with_auth!(self.agent.post(&url))
                .header("Content-Type", "application/wasm")
                .header("Expect", "100-continue")
                .send(bytes),
            (_, Body::None) => with_auth!(self.agent.post(&url)).send_empty(),
        };
        let mut response = result.map_err(|e| transport_error(&self.addr, e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(MAX_ANSWER)
            .read_to_string()
            .map_err(|e| transport_error(&self.addr, e))?;
        if status == 401 {
            return Err(ClientError::Unauthorized(error_message(status, &text)));
        }
        Ok((status, text))
    }

    /// Sends one request and parses a 2xx answer as `T`; other statuses are errors.
    fn call<T: serde::de::DeserializeOwned>(&self, method: &str, path: &str, body: Body<'_>) -> Result<T, ClientError> {
        let (status, text) = self.request(method, path, body)?;
        check(status, &text)?;
        parse(&text)
    }

    /// Uploads a component unless the cluster has it already (`GET /jars/{digest}`
    /// first, `POST /jars/upload?name=NAME` on 404).
    pub fn upload(&self, name: &str, bytes: &[u8]) -> Result<Upload, ClientError> {
        let digest = crate::runtime::digest(bytes);
        let (status, text) = self.request("GET", &format!("/jars/{digest}"), Body::None)?;
        if status != 404 {
            check(status, &text)?;
            return Ok(Upload { digest, uploaded: false });
        }
        let answer: UploadAnswer = self.call("POST", &upload_path(name), Body::Wasm(bytes))?;
        if answer.id != digest {
            return Err(ClientError::BadResponse(format!(
                "the component was stored as {}, but its sha256 is {digest}",
                answer.id
            )));
        }
        Ok(Upload { digest, uploaded: true })
    }

    /// `GET /jars/{id}`: the component, or `None` if the cluster does not have it.
    pub fn jar(&self, id: &str) -> Result<Option<Jar>, ClientError> {
        let (status, text) = self.request("GET", &format!("/jars/{}", encode(id)), Body::None)?;
        if status == 404 {
            return Ok(None);
        }
        check(status, &text)?;
        parse(&text).map(Some)
    }

    /// Submits a job: `POST /jars/{digest}/run`. Answers the job id.
    pub fn run(&self, digest: &str, entry: &str, args: &[String], settings: RunSettings) -> Result<String, ClientError> {
        let request = crate::api::RunRequest { entry: entry.into(), args: args.to_vec(), settings: settings.into() };
        let body = serde_json::to_value(request).expect("a run request serializes");
        let answer: RunAnswer = self.call("POST", &format!("/jars/{}/run", encode(digest)), Body::Json(&body))?;
        Ok(answer.jobid)
    }

    /// Submits a job file whose components are digests of uploaded components: `POST /jobs`.
    pub fn run_job_file(&self, file: &crate::jobfile::JobFile, settings: RunSettings) -> Result<String, ClientError> {
        let request = crate::api::JobFileRequest { job: file.clone(), settings: settings.into() };
        let body = serde_json::to_value(request).expect("a job file serializes");
        let answer: RunAnswer = self.call("POST", "/jobs", Body::Json(&body))?;
        Ok(answer.jobid)
    }

    /// `GET /jobs/{id}`.
    pub fn job(&self, id: &str) -> Result<Job, ClientError> {
        self.call("GET", &format!("/jobs/{}", encode(id)), Body::None)
    }

    /// `GET /jobs/{id}/logs?after=SEQ`: the kept lines after `after` (all with `None`).
    pub fn logs(&self, id: &str, after: Option<u64>) -> Result<crate::api::JobLogs, ClientError> {
        let query = after.map(|s| format!("?after={s}")).unwrap_or_default();
        self.call("GET", &format!("/jobs/{}/logs{query}", encode(id)), Body::None)
    }

    /// `GET /jobs/{id}` as the JobManager sends it, with its tasks and placement.
    pub fn job_details(&self, id: &str) -> Result<Value, ClientError> {
        self.call("GET", &format!("/jobs/{}", encode(id)), Body::None)
    }

    /// `GET /jobs`.
    pub fn jobs(&self) -> Result<Vec<JobSummary>, ClientError> {
        self.call::<JobsAnswer>("GET", "/jobs", Body::None).map(|a| a.jobs)
    }

    /// Takes a savepoint (and with `stop`, ends the job after it): `POST
    /// /jobs/{id}/savepoints`, which answers once it completed; returns its location.
    pub fn savepoint(&self, id: &str, dir: Option<&std::path::Path>, stop: bool) -> Result<String, ClientError> {
        let request = crate::api::SavepointBody { target_directory: dir.map(std::path::Path::to_path_buf), stop, cancel_job: false };
        let body = serde_json::to_value(request).expect("a savepoint request serializes");
        let trigger: crate::api::TriggerAnswer = self.call("POST", &format!("/jobs/{}/savepoints", encode(id)), Body::Json(&body))?;
        let status = format!("/jobs/{}/savepoints/{}", encode(id), encode(&trigger.request_id));
        loop {
            let answer: Value = self.call("GET", &status, Body::None)?;
            match answer["status"]["id"].as_str() {
                Some("COMPLETED") => {
                    return answer["operation"]["location"]
                        .as_str()
                        .map(str::to_string)
                        .ok_or_else(|| ClientError::BadResponse("no location in the answer".into()))
                }
                Some("IN_PROGRESS") => std::thread::sleep(Duration::from_millis(100)),
                _ => return Err(ClientError::BadResponse(format!("unexpected savepoint status {answer}"))),
            }
        }
    }

    /// Cancels a job: `DELETE /jobs/{id}`.
    pub fn cancel(&self, id: &str) -> Result<(), ClientError> {
        let (status, text) = self.request("DELETE", &format!("/jobs/{}", encode(id)), Body::None)?;
        check(status, &text)
    }

    /// `GET /taskmanagers`.
    pub fn taskmanagers(&self) -> Result<Vec<TaskManager>, ClientError> {
        self.call::<TaskManagersAnswer>("GET", "/taskmanagers", Body::None).map(|a| a.taskmanagers)
    }

    /// `GET /overview`, as the JobManager sends it.
    pub fn overview(&self) -> Result<Value, ClientError> {
        self.call("GET", "/overview", Body::None)
    }

    /// `POST /tenants`.
    pub fn create_tenant(&self, request: &crate::api::CreateTenant) -> Result<crate::api::Tenant, ClientError> {
        self.call("POST", "/tenants", Body::Json(&serde_json::to_value(request).expect("serializes")))
    }

    /// `PATCH /tenants/{name}`.
    pub fn update_tenant(&self, name: &str, changes: &crate::api::TenantChanges) -> Result<crate::api::Tenant, ClientError> {
        self.call("PATCH", &format!("/tenants/{}", encode(name)), Body::Json(&serde_json::to_value(changes).expect("serializes")))
    }

    /// `GET /tenants/{name}`.
    pub fn tenant(&self, name: &str) -> Result<crate::api::Tenant, ClientError> {
        self.call("GET", &format!("/tenants/{}", encode(name)), Body::None)
    }

    /// `GET /tenants`.
    pub fn tenants(&self) -> Result<Vec<crate::api::Tenant>, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            tenants: Vec<crate::api::Tenant>,
        }
        self.call::<Answer>("GET", "/tenants", Body::None).map(|a| a.tenants)
    }

    /// `DELETE /tenants/{name}`.
    pub fn delete_tenant(&self, name: &str) -> Result<(), ClientError> {
        let (status, text) = self.request("DELETE", &format!("/tenants/{}", encode(name)), Body::None)?;
        check(status, &text)
    }

    /// `POST /tokens`: the key is in the answer, and nowhere else.
    pub fn create_token(&self, request: &crate::api::CreateToken) -> Result<crate::api::CreatedToken, ClientError> {
        self.call("POST", "/tokens", Body::Json(&serde_json::to_value(request).expect("serializes")))
    }

    /// `GET /tokens[?tenant=NAME]`.
    pub fn tokens(&self, tenant: Option<&str>) -> Result<Vec<crate::api::TokenInfo>, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            tokens: Vec<crate::api::TokenInfo>,
        }
        let path = match tenant {
            Some(t) => format!("/tokens?tenant={}", encode(t)),
            None => "/tokens".to_string(),
        };
        self.call::<Answer>("GET", &path, Body::None).map(|a| a.tokens)
    }

    /// `GET /tenants/{name}/usage?since=MS`.
    pub fn usage(&self, tenant: &str, since_ms: u64) -> Result<crate::api::UsageReport, ClientError> {
        self.call("GET", &format!("/tenants/{}/usage?since={since_ms}", encode(tenant)), Body::None)
    }

    /// `GET /whoami`: the key's tenant and role.
    pub fn whoami(&self) -> Result<crate::api::Identity, ClientError> {
        self.call("GET", "/whoami", Body::None)
    }

    /// `DELETE /tokens/{id}`.
    pub fn revoke_token(&self, id: &str) -> Result<crate::api::TokenInfo, ClientError> {
        self.call("DELETE", &format!("/tokens/{}", encode(id)), Body::None)
    }

    /// `POST /taskmanager-tokens`.
    pub fn create_join_token(&self, request: &crate::api::CreateJoinToken) -> Result<crate::api::CreatedJoinToken, ClientError> {
        self.call("POST", "/taskmanager-tokens", Body::Json(&serde_json::to_value(request).expect("serializes")))
    }

    /// `GET /taskmanager-tokens`.
    pub fn join_tokens(&self) -> Result<Vec<crate::api::JoinTokenInfo>, ClientError> {
        #[derive(Deserialize)]
        struct Answer {
            tokens: Vec<crate::api::JoinTokenInfo>,
        }
        self.call::<Answer>("GET", "/taskmanager-tokens", Body::None).map(|a| a.tokens)
    }

    /// `DELETE /taskmanager-tokens/{id}`.
    pub fn revoke_join_token(&self, id: &str) -> Result<crate::api::JoinTokenInfo, ClientError> {
        self.call("DELETE", &format!("/taskmanager-tokens/{}", encode(id)), Body::None)
    }

    /// `DELETE /taskmanagers/{id}`: revokes the TaskManager's certificates.
    pub fn revoke_taskmanager(&self, id: &str) -> Result<crate::api::RevokedTaskManager, ClientError> {
        self.call("DELETE", &format!("/taskmanagers/{}", encode(id)), Body::None)
    }
}

enum Body<'a> {
    None,
    Json(&'a Value),
    Wasm(&'a [u8]),
}

/// `/jars/upload?name=NAME`.
pub fn upload_path(name: &str) -> String {
    format!("/jars/upload?name={}", encode(name))
}

impl From<RunSettings> for crate::api::SubmitSettings {
    fn from(settings: RunSettings) -> Self {
        let c = settings.checkpoint.as_ref();
        crate::api::SubmitSettings {
            parallelism: Some(settings.parallelism),
            buffer_timeout_ms: Some(settings.buffer_timeout_ms),
            checkpoint_interval_ms: c.and_then(|c| c.interval).map(|i| i.as_millis() as u64),
            checkpointing_mode: c.map(|c| c.mode),
            checkpoints_retained: c.map(|c| c.retained),
            checkpoint_dir: settings.checkpoint_dir,
            restart_strategy: settings.restart_strategy,
            allow_non_restored_state: settings.savepoint.is_some() && settings.allow_non_restored_state,
            savepoint_path: settings.savepoint,
            state_backend: (settings.state_backend != crate::state::BackendKind::Memory).then_some(settings.state_backend),
            memory_limit_mib: settings.memory_limit_mib,
            call_timeout_ms: settings.call_timeout_ms,
        }
    }
}

/// How a job submitted with [`Client::run`] runs.
#[derive(Debug, Clone, Default)]
pub struct RunSettings {
    /// Default parallelism (`-p`).
    pub parallelism: u32,
    /// Output buffer timeout of its tasks, in milliseconds (`--buffer-timeout`).
    pub buffer_timeout_ms: u64,
    /// Periodic checkpoints, if on.
    pub checkpoint: Option<crate::checkpoint::CheckpointConfig>,
    /// Where its checkpoints go, instead of the JobManager's default.
    pub checkpoint_dir: Option<std::path::PathBuf>,
    /// What to do on failures, instead of the default.
    pub restart_strategy: Option<crate::jobmanager::RestartStrategy>,
    /// Savepoint or checkpoint to resume from.
    pub savepoint: Option<std::path::PathBuf>,
    /// Where keyed state lives.
    pub state_backend: crate::state::BackendKind,
    /// Resume even if the savepoint has state the job cannot take.
    pub allow_non_restored_state: bool,
    /// Linear memory per instance to ask for, in MiB (at most the tenant's quota).
    pub memory_limit_mib: Option<u64>,
    /// Longest guest call to ask for, in ms (at most the tenant's quota).
    pub call_timeout_ms: Option<u64>,
}

fn check(status: u16, text: &str) -> Result<(), ClientError> {
    match status {
        200..=299 => Ok(()),
        401 => Err(ClientError::Unauthorized(error_message(status, text))),
        500..=599 => Err(ClientError::Server { status, message: error_message(status, text) }),
        _ => Err(ClientError::Refused { status, message: error_message(status, text) }),
    }
}

fn parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, ClientError> {
    serde_json::from_str(text).map_err(|e| ClientError::BadResponse(one_line(&e.to_string())))
}

/// Lays out rows under headers in columns separated by two spaces (the last
/// column is not padded).
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate().take(widths.len()) {
            if i + 1 == widths.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The table `eddy list` prints.
pub fn jobs_table(jobs: &[JobSummary]) -> String {
    let rows: Vec<Vec<String>> = jobs.iter().map(|j| vec![j.id.clone(), j.status.clone(), j.name.clone()]).collect();
    table(&["ID", "STATUS", "NAME"], &rows)
}

/// A time (ms since the epoch) as how far from now: `in 23h 59m`, `5m ago`.
pub fn ago_or_in(ms: u64) -> String {
    let now = crate::jobmanager::now_ms();
    let span = |d: u64| {
        let (h, m, s) = (d / 3_600_000, d / 60_000 % 60, d / 1000 % 60);
        match (h, m) {
            (0, 0) => format!("{s}s"),
            (0, _) => format!("{m}m {s}s"),
            _ => format!("{h}h {m}m"),
        }
    };
    if ms >= now { format!("in {}", span(ms - now)) } else { format!("{} ago", span(now - ms)) }
}

/// The table `eddy taskmanagers` prints.
pub fn taskmanagers_table(tms: &[TaskManager]) -> String {
    let rows: Vec<Vec<String>> = tms
        .iter()
        .map(|t| {
            vec![
                t.id.clone(),
                t.data_address.clone(),
                t.slots_number.to_string(),
                t.free_slots.to_string(),
                t.last_heartbeat_ms_ago.map_or_else(|| "-".into(), |ms| format!("{:.1} s ago", ms as f64 / 1000.0)),
            ]
        })
        .collect();
    table(&["ID", "DATA ADDRESS", "SLOTS", "FREE", "LAST HEARTBEAT"], &rows)
}

/// `, 1000 in, 1000 out, 52 records/s out, back-pressured 80 %` from a task's or
/// subtask's statistics; nothing before it reported.
fn stats_line(m: &Value) -> String {
    let Some(records_in) = m["records-in"].as_u64() else { return String::new() };
    let mut line = format!(", {records_in} in, {} out", m["records-out"].as_u64().unwrap_or(0));
    if let Some(rate) = m["records-out-per-second"].as_f64().filter(|r| *r > 0.0) {
        line.push_str(&format!(", {rate} records/s out"));
    }
    if let Some(bp) = m["backpressured-ratio"].as_f64().filter(|b| *b > 0.1) {
        line.push_str(&format!(", back-pressured {:.0} %", bp * 100.0));
    }
    line
}

/// `eddy info --job`, from `GET /jobs/{id}`: the job's status and why, its tasks
/// (`task 0: File Source -> tokenize -> KeyBy, 40 in, 120 out`) and where each
/// subtask runs (`  subtask 1/2: tm-1 slot 0, 20 in, 60 out`), its restarts,
/// exceptions and checkpoints.
pub fn format_placement(job: &Value) -> String {
    let mut out = format!(
        "job {} '{}': {}\n",
        job["jid"].as_str().unwrap_or("?"),
        job["name"].as_str().unwrap_or(""),
        job["status"].as_str().unwrap_or("?")
    );
    if let Some(why) = job["failure"].as_str() {
        out.push_str(&format!("failed: {why}\n"));
    }
    if let Some(why) = job["waiting"].as_str() {
        out.push_str(&format!("waiting: {why}\n"));
    }
    for task in job["tasks"].as_array().into_iter().flatten() {
        let subtasks = task["subtasks"].as_array().cloned().unwrap_or_default();
        out.push_str(&format!("task {}: {}{}\n", task["task"], task["name"].as_str().unwrap_or(""), stats_line(&task["metrics"])));
        for s in &subtasks {
            let place = match (s["taskmanager"].as_str(), s["slot"].as_u64()) {
                (Some(tm), Some(slot)) => format!("{tm} slot {slot}"),
                _ => "not placed yet".to_string(),
            };
            let i = s["subtask"].as_u64().unwrap_or(0) + 1;
            out.push_str(&format!("  subtask {i}/{}: {place}{}\n", subtasks.len(), stats_line(&s["metrics"])));
        }
    }
    if let Some(n) = job["restarts"].as_u64().filter(|n| *n > 0) {
        out.push_str(&format!("restarts: {n}\n"));
    }
    let exceptions = job["exceptions"].as_array().cloned().unwrap_or_default();
    if !exceptions.is_empty() {
        out.push_str("exceptions (newest last):\n");
        let now = crate::jobmanager::now_ms();
        for e in exceptions.iter().rev().take(5).rev() {
            let ago = e["timestamp"].as_u64().map(|t| format!("{} s ago", now.saturating_sub(t) / 1000)).unwrap_or_default();
            out.push_str(&format!("  {ago}: {}\n", e["exception"].as_str().unwrap_or("")));
        }
    }
    let c = &job["checkpoints"];
    if let Some(done) = c["completed"].as_u64() {
        out.push_str(&format!("checkpoints: {done} completed, {} failed", c["failed"].as_u64().unwrap_or(0)));
        match c["latest"].as_str() {
            Some(latest) => out.push_str(&format!(", latest {latest}\n")),
            None => out.push('\n'),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::mpsc;

    /// A server that answers each of `answers` to one connection and sends
    /// back what it received (request line, headers, body).
    fn serve(answers: Vec<(u16, &'static str)>) -> (String, mpsc::Receiver<(String, Vec<u8>)>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for (status, body) in answers {
                let (stream, _) = listener.accept().unwrap();
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0usize;
                let mut expect = false;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if lower.starts_with("expect: 100-continue") {
                        expect = true;
                    }
                    head.push_str(&line);
                }
                let mut stream = stream;
                if expect {
                    stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").unwrap();
                }
                let mut body_in = vec![0; length];
                reader.read_exact(&mut body_in).unwrap();
                let reply = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                stream.write_all(reply.as_bytes()).unwrap();
                tx.send((head, body_in)).unwrap();
            }
        });
        (addr, rx)
    }

    #[test]
    fn base_urls() {
        assert_eq!(base_url("127.0.0.1:8081").unwrap(), "http://127.0.0.1:8081");
        assert_eq!(base_url("http://jm.example:80/").unwrap(), "http://jm.example:80");
        assert_eq!(base_url("[::1]:8081").unwrap(), "http://[::1]:8081");
        assert!(base_url("localhost").is_err());
        assert_eq!(base_url("https://jm:443/").unwrap(), "https://jm:443");
        assert!(base_url("ftp://jm:443").is_err());
        assert!(base_url("jm:99999").is_err());
        assert!(base_url("jm:8081/x").is_err());
    }

    #[test]
    fn paths() {
        assert_eq!(upload_path("my job.wasm"), "/jars/upload?name=my%20job.wasm");
        assert_eq!(encode("a/b?c&d=é"), "a%2Fb%3Fc%26d%3D%C3%A9");
        let settings: crate::api::SubmitSettings = RunSettings { parallelism: 4, buffer_timeout_ms: 10, ..Default::default() }.into();
        let body = serde_json::to_value(settings).unwrap();
        let want = serde_json::json!({"parallelism": 4, "buffer-timeout-ms": 10});
        assert_eq!(body, want);
    }

    #[test]
    fn error_messages() {
        assert_eq!(error_message(400, r#"{"errors": ["unknown entry x"]}"#), "unknown entry x");
        assert_eq!(error_message(400, r#"{"errors": ["two\nlines"]}"#), "two lines");
        assert_eq!(error_message(413, "length limit exceeded"), "the component is larger than the JobManager accepts");
        assert_eq!(error_message(404, ""), "not found");
        assert_eq!(error_message(400, "bad thing"), "bad thing (HTTP 400)");
        assert_eq!(error_message(502, ""), "HTTP 502");
    }

    #[test]
    fn tables() {
        let jobs = vec![
            JobSummary { id: "a1".into(), status: "RUNNING".into(), name: "word count".into() },
            JobSummary { id: "b22222".into(), status: "FINISHED".into(), name: "x".into() },
        ];
        assert_eq!(
            jobs_table(&jobs),
            "ID      STATUS    NAME\na1      RUNNING   word count\nb22222  FINISHED  x\n"
        );
        let tms = vec![TaskManager {
            id: "tm-1".into(),
            data_address: "127.0.0.1:4000".into(),
            slots_number: 2,
            free_slots: 1,
            last_heartbeat_ms_ago: Some(1500),
            running_tasks: None,
        }];
        assert_eq!(
            taskmanagers_table(&tms),
            "ID    DATA ADDRESS    SLOTS  FREE  LAST HEARTBEAT\ntm-1  127.0.0.1:4000  2      1     1.5 s ago\n"
        );
        assert_eq!(table(&["A", "B"], &[]), "A  B\n");
    }

    #[test]
    fn connection_refused() {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().to_string()
        };
        let e = Client::new(&addr, None).unwrap().jobs().unwrap_err();
        assert_eq!(e.to_string(), format!("cannot reach the JobManager at {addr}: connection refused"));
    }

    #[test]
    fn jobs_with_token() {
        let (addr, rx) = serve(vec![(200, r#"{"jobs": [{"id": "j1", "name": "wc", "status": "RUNNING"}]}"#)]);
        let jobs = Client::new(&addr, Some("s3cret".into())).unwrap().jobs().unwrap();
        assert_eq!(jobs.len(), 1);
        assert_eq!((jobs[0].id.as_str(), jobs[0].status.as_str()), ("j1", "RUNNING"));
        let (head, _) = rx.recv().unwrap();
        assert!(head.starts_with("GET /jobs HTTP/1.1\r\n"), "{head}");
        assert!(head.to_ascii_lowercase().contains("authorization: bearer s3cret\r\n"), "{head}");
    }

    #[test]
    fn unauthorized_and_refused() {
        let (addr, _rx) = serve(vec![
            (401, r#"{"errors": ["unknown or revoked API key"]}"#),
            (400, r#"{"errors": ["unknown entry nope"]}"#),
            (500, r#"{"errors": ["boom"]}"#),
            (200, "not json"),
        ]);
        let c = Client::new(&addr, None).unwrap();
        assert_eq!(
            c.jobs().unwrap_err().to_string(),
            "the JobManager refused the API key: unknown or revoked API key (give one with --token-file, --token or EDDY_TOKEN)"
        );
        let e = c.run("abc", "nope", &[], RunSettings { parallelism: 1, buffer_timeout_ms: 10, ..Default::default() }).unwrap_err();
        assert_eq!(e.to_string(), "the JobManager refused the request: unknown entry nope");
        assert_eq!(e.status(), Some(400));
        assert_eq!(c.cancel("j").unwrap_err().to_string(), "the JobManager failed: boom");
        assert!(c.taskmanagers().unwrap_err().to_string().starts_with("unexpected answer from the JobManager: "));
    }

    #[test]
    fn upload_only_when_missing() {
        let bytes = b"\0asm not really".to_vec();
        let digest = crate::runtime::digest(&bytes);
        let stored: &'static str = Box::leak(format!(r#"{{"id": "{digest}", "status": "success"}}"#).into_boxed_str());
        let (addr, rx) = serve(vec![(404, r#"{"errors": ["unknown jar"]}"#), (200, stored), (200, "{}")]);
        let c = Client::new(&addr, None).unwrap();
        let up = c.upload("my job.wasm", &bytes).unwrap();
        assert_eq!(up, Upload { digest: digest.clone(), uploaded: true });
        let (head, _) = rx.recv().unwrap();
        assert!(head.starts_with(&format!("GET /jars/{digest} HTTP/1.1")), "{head}");
        let (head, body) = rx.recv().unwrap();
        assert!(head.starts_with("POST /jars/upload?name=my%20job.wasm HTTP/1.1"), "{head}");
        assert!(head.to_ascii_lowercase().contains("content-type: application/wasm"), "{head}");
        assert_eq!(body, bytes);
        // Present: no second request.
        let up = c.upload("my job.wasm", &bytes).unwrap();
        assert!(!up.uploaded);
        let (head, _) = rx.recv().unwrap();
        assert!(head.starts_with("GET /jars/"), "{head}");
    }

    #[test]
    fn job_details() {
        let (addr, rx) = serve(vec![
            (
                200,
                r#"{"jid": "j1", "name": "wc", "entry": "word-count", "status": "FAILED", "parallelism": 2,
                    "start-time": 1000, "end-time": -1, "duration": 1500, "failure": "operator panicked",
                    "records-in": 10, "records-out": 7, "vertices": [], "tasks": []}"#,
            ),
            (202, "{}"),
        ]);
        let c = Client::new(&addr, None).unwrap();
        let job = c.job("j1").unwrap();
        assert_eq!(job.status, "FAILED");
        assert_eq!(job.failure.as_deref(), Some("operator panicked"));
        assert_eq!((job.records_in, job.records_out, job.duration), (Some(10), Some(7), Some(1500)));
        c.cancel("j1").unwrap();
        rx.recv().unwrap();
        let (head, _) = rx.recv().unwrap();
        assert!(head.starts_with("DELETE /jobs/j1 HTTP/1.1"), "{head}");
    }

    #[test]
    fn placement_shows_why_a_job_failed_and_what_each_task_did() {
        let job = serde_json::json!({
            "jid": "job-2", "name": "wc", "status": "FAILED", "failure": "task 1 failed: boom",
            "tasks": [{"task": 0, "name": "Source", "metrics": {"records-in": 40, "records-out": 120, "records-out-per-second": 12.0, "backpressured-ratio": 0.8},
                "subtasks": [{"subtask": 0, "taskmanager": "tm-1", "slot": 0, "metrics": {"records-in": 40, "records-out": 120}}]}],
        });
        let text = format_placement(&job);
        assert!(text.starts_with("job job-2 'wc': FAILED\nfailed: task 1 failed: boom\n"), "{text}");
        assert!(text.contains("task 0: Source, 40 in, 120 out, 12 records/s out, back-pressured 80 %\n"), "{text}");
        assert!(text.contains("  subtask 1/1: tm-1 slot 0, 40 in, 120 out\n"), "{text}");
    }

    #[test]
    fn placement_shows_restarts_and_checkpoints() {
        let job = serde_json::json!({
            "jid": "job-1", "name": "wc", "status": "RUNNING",
            "tasks": [{"task": 0, "name": "Source", "subtasks": [{"subtask": 0, "taskmanager": "tm-3", "slot": 0}]}],
            "restarts": 1, "exceptions": [{"timestamp": 1, "exception": "TaskManager tm-2 was lost"}],
            "checkpoints": {"completed": 3, "failed": 0, "latest": "/c/job-1/chk-3"},
        });
        let text = format_placement(&job);
        assert!(text.contains("subtask 1/1: tm-3 slot 0"), "{text}");
        assert!(text.contains("restarts: 1\nexceptions (newest last):\n  "), "{text}");
        assert!(text.contains(" s ago: TaskManager tm-2 was lost\n"), "{text}");
        assert!(text.contains("checkpoints: 3 completed, 0 failed, latest /c/job-1/chk-3"), "{text}");
    }
}

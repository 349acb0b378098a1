//! Every body the JSON API takes or answers, as types: the handlers answer with them and the
//! OpenAPI document served at `/api/v1/openapi.json` is derived from them and the routes. The
//! limits stated here are the ones the domain enforces; server/tests/contract.rs reads them back
//! from the document and checks the server holds them.

pub mod scheduling;

use serde::Serialize;
use std::collections::BTreeMap;
use trellis_domain::breakage::Attribution;
use trellis_domain::events::BreakageEvent;
use trellis_domain::grid::MAX_PAGE;
use trellis_domain::view::{BreakageDetail, Project, ProjectSummary};
use trellis_domain::{FieldError, Grid, Status};
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::{Object, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, PartialSchema, ToResponse, ToSchema};

/// A string schema whose values are exactly `values`.
fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
}

// --- answers ---------------------------------------------------------------------------------

/// Where a stored (or already stored) report lives.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReportReceipt {
    pub id: i64,
    /// The page of the report's cell.
    pub url: String,
    /// Stored by this request (201), or by an earlier one with the same run_id (200).
    #[serde(skip)]
    pub created: bool,
}

/// A history push: `new` counts commits not seen before.
#[derive(Debug, Serialize, ToSchema)]
pub struct CommitsPushed {
    pub project: String,
    pub received: usize,
    pub new: usize,
}

/// Projects with a health summary.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProjectList {
    pub projects: Vec<ProjectSummary>,
}

/// Rows grouped by stream in RPM order, newest first; rows hidden by the filter have
/// visible=false.
#[derive(Debug, Serialize, ToSchema)]
pub struct GridView {
    pub project: Project,
    pub grid: Grid,
}

/// Breakages, open first, and how fresh they are.
#[derive(Debug, Serialize, ToSchema)]
pub struct BreakageList {
    pub project: Project,
    pub breakages: Vec<BreakageDetail>,
    /// The revision the breakages were computed at.
    pub as_of_revision: i64,
    /// The project's latest revision.
    pub revision: i64,
    /// False while newer results are being taken into account.
    pub current: bool,
}

/// A page of breakage events, oldest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventList {
    pub project: Project,
    pub events: Vec<BreakageEvent>,
    /// Pass as `after` to read the next page; null when this page is the last one for now.
    pub next_after: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum HealthStatus {
    Ok,
    Unavailable,
}

/// The database and the writer, each "ok" or what is wrong with it.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    pub status: HealthStatus,
    pub database: String,
    pub writer: String,
}

/// The machine-readable kind of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MalformedJson,
    BadRequest,
    Unauthorized,
    RunnerDisabled,
    OutOfScope,
    NotFound,
    Conflict,
    PayloadTooLarge,
    RequestTimeout,
    MethodNotAllowed,
    UriTooLong,
    HeadersTooLarge,
    InvalidFields,
    Unavailable,
    TooManyRequests,
    Internal,
}

/// Every error answer of the API.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiErrorBody {
    pub error: ErrorCode,
    /// What is wrong, for a person: names the bad parameter or field.
    pub message: String,
    /// With invalid_fields: every bad field, so all can be fixed at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<FieldError>)]
    pub fields: Option<Vec<FieldError>>,
    /// With out_of_scope: what the runner may post (`project`, `project:stream`,
    /// `project:stream:arch`, `project::arch`).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Vec<String>)]
    pub scope: Option<Vec<String>>,
    /// Names the request in the server's log.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = String)]
    pub request_id: Option<String>,
}

// --- requests --------------------------------------------------------------------------------
// Runners' bodies are validated by the domain from JSON, so that one answer names every bad
// field; these types only describe them.

/// Full commit sha, 40 hex digits (stored lowercase).
#[derive(ToSchema)]
#[schema(
    pattern = "^[0-9a-fA-F]{40}$",
    example = "3d3c92b4711b42169137b2ddf42ed4382e2babdf"
)]
pub struct Sha(pub String);

/// Lowercase slug.
#[derive(ToSchema)]
#[schema(pattern = "^[a-z0-9][a-z0-9._-]{0,63}$")]
pub struct Slug(pub String);

/// `uname -r` (4.18.0-553.el8_10.x86_64, 3.10.0-1160.el7.x86_64+debug) or version-release with
/// `arch`; kernel.org versions such as 5.4.280. Letters, digits and . _ ~ ^ -, starting with a
/// digit, optionally followed by +variant (lowercase).
#[derive(ToSchema)]
#[schema(
    min_length = 1,
    max_length = 128,
    pattern = "^[0-9][0-9A-Za-z._~^-]*(\\+[0-9a-z._-]+)?$"
)]
pub struct Uname(pub String);

/// A commit as a runner describes it. null stands for an absent optional field.
#[derive(ToSchema)]
pub struct Commit {
    pub sha: Sha,
    /// At most 1000 bytes of UTF-8, without NUL.
    #[schema(max_length = 1000, pattern = "^[^\\u0000]*$")]
    pub subject: Option<String>,
    /// At most 1000 bytes of UTF-8, without NUL.
    #[schema(max_length = 1000, pattern = "^[^\\u0000]*$")]
    pub author: Option<String>,
    #[schema(format = DateTime, max_length = 64)]
    pub committed_at: Option<String>,
    /// Parent shas; [] for a root commit, null or absent when unknown. A commit cannot name
    /// itself, and a history that would loop is refused with 422.
    #[schema(max_items = 64)]
    pub parents: Option<Vec<Sha>>,
    /// Release tags pointing at the commit. Tags are only added: a tag named again, or left out
    /// later, changes nothing.
    #[schema(max_items = 16)]
    pub tags: Option<Vec<ReleaseTag>>,
}

/// A release tag such as v1.0.20220627: 1 to 100 characters, not blank, without control
/// characters.
#[derive(ToSchema)]
#[schema(
    min_length = 1,
    max_length = 100,
    pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$",
    example = "v1.0.20220627"
)]
pub struct ReleaseTag(pub String);

/// The kernel a report is about.
#[derive(ToSchema)]
pub struct KernelRef {
    #[schema(inline)]
    pub version: Uname,
    /// Required when version does not end with a known arch (.x86_64, .aarch64, .ppc64le,
    /// .ppc64, .s390x, .i686, .i386, .armv7hl, .riscv64, .noarch); must equal it when it does.
    /// Empty means absent.
    #[schema(max_length = 16, pattern = "^[0-9A-Za-z_]*$")]
    pub arch: Option<String>,
    /// Stream slug such as rhel-8 or centos-stream-9; derived from the elN dist tag (or
    /// `upstream` for kernel.org versions) when absent or empty, and required when there is none.
    #[schema(max_length = 64, pattern = "^([a-z0-9][a-z0-9._-]*)?$")]
    pub distro: Option<String>,
}

/// One stage of a job.
#[derive(ToSchema)]
pub struct ReportStage {
    /// At most 64 bytes of UTF-8, not blank, without NUL.
    #[schema(
        min_length = 1,
        max_length = 64,
        pattern = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"
    )]
    pub name: String,
    pub status: Status,
    #[schema(minimum = 0, exclusive_maximum = 1000000000)]
    pub duration_s: Option<f64>,
}

/// String map: keys at most 128 and values at most 1024 bytes of UTF-8, without NUL.
pub struct Metadata;

impl PartialSchema for Metadata {
    fn schema() -> RefOr<Schema> {
        let no_nul = "^[^\\u0000]*$";
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .max_properties(Some(64))
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(128))
                    .pattern(Some(no_nul)),
            ))
            .additional_properties(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(1024))
                    .pattern(Some(no_nul)),
            ))
            .description(Some(
                "String map: keys at most 128 and values at most 1024 bytes of UTF-8, without NUL.",
            ))
            .into()
    }
}

impl ToSchema for Metadata {}

/// A job's result; its project (a lowercase slug) is created by its first report. String limits
/// count bytes of UTF-8 (maxLength counts characters: the same for ASCII). null stands for an
/// absent optional field.
#[derive(ToSchema)]
#[schema(example = json!({
    "project": "demo-wireguard-linux-compat",
    "kernel": {"version": "4.18.0-553.132.1.el8_10.x86_64"},
    "commit": {"sha": "3d3c92b4711b42169137b2ddf42ed4382e2babdf"},
    "status": "fail",
    "stages": [{"name": "build", "status": "fail", "duration_s": 41.2}],
    "started_at": "2026-11-26T10:00:00Z",
    "finished_at": "2026-11-26T10:01:00Z",
    "log": "src/queueing.h:85:41: error: struct sk_buff has no member named headers_end\n",
    "run_id": "job-12345",
    "metadata": {"compiler": "gcc 8.5.0", "kernel-devel": "kernel-devel-4.18.0-553.132.1.el8_10.x86_64"}
}))]
pub struct Report {
    // A doc comment here would wrap the inlined schema in an `allOf` with an untyped object.
    #[schema(inline)]
    pub project: Slug,
    #[schema(inline)]
    pub kernel: KernelRef,
    pub commit: Commit,
    pub status: Status,
    #[schema(max_items = 32)]
    pub stages: Option<Vec<ReportStage>>,
    #[schema(format = DateTime, max_length = 64)]
    pub started_at: String,
    /// Not before started_at.
    #[schema(format = DateTime, max_length = 64)]
    pub finished_at: String,
    /// Plain text; stored compressed, clipped to head + tail over the server's limit. NUL
    /// characters are kept, made visible.
    pub log: Option<String>,
    /// The runner's idempotency key: a retry with the same run_id stores nothing new. At most
    /// 200 bytes of UTF-8, not blank, without control characters.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$"
    )]
    pub run_id: String,
    pub metadata: Option<Metadata>,
}

/// Commit history to record (idempotent).
#[derive(ToSchema)]
#[schema(example = json!({"commits": [{
    "sha": "3d3c92b4711b42169137b2ddf42ed4382e2babdf",
    "parents": ["99935b07b48a2ff696d64996277d89efe8242d37"],
    "subject": "compat: drop CentOS 8 Stream support",
    "author": "Jason A. Donenfeld",
    "committed_at": "2022-06-29T13:36:49Z"
}]}))]
pub struct CommitPush {
    #[schema(min_items = 1, max_items = 10000)]
    pub commits: Vec<Commit>,
}

// --- parameters ------------------------------------------------------------------------------

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ProjectPath {
    /// Project slug.
    #[param(value_type = Slug, inline, example = "demo-wireguard-linux-compat")]
    pub project: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KernelPath {
    /// Stream slug such as el8, rhel-9 or upstream.
    #[param(value_type = Slug, inline, example = "el9")]
    pub stream: String,
    /// uname -r.
    #[param(value_type = Uname, inline, example = "5.14.0-687.17.1.el9_8.x86_64")]
    pub kernel: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct ShaPath {
    /// Full commit sha, 40 hex digits.
    #[param(value_type = Sha, inline)]
    pub sha: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SignaturePath {
    /// Signature id (16 hex).
    #[param(pattern = "^[0-9a-f]{16}$", example = "38703fdc13d9de90")]
    pub id: String,
}

/// The grid's filter and page (see `GridFilter::from_pairs`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct GridQuery {
    /// Stream slugs, repeatable or comma-separated; empty means every stream.
    #[param(nullable = false)]
    pub stream: Option<String>,
    /// Architecture; empty means every arch.
    #[param(nullable = false)]
    pub arch: Option<String>,
    #[param(schema_with = failing_values)]
    pub failing: Option<String>,
    /// Case-insensitive substring of the kernel's uname -r.
    #[param(nullable = false)]
    pub q: Option<String>,
    #[param(schema_with = every_commit_values)]
    pub all: Option<String>,
    #[param(schema_with = page_number)]
    pub page: Option<u32>,
}

/// The values a yes/no grid parameter takes.
const YES_NO: [&str; 9] = ["1", "true", "on", "yes", "0", "false", "off", "no", ""];

// A parameter whose schema is made by a function keeps no doc comment: these carry their own.
fn failing_values() -> Object {
    string_enum(YES_NO)
        .description(Some(
            "1, true, on or yes: only rows failing now (failing or flaky at the newest tested \
             commit shown, or in an open breakage); 0, false, off, no or empty: every row. Any \
             other value is a 400.",
        ))
        .build()
}

fn every_commit_values() -> Object {
    string_enum(YES_NO)
        .description(Some(
            "1, true, on or yes: a column for every commit; 0, false, off, no or empty: tested \
             commits only, the untested ones counted in untested_before and untested_after. Any \
             other value is a 400.",
        ))
        .build()
}

fn page_number() -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(0))
        .maximum(Some(MAX_PAGE))
        .description(Some(
            "0 = the newest commits; each page is TRELLIS_GRID_COMMITS columns (tested commits \
             unless all=1).",
        ))
        .build()
}

/// Which events to read (see `EventPage::from_pairs`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventQuery {
    /// Events recorded after this event id (0: from the first).
    #[param(minimum = 0)]
    pub after: Option<i64>,
    /// Most events to return (default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
}

/// The coverage's one parameter.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CoverageQuery {
    /// Also list the kernels with no result on this commit or a newer one (40 hex digits, or
    /// empty for none).
    #[param(pattern = "^([0-9a-fA-F]{40})?$")]
    pub since: Option<String>,
}

/// The breakage filter (see `BreakageFilter::from_pairs`).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BreakageQuery {
    /// Stream slug; empty means every stream.
    #[param(nullable = false)]
    pub stream: Option<String>,
    #[param(schema_with = attribution_values)]
    pub attribution: Option<String>,
    #[param(schema_with = state_values)]
    pub state: Option<String>,
}

fn attribution_values() -> Object {
    let causes = Attribution::ALL.map(Attribution::as_str);
    string_enum(causes.into_iter().chain([""]))
        .description(Some(
            "What broke it; empty (what the page's form sends for \"any\") means every cause. \
             Any other value is a 400.",
        ))
        .build()
}

fn state_values() -> Object {
    string_enum(["open", "fixed", ""])
        .description(Some(
            "open or fixed; empty (what the page's form sends for \"any\") means both. Any other \
             value is a 400.",
        ))
        .build()
}

// --- shared error answers --------------------------------------------------------------------

/// An error answer with an [`ApiErrorBody`] and, for some, a header.
fn error_response(description: &str) -> ResponseBuilder {
    let body = ContentBuilder::new()
        .schema(Some(Ref::from_schema_name(ApiErrorBody::name())))
        .build();
    ResponseBuilder::new()
        .description(description)
        .content("application/json", body)
}

/// Declares reusable error answers, each a `ToResponse` named after itself.
macro_rules! error_responses {
    ($($name:ident => $response:expr;)*) => {$(
        pub struct $name;

        impl<'r> ToResponse<'r> for $name {
            fn response() -> (&'r str, RefOr<Response>) {
                (stringify!($name), $response.build().into())
            }
        }
    )*};
}

error_responses! {
    BadRequest => error_response("Malformed JSON or a bad parameter, named in `message`");
    Unauthorized => error_response("Missing or unknown runner token").header(
        "WWW-Authenticate",
        HeaderBuilder::new().schema(Some(string_enum(["Bearer"]))).build(),
    );
    Forbidden => error_response(
        "Runner disabled, or outside its scope (then `scope` lists what it may post)",
    );
    Conflict => error_response("The lease is no longer this runner's");
    NotFound => error_response("No such project, kernel, commit or signature");
    PayloadTooLarge => error_response("Body over the configured limit");
    InvalidFields => error_response("Invalid fields; every bad field is named in `fields`");
    Unavailable => error_response(
        "The database is busy or unavailable; retry after Retry-After seconds",
    )
    .header(
        "Retry-After",
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::Integer)))
            .build(),
    );
}

/// What every read of a project may answer besides its success: a bad path or query, nothing by
/// that name, or a busy database. Named once so the read operations cannot drift apart.
pub struct ReadErrors;

impl IntoResponses for ReadErrors {
    fn responses() -> BTreeMap<String, RefOr<Response>> {
        let refer = |(name, _): (&str, RefOr<Response>)| RefOr::Ref(Ref::from_response_name(name));
        BTreeMap::from([
            ("400".to_string(), refer(BadRequest::response())),
            ("404".to_string(), refer(NotFound::response())),
            ("503".to_string(), refer(Unavailable::response())),
        ])
    }
}

// --- the document ----------------------------------------------------------------------------

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Trellis API",
        version = "1",
        description = "Runners post kernel-module build/test results; anyone may read the grid. \
                       Times are RFC 3339 in requests and epoch milliseconds in responses."
    ),
    servers((url = "/api/v1")),
    modifiers(&RunnerToken),
    components(
        schemas(ApiErrorBody),
        responses(
            BadRequest,
            Unauthorized,
            Forbidden,
            Conflict,
            NotFound,
            PayloadTooLarge,
            InvalidFields,
            Unavailable
        )
    )
)]
pub struct ApiDoc;

/// The `runnerToken` security scheme, which runner endpoints name in their `security`.
struct RunnerToken;

impl Modify for RunnerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let scheme = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("A token printed once by `trellis runner add NAME`."))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("runnerToken", SecurityScheme::Http(scheme));
        let admin = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .description(Some("The server's TRELLIS_ADMIN_TOKEN."))
            .build();
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme("adminToken", SecurityScheme::Http(admin));
    }
}

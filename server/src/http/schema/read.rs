//! The OpenAPI shapes of the domain's read models, which the API answers with as they serialise.
//! The domain crate stays free of OpenAPI, so these describe its types field by field; the schema
//! check (server/tests/schema.rs) validates real answers against them, so they cannot drift.

use std::borrow::Cow;
use trellis_domain::breakage::Attribution as DomainAttribution;
use trellis_domain::Status as DomainStatus;
use utoipa::openapi::schema::{AllOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

/// A string schema whose values are exactly `values`.
pub(super) fn string_enum<'a>(values: impl IntoIterator<Item = &'a str>) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values))
}

/// fail: the module failed to build or test; error: infrastructure trouble, never the module's
/// breakage.
pub struct Status;

impl PartialSchema for Status {
    fn schema() -> RefOr<Schema> {
        string_enum(DomainStatus::ALL.map(DomainStatus::as_str))
            .description(Some(
                "fail: the module failed to build or test; error: infrastructure trouble, \
                 never the module's breakage.",
            ))
            .into()
    }
}

impl ToSchema for Status {}

/// What broke it.
pub struct Attribution;

impl PartialSchema for Attribution {
    fn schema() -> RefOr<Schema> {
        string_enum(DomainAttribution::ALL.map(DomainAttribution::as_str))
            .description(Some(
                "module: a commit broke it; kernel: a kernel update broke it; both: both axes \
                 show a transition; unknown: neither has a passing neighbour.",
            ))
            .into()
    }
}

impl ToSchema for Attribution {}

/// The latest report's status, or flaky when the cell has both passing and failing reports.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum CellState {
    Pass,
    Fail,
    Error,
    Skip,
    Flaky,
}

#[derive(ToSchema)]
pub struct FieldError {
    /// Dotted path such as commit.sha or stages[0].status.
    pub field: String,
    pub message: String,
}

#[derive(ToSchema)]
pub struct Project {
    pub id: i64,
    pub name: String,
    pub description: String,
    /// Simulated results seeded by `make run`.
    pub demo: bool,
}

#[derive(ToSchema)]
pub struct StoredCommit {
    pub id: i64,
    pub sha: String,
    pub subject: Option<String>,
    pub author: Option<String>,
    /// Epoch milliseconds.
    pub committed_at: Option<i64>,
}

#[derive(ToSchema)]
pub struct Kernel {
    pub stream: String,
    pub version: String,
    pub release: String,
    pub arch: String,
    pub variant: String,
}

#[derive(ToSchema)]
pub struct StoredKernel {
    pub id: i64,
    pub kernel: Kernel,
}

#[derive(ToSchema)]
pub struct StatusCounts {
    pub pass: i64,
    pub fail: i64,
    pub error: i64,
    pub skip: i64,
}

#[derive(ToSchema)]
pub struct CellSummary {
    pub counts: StatusCounts,
    pub latest_status: Status,
    pub latest_report_id: i64,
    /// Epoch milliseconds.
    pub latest_finished_at: i64,
    pub signature: Option<String>,
}

#[derive(ToSchema)]
pub struct StreamOption {
    pub stream: String,
    pub label: String,
}

#[derive(ToSchema)]
pub struct GridCell {
    pub state: CellState,
    pub summary: CellSummary,
    pub breakage_start: bool,
}

#[derive(ToSchema)]
pub struct GridRow {
    pub kernel_id: i64,
    pub kernel: Kernel,
    pub uname: String,
    /// One per column; null where the pair was never tested.
    pub cells: Vec<Option<GridCell>>,
    pub has_failure: bool,
    /// False when the filter hides the row.
    pub visible: bool,
}

#[derive(ToSchema)]
pub struct StreamGroup {
    pub stream: String,
    pub label: String,
    pub rows: Vec<GridRow>,
}

#[derive(ToSchema)]
pub struct GridFilter {
    pub streams: Vec<String>,
    pub arch: Option<String>,
    pub failing: bool,
    pub q: String,
}

#[derive(ToSchema)]
pub struct Grid {
    pub project: String,
    /// Commits in git order, newest first.
    pub columns: Vec<StoredCommit>,
    pub groups: Vec<StreamGroup>,
    pub filter: GridFilter,
    pub page: u32,
    pub has_older: bool,
    pub streams: Vec<StreamOption>,
    pub arches: Vec<String>,
}

/// The newest tested commit and how its cells fare.
#[derive(ToSchema)]
pub struct CommitHealth {
    pub commit: StoredCommit,
    pub cells: StatusCounts,
    pub flaky: i64,
}

#[derive(ToSchema)]
pub struct ProjectSummary {
    pub project: Project,
    pub kernels: i64,
    pub commits: i64,
    pub reports: i64,
    pub latest: Option<CommitHealth>,
}

#[derive(ToSchema)]
pub struct Stage {
    pub name: String,
    pub status: Status,
    pub duration_ms: Option<i64>,
}

#[derive(ToSchema)]
pub struct ReportDetail {
    pub id: i64,
    pub runner: String,
    pub run_id: String,
    pub status: Status,
    pub stages: Vec<Stage>,
    pub metadata: std::collections::BTreeMap<String, String>,
    /// Epoch milliseconds, as are finished_at and received_at.
    pub started_at: i64,
    pub finished_at: i64,
    pub received_at: i64,
    pub log: String,
    pub log_original_bytes: i64,
    pub log_cut_bytes: i64,
}

#[derive(ToSchema)]
pub struct CellDetail {
    pub project: Project,
    pub kernel: StoredKernel,
    pub commit: StoredCommit,
    pub summary: Option<CellSummary>,
    pub reports: Vec<ReportDetail>,
}

#[derive(ToSchema)]
pub struct BisectHint {
    pub last_good: String,
    pub first_bad: String,
    pub untested: Vec<String>,
    /// Midpoint of untested: test it next.
    pub next: Option<String>,
    /// git bisect start <bad> <good> (commit axis).
    pub command: Option<String>,
}

#[derive(ToSchema)]
pub struct Breakage {
    pub id: String,
    pub stream: String,
    pub stream_label: String,
    pub attribution: Attribution,
    pub first_bad_commit: String,
    pub first_bad_kernel: String,
    pub start_kernel_id: i64,
    pub start_commit_id: i64,
    pub kernels: Vec<String>,
    pub commits: Vec<String>,
    pub failing_cells: u64,
    pub open: bool,
    pub fixed_by_commit: Option<String>,
    pub fixed_by_kernel: Option<String>,
    pub opened_at: Option<i64>,
    pub fixed_at: Option<i64>,
    pub time_to_fix_ms: Option<i64>,
    pub signature: Option<String>,
    pub commit_bisect: Option<BisectHint>,
    pub kernel_bisect: Option<BisectHint>,
}

/// A breakage with the error excerpt of its first failing cell (one flat object).
pub struct BreakageDetail;

/// The error of a breakage's first failing cell.
#[derive(ToSchema)]
pub struct Excerpt {
    pub error_line: Option<String>,
    pub excerpt: Option<String>,
}

impl PartialSchema for BreakageDetail {
    fn schema() -> RefOr<Schema> {
        AllOfBuilder::new()
            .item(Ref::from_schema_name(Breakage::name()))
            .item(Excerpt::schema())
            .into()
    }
}

impl ToSchema for BreakageDetail {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Breakage::name().into(), Breakage::schema()));
        <Breakage as ToSchema>::schemas(schemas);
    }
}

/// A [commit, cell summary] pair.
pub struct CommitCell;

impl PartialSchema for CommitCell {
    fn schema() -> RefOr<Schema> {
        // Items are schemas, not references: each refers through a one-item allOf.
        let item = |name: &str| AllOfBuilder::new().item(Ref::from_schema_name(name));
        ArrayBuilder::new()
            .prefix_items([item("StoredCommit"), item("CellSummary")])
            .min_items(Some(2))
            .max_items(Some(2))
            .into()
    }
}

impl ToSchema for CommitCell {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CommitCell")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((StoredCommit::name().into(), StoredCommit::schema()));
        schemas.push((CellSummary::name().into(), CellSummary::schema()));
        <StoredCommit as ToSchema>::schemas(schemas);
        <CellSummary as ToSchema>::schemas(schemas);
    }
}

#[derive(ToSchema)]
pub struct KernelHistory {
    pub project: Project,
    pub kernel: StoredKernel,
    /// [commit, cell summary] pairs along the commits, newest first.
    pub cells: Vec<CommitCell>,
    pub breakages: Vec<BreakageDetail>,
}

#[derive(ToSchema)]
pub struct StreamChange {
    pub stream: String,
    pub label: String,
    pub broke: Vec<String>,
    pub fixed: Vec<String>,
    pub tested: u64,
}

#[derive(ToSchema)]
pub struct CommitChanges {
    pub project: Project,
    pub commit: StoredCommit,
    pub parent: Option<StoredCommit>,
    pub streams: Vec<StreamChange>,
    pub opened: Vec<Breakage>,
    pub closed: Vec<Breakage>,
}

#[derive(ToSchema)]
pub struct SignatureCell {
    pub kernel: Kernel,
    pub sha: String,
    pub last_seen: i64,
}

#[derive(ToSchema)]
pub struct SignatureCells {
    pub project: Project,
    pub id: String,
    pub signature: String,
    pub excerpt: Option<String>,
    pub kernels: u64,
    pub since: Vec<String>,
    pub first_seen: i64,
    pub cells: Vec<SignatureCell>,
}

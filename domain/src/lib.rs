//! Trellis's domain core: plain Rust with no I/O. Storage, HTTP and rendering call into it.
//!
//! - [`version`]: RPM's version comparison (rpmvercmp), ported and tested against rpm's vectors.
//! - [`kernel`]: what a kernel is, how a report names it, its stream and its order.
//! - [`status`]: job outcomes and the per-cell summary.
//! - [`report`]: validation of what runners send, naming every bad field.
//! - [`log`]: bounding stored logs to head + tail.
//! - [`signature`]: the first meaningful error of a build log, normalised.
//! - [`history`]: git order of commits (generation numbers) and the rule that history is a DAG.
//! - [`grid`]: the kernel x commit grid and its filter.
//! - [`breakage`]: breakages, their attribution and life, bisect hints on both axes.
//! - [`events`]: one identity per breakage for its whole life, and its `opened`/`fixed` events.
//! - [`notice`]: what a feed entry or a mail says about an event, as text and HTML.
//! - [`now`]: what is broken now: one line per open breakage, with its culprit and next step.
//! - [`project`]: what an administrator says about a project (description, git and commit links).
//! - [`schedule`]: what to build next, most useful first.
//! - [`precedent`]: seen before: the fix that worked last time for the same error.
//! - [`scope`]: who may post what: runner tokens scoped to projects, streams and arches.
//! - [`coverage`]: how far the CI can be trusted: head coverage, runner and source health.
//! - [`health`]: health events: a CI problem raised once and cleared once.
//! - [`badge`]: status badges for READMEs, drawn as SVG.
//! - [`view`]: read models: what pages and the API show of stored projects, cells and reports.

pub mod badge;
pub mod breakage;
pub mod coverage;
pub mod events;
pub mod grid;
pub mod health;
pub mod history;
pub mod kernel;
pub mod log;
pub mod notice;
pub mod now;
pub mod precedent;
pub mod project;
pub mod report;
pub mod schedule;
pub mod scope;
pub mod search;
pub mod signature;
pub mod status;
pub mod version;
pub mod view;

pub use grid::{CellEntry, Grid, GridFilter};
pub use history::short_sha;
pub use kernel::Kernel;
pub use report::{CommitInfo, FieldError, Report, Stage};
pub use status::{CellState, CellSummary, CellUpdate, Status, StatusCounts};
pub use view::{StoredCommit, StoredKernel};

//! The `trellis` subcommands that administer a database: one module per noun.

pub mod project;
pub mod runner;
pub mod source;
pub mod subscription;

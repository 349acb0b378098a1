//! API and storage integration tests, grouped by concern. Every test runs twice, on SQLite and
//! on PostgreSQL, each time against its own fresh database (a temp file, or a database created
//! for the test).

#[path = "../common/mod.rs"]
mod common;

mod breakages;
mod grid;
mod pages;
mod reports;

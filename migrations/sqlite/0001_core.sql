-- Trellis core schema (SQLite). Only INTEGER/TEXT/BLOB column types: sqlx's `Any` driver decodes
-- nothing else. Times are epoch milliseconds.

CREATE TABLE projects (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    demo INTEGER NOT NULL DEFAULT 0,
    -- Bumped once by every transaction that changes the project's results or history; the rows
    -- it changes carry the new value, so readers can refresh just what changed since they looked.
    revision INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);

CREATE TABLE runners (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    token_prefix TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 1,
    created_at INTEGER NOT NULL,
    last_seen_at INTEGER
);

CREATE TABLE kernels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    stream TEXT NOT NULL,
    version TEXT NOT NULL,
    release TEXT NOT NULL,
    arch TEXT NOT NULL,
    variant TEXT NOT NULL,
    first_seen_at INTEGER NOT NULL,
    -- The project revision that added the row (see projects.revision).
    revision INTEGER NOT NULL DEFAULT 0,
    UNIQUE (project_id, stream, version, release, arch, variant)
);

-- `generation` is 1 + the largest generation of the commit's parents: ordering by it is a
-- topological (git) order, kept at ingest so the grid never walks the history.
CREATE TABLE commits (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    sha TEXT NOT NULL,
    subject TEXT,
    author TEXT,
    committed_at INTEGER,
    generation INTEGER NOT NULL,
    parents_known INTEGER NOT NULL DEFAULT 0,
    -- The project revision that last changed the row or its place in git order.
    revision INTEGER NOT NULL DEFAULT 0,
    UNIQUE (project_id, sha)
);
CREATE INDEX commits_git_order ON commits (project_id, generation DESC, committed_at DESC, id DESC);
CREATE INDEX commits_by_revision ON commits (project_id, revision);

CREATE TABLE commit_parents (
    commit_id INTEGER NOT NULL REFERENCES commits(id),
    parent_sha TEXT NOT NULL,
    PRIMARY KEY (commit_id, parent_sha)
);
CREATE INDEX commit_parents_by_parent ON commit_parents (parent_sha);

CREATE TABLE reports (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    kernel_id INTEGER NOT NULL REFERENCES kernels(id),
    commit_id INTEGER NOT NULL REFERENCES commits(id),
    runner_id INTEGER NOT NULL REFERENCES runners(id),
    run_id TEXT NOT NULL,
    status TEXT NOT NULL,
    stages TEXT NOT NULL,
    metadata TEXT NOT NULL,
    started_at INTEGER NOT NULL,
    finished_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    -- For failing reports: the first meaningful error of the log, normalised, and its context.
    signature TEXT,
    signature_hash TEXT,
    error_line TEXT,
    excerpt TEXT,
    UNIQUE (runner_id, run_id)
);
CREATE INDEX reports_by_cell ON reports (kernel_id, commit_id);
CREATE INDEX reports_by_signature ON reports (project_id, signature_hash);

-- Logs are stored deflate-compressed, clipped to head + tail over the configured limit.
CREATE TABLE logs (
    report_id INTEGER PRIMARY KEY REFERENCES reports(id),
    compressed BLOB NOT NULL,
    original_bytes INTEGER NOT NULL,
    cut_bytes INTEGER NOT NULL
);

-- One row per (kernel, commit) that has reports, maintained at ingest: the grid reads only this.
CREATE TABLE cells (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    kernel_id INTEGER NOT NULL REFERENCES kernels(id),
    commit_id INTEGER NOT NULL REFERENCES commits(id),
    n_pass INTEGER NOT NULL,
    n_fail INTEGER NOT NULL,
    n_error INTEGER NOT NULL,
    n_skip INTEGER NOT NULL,
    latest_status TEXT NOT NULL,
    latest_report_id INTEGER NOT NULL,
    latest_finished_at INTEGER NOT NULL,
    latest_signature TEXT,
    first_fail_at INTEGER,
    first_pass_at INTEGER,
    -- The project revision that last changed the cell: readers refresh only what changed.
    revision INTEGER NOT NULL DEFAULT 0,
    -- Clustered by commit: the grid reads the cells of one page of commits.
    PRIMARY KEY (commit_id, kernel_id)
) WITHOUT ROWID;
CREATE INDEX cells_by_kernel ON cells (kernel_id);
CREATE INDEX cells_by_revision ON cells (project_id, revision);

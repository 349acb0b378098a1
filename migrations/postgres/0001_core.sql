-- Trellis core schema (PostgreSQL). Only BIGINT/TEXT/BYTEA column types: sqlx's `Any` driver decodes
-- nothing else. Times are epoch milliseconds.

CREATE TABLE projects (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    description TEXT NOT NULL DEFAULT '',
    demo BIGINT NOT NULL DEFAULT 0,
    -- Bumped once by every transaction that changes the project's results or history; the rows
    -- it changes carry the new value, so readers can refresh just what changed since they looked.
    revision BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);

CREATE TABLE runners (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    token_prefix TEXT NOT NULL UNIQUE,
    token_hash TEXT NOT NULL,
    enabled BIGINT NOT NULL DEFAULT 1,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT
);

CREATE TABLE kernels (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    stream TEXT NOT NULL,
    version TEXT NOT NULL,
    release TEXT NOT NULL,
    arch TEXT NOT NULL,
    variant TEXT NOT NULL,
    first_seen_at BIGINT NOT NULL,
    -- The project revision that added the row (see projects.revision).
    revision BIGINT NOT NULL DEFAULT 0,
    UNIQUE (project_id, stream, version, release, arch, variant)
);

-- `generation` is 1 + the largest generation of the commit's parents: ordering by it is a
-- topological (git) order, kept at ingest so the grid never walks the history.
CREATE TABLE commits (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    sha TEXT NOT NULL,
    subject TEXT,
    author TEXT,
    committed_at BIGINT,
    generation BIGINT NOT NULL,
    parents_known BIGINT NOT NULL DEFAULT 0,
    -- The project revision that last changed the row or its place in git order.
    revision BIGINT NOT NULL DEFAULT 0,
    UNIQUE (project_id, sha)
);
CREATE INDEX commits_git_order ON commits (project_id, generation DESC, committed_at DESC, id DESC);
CREATE INDEX commits_by_revision ON commits (project_id, revision);

CREATE TABLE commit_parents (
    commit_id BIGINT NOT NULL REFERENCES commits(id),
    parent_sha TEXT NOT NULL,
    PRIMARY KEY (commit_id, parent_sha)
);
CREATE INDEX commit_parents_by_parent ON commit_parents (parent_sha);

CREATE TABLE reports (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    kernel_id BIGINT NOT NULL REFERENCES kernels(id),
    commit_id BIGINT NOT NULL REFERENCES commits(id),
    runner_id BIGINT NOT NULL REFERENCES runners(id),
    run_id TEXT NOT NULL,
    status TEXT NOT NULL,
    stages TEXT NOT NULL,
    metadata TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    finished_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL,
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
    report_id BIGINT PRIMARY KEY REFERENCES reports(id),
    compressed BYTEA NOT NULL,
    original_bytes BIGINT NOT NULL,
    cut_bytes BIGINT NOT NULL
);

-- One row per (kernel, commit) that has reports, maintained at ingest: the grid reads only this.
CREATE TABLE cells (
    project_id BIGINT NOT NULL REFERENCES projects(id),
    kernel_id BIGINT NOT NULL REFERENCES kernels(id),
    commit_id BIGINT NOT NULL REFERENCES commits(id),
    n_pass BIGINT NOT NULL,
    n_fail BIGINT NOT NULL,
    n_error BIGINT NOT NULL,
    n_skip BIGINT NOT NULL,
    latest_status TEXT NOT NULL,
    latest_report_id BIGINT NOT NULL,
    latest_finished_at BIGINT NOT NULL,
    latest_signature TEXT,
    first_fail_at BIGINT,
    first_pass_at BIGINT,
    -- The project revision that last changed the cell: readers refresh only what changed.
    revision BIGINT NOT NULL DEFAULT 0,
    -- Clustered by commit: the grid reads the cells of one page of commits.
    PRIMARY KEY (commit_id, kernel_id)
);
CREATE INDEX cells_by_kernel ON cells (kernel_id);
CREATE INDEX cells_by_revision ON cells (project_id, revision);

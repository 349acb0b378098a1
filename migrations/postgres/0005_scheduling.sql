-- Scheduling: who may post what, kernels found in distribution repositories, work leases, and
-- the counters the coverage page reads. Times are epoch milliseconds.

-- The module's git web URL, shown on the project's pages (commit links use commit_url).
ALTER TABLE projects ADD COLUMN git_url TEXT;

-- What a runner may post: a project, and within it one stream and one arch or any ('' = any).
-- A runner with no scope row may post nothing.
CREATE TABLE runner_scopes (
    runner_id BIGINT NOT NULL REFERENCES runners(id),
    project_id BIGINT NOT NULL REFERENCES projects(id),
    stream TEXT NOT NULL DEFAULT '',
    arch TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (runner_id, project_id, stream, arch)
);
-- Runners made before scopes could post to every project; they keep that for the projects that
-- exist now, and an administrator narrows it.
INSERT INTO runner_scopes (runner_id, project_id, stream, arch)
    SELECT r.id, p.id, '', '' FROM runners r CROSS JOIN projects p;

-- Health, kept at ingest and at every call so the coverage page never scans reports.
ALTER TABLE runners ADD COLUMN last_contact_at BIGINT;
ALTER TABLE runners ADD COLUMN reports_total BIGINT NOT NULL DEFAULT 0;
ALTER TABLE runners ADD COLUMN reports_error BIGINT NOT NULL DEFAULT 0;
UPDATE runners SET
    reports_total = (SELECT COUNT(*) FROM reports WHERE reports.runner_id = runners.id),
    reports_error = (SELECT COUNT(*) FROM reports WHERE reports.runner_id = runners.id AND reports.status = 'error'),
    last_contact_at = last_seen_at;

-- When Trellis first knew a commit: a new head gives runners time to build it before head
-- coverage counts as low. NULL for commits known before.
ALTER TABLE commits ADD COLUMN known_at BIGINT;

-- A dnf/yum repository whose packages named `package` are kernels of `stream`/`arch`.
CREATE TABLE kernel_sources (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    url TEXT NOT NULL,
    package TEXT NOT NULL,
    stream TEXT NOT NULL,
    arch TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- The last poll, successful or not, and the last that read the metadata through.
    checked_at BIGINT,
    succeeded_at BIGINT,
    -- Why the last poll failed; NULL once one succeeds.
    error TEXT,
    failing_since BIGINT,
    -- Conditional request state of repomd.xml, and the primary metadata last read.
    etag TEXT,
    last_modified TEXT,
    primary_checksum TEXT,
    packages BIGINT NOT NULL DEFAULT 0,
    UNIQUE (project_id, url, package, stream, arch)
);

-- Where a kernel came from, when a repository told: its package's build time, location and
-- checksum ('sha256:<hex>').
ALTER TABLE kernels ADD COLUMN source_id BIGINT REFERENCES kernel_sources(id);
ALTER TABLE kernels ADD COLUMN build_time BIGINT;
ALTER TABLE kernels ADD COLUMN package_location TEXT;
ALTER TABLE kernels ADD COLUMN package_checksum TEXT;

-- A cell a runner is working on. The unique cell is what keeps two runners off one cell; a
-- lease past expires_at is offered again.
CREATE TABLE leases (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    kernel_id BIGINT NOT NULL REFERENCES kernels(id),
    commit_id BIGINT NOT NULL REFERENCES commits(id),
    runner_id BIGINT NOT NULL REFERENCES runners(id),
    reason TEXT NOT NULL,
    leased_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    UNIQUE (kernel_id, commit_id)
);
CREATE INDEX leases_by_project ON leases (project_id, expires_at);

-- CI health problems (a stale runner, a failing source, low head coverage), one row per time a
-- problem is raised; `cleared_at` is set when it goes. `problem` is its JSON as raised.
CREATE TABLE health_issues (
    id BIGSERIAL PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    key TEXT NOT NULL,
    problem TEXT NOT NULL,
    raised_at BIGINT NOT NULL,
    cleared_at BIGINT
);
CREATE INDEX health_issues_open ON health_issues (project_id, cleared_at);

-- Their events; ids come from `event_clock`, like breakage events', so feeds order both.
CREATE TABLE health_events (
    id BIGINT PRIMARY KEY,
    project_id BIGINT NOT NULL REFERENCES projects(id),
    issue_id BIGINT NOT NULL REFERENCES health_issues(id),
    kind TEXT NOT NULL,
    at BIGINT NOT NULL,
    uuid TEXT NOT NULL UNIQUE,
    UNIQUE (issue_id, kind)
);
CREATE INDEX health_events_by_project ON health_events (project_id, id);

-- A mail or webhook about a health event (event_id is then NULL).
ALTER TABLE outbox ADD COLUMN health_event_id BIGINT REFERENCES health_events(id);
CREATE UNIQUE INDEX outbox_health ON outbox (subscription_id, health_event_id);

-- Telling people: breakages with one identity for life, their events, subscriptions and the
-- outbox of mails and webhooks (SQLite). Times are epoch milliseconds.

-- A breakage as announced. Recomputation finds it again by its first bad cell (kernel uname and
-- commit sha), which may move earlier; `opened_*` keeps where it was first seen.
CREATE TABLE breakages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    stream TEXT NOT NULL,
    opened_kernel TEXT NOT NULL,
    opened_commit TEXT NOT NULL,
    first_bad_kernel TEXT NOT NULL,
    first_bad_commit TEXT NOT NULL,
    open INTEGER NOT NULL,
    -- The breakage as last computed (JSON), for feeds and mails.
    description TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX breakages_by_project ON breakages (project_id, id);

-- Ids come from `event_clock`, taken under its row lock: they are committed in increasing order,
-- so a reader following `after=ID` never misses one.
CREATE TABLE breakage_events (
    id INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    breakage_id INTEGER NOT NULL REFERENCES breakages(id),
    kind TEXT NOT NULL,
    at INTEGER NOT NULL,
    uuid TEXT NOT NULL UNIQUE,
    UNIQUE (breakage_id, kind)
);
CREATE INDEX breakage_events_by_project ON breakage_events (project_id, id);

CREATE TABLE event_clock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    last_event_id INTEGER NOT NULL
);
INSERT INTO event_clock (id, last_event_id) VALUES (1, 0);

-- The project revision whose breakages have been announced; -1 until the first time.
ALTER TABLE projects ADD COLUMN announced_revision INTEGER NOT NULL DEFAULT -1;

-- A mail address or a webhook URL, and what it follows. NULL filters mean "any".
CREATE TABLE subscriptions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id INTEGER REFERENCES projects(id),
    stream TEXT,
    attribution TEXT,
    email TEXT,
    webhook_url TEXT,
    -- Signs webhook bodies (HMAC-SHA256).
    secret TEXT,
    confirmed INTEGER NOT NULL,
    -- Confirms and unsubscribes; in every mail's links.
    token TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

-- Mails and webhooks to deliver. Rows are written in the same transaction as their event and
-- marked sent once delivered; `due_at` holds back settling mails and retries.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    subscription_id INTEGER NOT NULL REFERENCES subscriptions(id) ON DELETE CASCADE,
    -- NULL for a subscription's confirmation mail.
    event_id INTEGER REFERENCES breakage_events(id),
    due_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    sent_at INTEGER,
    -- Set when the receiver refused it for good (an unknown address, a 4xx webhook answer).
    gave_up_at INTEGER,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX outbox_due ON outbox (sent_at, due_at);

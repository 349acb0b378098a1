-- Release tags pointing at commits (PostgreSQL), shown in grid column headers and on commit
-- pages. Tags are only ever added: a push that names a tag again changes nothing.
CREATE TABLE commit_tags (
    commit_id BIGINT NOT NULL REFERENCES commits(id),
    tag TEXT NOT NULL,
    PRIMARY KEY (commit_id, tag)
);

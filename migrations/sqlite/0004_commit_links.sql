-- Where a project's commits are browsed upstream: a URL with `{sha}` in it (cgit, GitHub,
-- GitLab), set with `trellis project set-commit-url`. NULL: no upstream link.
ALTER TABLE projects ADD COLUMN commit_url TEXT;

-- The other distinct errors of a failing report's log, normalised, one per line (signatures
-- hold no control characters): the signature page's "also seen together with". NULL for
-- reports stored before, and for logs with one error.
ALTER TABLE reports ADD COLUMN other_errors TEXT;

//! Keeping job logs bounded: a log over the limit keeps its head and its tail (where kbuild prints
//! the first error and the final `make` status) with a visible marker of what was cut.

/// The largest index `<= i` that is a char boundary of `s`.
fn floor_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Build logs carry binary noise; a NUL is kept as a visible `␀` (U+2400), which every
/// backend stores and every page shows.
pub fn make_nul_visible(log: &str) -> String {
    log.replace('\0', "\u{2400}")
}

/// A log as stored: the text kept and how many bytes of the original were cut.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClippedLog {
    pub text: String,
    pub original_bytes: usize,
    pub cut_bytes: usize,
}

/// Clips `log` to about `limit` bytes (half head, half tail), marking the cut.
pub fn clip(log: &str, limit: usize) -> ClippedLog {
    if log.len() <= limit {
        return ClippedLog {
            text: log.to_string(),
            original_bytes: log.len(),
            cut_bytes: 0,
        };
    }
    let head_end = floor_boundary(log, limit / 2);
    let tail_start = floor_boundary(log, log.len() - limit / 2);
    let cut = tail_start - head_end;
    let lines_cut = log[head_end..tail_start].matches('\n').count();
    let text = format!(
        "{}\n\n[trellis: {cut} bytes ({lines_cut} lines) cut from the middle of this {total}-byte log; the first {head} and the last {tail} bytes are kept]\n\n{}",
        &log[..head_end],
        &log[tail_start..],
        total = log.len(),
        head = head_end,
        tail = log.len() - tail_start,
    );
    ClippedLog {
        text,
        original_bytes: log.len(),
        cut_bytes: cut,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_is_kept_visible() {
        assert_eq!(make_nul_visible("a\0b\0"), "a\u{2400}b\u{2400}");
    }

    #[test]
    fn short_logs_are_kept_whole() {
        let c = clip("make: ok\n", 100);
        assert_eq!((c.text.as_str(), c.cut_bytes), ("make: ok\n", 0));
    }

    #[test]
    fn long_logs_keep_head_and_tail_with_a_marker() {
        let log: String = (0..1000).map(|i| format!("line {i}\n")).collect();
        let c = clip(&log, 200);
        assert!(c.text.starts_with("line 0\nline 1\n"));
        assert!(c.text.ends_with("line 999\n"));
        assert!(c.text.contains("cut from the middle"));
        assert_eq!(c.original_bytes, log.len());
        assert_eq!(c.cut_bytes, log.len() - 200);
        assert!(c.text.len() < 400);
    }

    #[test]
    fn never_splits_a_character() {
        let log = "é".repeat(500);
        let c = clip(&log, 101);
        assert!(c.text.starts_with("éé") && c.text.ends_with("éé"));
        assert!(c.cut_bytes > 0);
    }
}

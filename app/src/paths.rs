//! URLs of the pages, built in one place. Every path segment, query value and fragment goes
//! through [`encode`], so no page builds a URL by hand.

use trellis_domain::{GridFilter, Kernel};

/// Percent-encodes everything but RFC 3986's unreserved characters and `keep`.
fn encode(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) || keep.contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A path segment or fragment (kernel versions may hold `^` or `/`). `+` stays readable
/// (`...x86_64+debug`): it is literal in a path.
fn segment(s: &str) -> String {
    encode(s, b"+")
}

/// A query value. `+` is encoded: form decoding reads a literal `+` as a space.
fn query_value(s: &str) -> String {
    encode(s, b"")
}

/// `?k=v&...` from the pairs, or nothing when there are none.
fn query(pairs: &[(&str, String)]) -> String {
    let joined: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{k}={}", query_value(v)))
        .collect();
    if joined.is_empty() {
        String::new()
    } else {
        format!("?{}", joined.join("&"))
    }
}

pub fn project(project: &str) -> String {
    format!("/p/{}", segment(project))
}

/// The query of the grid's page `page` (0 = newest commits) under `filter`. The island uses it
/// alone, on the path the browser is at.
pub fn grid_query(filter: &GridFilter, page: u32) -> String {
    let mut pairs = filter.to_pairs();
    if page > 0 {
        pairs.push(("page", page.to_string()));
    }
    query(&pairs)
}

/// The grid's page `page` under `filter`: the pager's links.
pub fn grid_page(name: &str, filter: &GridFilter, page: u32) -> String {
    format!("{}{}", project(name), grid_query(filter, page))
}

/// The grid's live stream. `since` asks for the changes after that revision: a stream the page
/// opens again (after the browser gave up on one, or a hidden tab) says where it stands.
pub fn live(project: &str, since: Option<i64>) -> String {
    let since: Vec<(&str, String)> = since
        .map(|s| ("since", s.to_string()))
        .into_iter()
        .collect();
    format!("/p/{}/live{}", segment(project), query(&since))
}

pub fn breakages(project: &str) -> String {
    format!("/p/{}/breakages", segment(project))
}

/// How far the project's CI can be trusted.
pub fn coverage(project: &str) -> String {
    format!("/p/{}/coverage", segment(project))
}

/// The coverage page with the kernels that have no result on `sha` or a newer commit.
pub fn coverage_since(project: &str, sha: &str) -> String {
    format!(
        "{}{}",
        coverage(project),
        query(&[("since", sha.to_string())])
    )
}

/// One breakage's card on the breakages page.
pub fn breakage(project: &str, id: &str) -> String {
    format!("{}#{}", breakages(project), segment(id))
}

pub fn kernel(project: &str, kernel: &Kernel) -> String {
    format!(
        "/p/{}/kernel/{}/{}",
        segment(project),
        segment(&kernel.stream),
        segment(&kernel.uname())
    )
}

pub fn commit(project: &str, sha: &str) -> String {
    format!("/p/{}/commit/{}", segment(project), segment(sha))
}

/// The commit search, for `q` (none: the empty form).
pub fn commit_search(project: &str, q: &str) -> String {
    let q: Vec<(&str, String)> = (!q.is_empty())
        .then(|| ("q", q.to_string()))
        .into_iter()
        .collect();
    format!("/p/{}/commits{}", segment(project), query(&q))
}

pub fn signature(project: &str, signature: &str) -> String {
    format!(
        "/p/{}/signature/{}",
        segment(project),
        segment(&trellis_domain::signature::signature_id(signature))
    )
}

/// `/p/{project}/cell/{stream}/{uname -r}/{sha}`: readable, and stable across databases.
pub fn cell(project: &str, kernel: &Kernel, sha: &str) -> String {
    KernelCells::new(project, kernel).cell(sha)
}

/// The cell URLs of one kernel's row: its part of the path is encoded once, not once per cell.
pub struct KernelCells {
    prefix: String,
}

impl KernelCells {
    pub fn new(project: &str, kernel: &Kernel) -> KernelCells {
        KernelCells {
            prefix: format!(
                "/p/{}/cell/{}/{}/",
                segment(project),
                segment(&kernel.stream),
                segment(&kernel.uname())
            ),
        }
    }

    pub fn cell(&self, sha: &str) -> String {
        format!("{}{}", self.prefix, segment(sha))
    }
}

/// One report's log as a plain-text download.
pub fn report_log(project: &str, kernel: &Kernel, sha: &str, report: i64) -> String {
    format!("{}/reports/{report}/log.txt", cell(project, kernel, sha))
}

/// The id of one line of a report's log on the cell page (`r12-L40`)...
pub fn log_line_id(report: i64, line: usize) -> String {
    format!("r{report}-L{line}")
}

/// ...and the link to it.
pub fn log_line(report: i64, line: usize) -> String {
    format!("#{}", log_line_id(report, line))
}

/// Confirms a subscription made with the public form (the link of its confirmation mail).
pub fn confirm(token: &str) -> String {
    format!("/subscriptions/{}/confirm", segment(token))
}

/// Unsubscribes (the link and the one-click `List-Unsubscribe` of every mail).
pub fn unsubscribe(token: &str) -> String {
    format!("/subscriptions/{}/unsubscribe", segment(token))
}

/// Where the public subscribe form posts.
pub fn subscribe(project: &str) -> String {
    format!("{}/subscribe", self::project(project))
}

/// A feed's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FeedFormat {
    Atom,
    Rss,
}

impl FeedFormat {
    pub fn extension(self) -> &'static str {
        match self {
            FeedFormat::Atom => "atom",
            FeedFormat::Rss => "rss",
        }
    }
}

/// The query of a feed under `filter`: the island puts it on the feed links as filters change.
pub fn feed_query(filter: &trellis_domain::events::FeedFilter) -> String {
    query(&filter.to_pairs())
}

/// A project's breakage feed under a filter, or every project's (`project` `None`).
pub fn feed(project: Option<&str>, format: FeedFormat, pairs: &[(&str, String)]) -> String {
    let base = match project {
        Some(p) => format!("{}/feed.{}", self::project(p), format.extension()),
        None => format!("/feed.{}", format.extension()),
    };
    format!("{base}{}", query(pairs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_paths_are_readable_and_escaped() {
        let k = Kernel::parse("4.18.0-553.el8_10.x86_64+debug", None, Some("rhel-8")).unwrap();
        assert_eq!(
            cell("wg", &k, "ab"),
            "/p/wg/cell/rhel-8/4.18.0-553.el8_10.x86_64+debug/ab"
        );
        assert_eq!(segment("1.0^git1"), "1.0%5Egit1");
    }

    #[test]
    fn the_encoder_keeps_only_unreserved_bytes_and_what_the_part_allows() {
        assert_eq!(encode("aZ09-._~", b""), "aZ09-._~");
        assert_eq!(
            encode("a b+c&d#e/f?g=h%i", b""),
            "a%20b%2Bc%26d%23e%2Ff%3Fg%3Dh%25i"
        );
        assert_eq!(encode("a b+c", b"+"), "a%20b+c");
        // UTF-8 is encoded byte by byte.
        assert_eq!(encode("é", b""), "%C3%A9");
        assert_eq!(segment("x86_64+debug/1 #2"), "x86_64+debug%2F1%20%232");
        assert_eq!(
            query_value("x86_64+debug & more"),
            "x86_64%2Bdebug%20%26%20more"
        );
    }

    #[test]
    fn every_segment_of_a_path_is_escaped() {
        let k = Kernel::parse("4.18.0-553.el8_10.x86_64+debug", None, Some("rhel-8")).unwrap();
        assert_eq!(project("a b"), "/p/a%20b");
        assert_eq!(breakages("a#b"), "/p/a%23b/breakages");
        assert_eq!(coverage("a b"), "/p/a%20b/coverage");
        assert_eq!(coverage_since("wg", "ab&c"), "/p/wg/coverage?since=ab%26c");
        assert_eq!(
            kernel("a/b", &k),
            "/p/a%2Fb/kernel/rhel-8/4.18.0-553.el8_10.x86_64+debug"
        );
        assert_eq!(commit("wg", "ab?c"), "/p/wg/commit/ab%3Fc");
        assert_eq!(live("a b", None), "/p/a%20b/live");
        assert_eq!(live("wg", Some(7)), "/p/wg/live?since=7");
        assert_eq!(
            signature("wg", "error: x"),
            format!(
                "/p/wg/signature/{}",
                trellis_domain::signature::signature_id("error: x")
            )
        );
        let row = KernelCells::new("w g", &k);
        assert_eq!(
            row.cell("ab"),
            "/p/w%20g/cell/rhel-8/4.18.0-553.el8_10.x86_64+debug/ab"
        );
        assert_eq!(row.cell("a&b"), cell("w g", &k, "a&b"));
        assert_eq!(
            report_log("wg", &k, "ab", 7),
            "/p/wg/cell/rhel-8/4.18.0-553.el8_10.x86_64+debug/ab/reports/7/log.txt"
        );
        assert_eq!(log_line(7, 40), "#r7-L40");
    }

    #[test]
    fn breakage_links_escape_the_id_in_the_fragment() {
        assert_eq!(
            breakage("wg", "el8-kernel-4.18.0-553.el8.x86_64+debug"),
            "/p/wg/breakages#el8-kernel-4.18.0-553.el8.x86_64+debug"
        );
        assert_eq!(breakage("wg", "a b#c"), "/p/wg/breakages#a%20b%23c");
    }

    #[test]
    fn grid_pages_carry_the_filter_with_every_value_escaped() {
        let plain = GridFilter::default();
        assert_eq!(grid_query(&plain, 0), "");
        assert_eq!(grid_page("wg", &plain, 0), "/p/wg");
        assert_eq!(grid_page("wg", &plain, 2), "/p/wg?page=2");
        let filter = GridFilter {
            streams: vec!["el7".into(), "a&b".into()],
            arch: Some("x86 64".into()),
            failing: true,
            q: "+debug#1/2".into(),
            every_commit: false,
        };
        assert_eq!(
            grid_page("w g", &filter, 1),
            "/p/w%20g?stream=el7&stream=a%26b&arch=x86%2064&failing=1&q=%2Bdebug%231%2F2&page=1"
        );
        assert_eq!(
            grid_query(&filter, 0),
            "?stream=el7&stream=a%26b&arch=x86%2064&failing=1&q=%2Bdebug%231%2F2"
        );
    }
}

//! Finding a commit by what a maintainer remembers of it: the start of its sha, words of its
//! subject, or its release tag. The grid's search box filters kernel rows (by name and error
//! text); commits have their own search, so a query never hides rows because it named a commit.
//! Storage matches with SQL `LIKE` patterns built here.

use crate::view::{Project, StoredCommit};
use serde::{Deserialize, Serialize};

/// A commit search as typed (`?q=`), trimmed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitSearch {
    pub q: String,
}

/// Fewer hex digits than this name too many commits to be meant as a sha.
const MIN_SHA_PREFIX: usize = 4;
/// Longer queries are clipped: no subject or tag is searched for by more.
const MAX_QUERY: usize = 200;

impl CommitSearch {
    /// The commits a search lists at most, newest first.
    pub const LIMIT: usize = 50;

    /// The search from URL query pairs: the last `q` wins; others are ignored.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> CommitSearch {
        let q = pairs
            .into_iter()
            .filter(|(k, _)| *k == "q")
            .last()
            .map(|(_, v)| v.trim().chars().take(MAX_QUERY).collect::<String>())
            .unwrap_or_default();
        CommitSearch { q }
    }

    /// The `LIKE` pattern of the shas starting with the query, when it is 4 to 40 hex digits.
    pub fn sha_pattern(&self) -> Option<String> {
        let hex = (MIN_SHA_PREFIX..=40).contains(&self.q.len())
            && self.q.bytes().all(|b| b.is_ascii_hexdigit());
        hex.then(|| format!("{}%", self.q.to_ascii_lowercase()))
    }

    /// The `LIKE` pattern (with `\` as its escape) of lowercase text containing the query: a
    /// subject or a tag, lowered the same way before matching.
    pub fn text_pattern(&self) -> String {
        let mut pattern = String::from("%");
        for c in self.q.to_lowercase().chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        pattern
    }
}

/// The commits a search found: the newest [`CommitSearch::LIMIT`], in git order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitMatches {
    pub project: Project,
    pub search: CommitSearch,
    pub commits: Vec<StoredCommit>,
    /// More commits match than are listed.
    pub more: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn search(q: &str) -> CommitSearch {
        CommitSearch::from_pairs([("x", "y"), ("q", "ignored"), ("q", q)])
    }

    #[test]
    fn a_query_of_hex_digits_is_also_a_sha_prefix() {
        assert_eq!(
            search(" 3D3C92b ").sha_pattern().as_deref(),
            Some("3d3c92b%")
        );
        assert_eq!(search("3d3").sha_pattern(), None);
        assert_eq!(search("v1.0.2022").sha_pattern(), None);
        assert_eq!(search(&"a".repeat(41)).sha_pattern(), None);
        assert_eq!(search("").q, "");
    }

    #[test]
    fn text_is_lowered_and_like_wildcards_are_literal() {
        assert_eq!(
            search("Compat: 100%_done\\").text_pattern(),
            "%compat: 100\\%\\_done\\\\%"
        );
        assert_eq!(search("V1.0.20220627").text_pattern(), "%v1.0.20220627%");
        assert_eq!(search(&"x".repeat(300)).q.len(), 200);
    }
}

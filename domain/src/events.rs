//! Breakage events: the one source of every notification (feeds, mails, webhooks).
//!
//! Breakages are recomputed from the grid, and a recomputation may describe the same breakage
//! differently: a bisect report moves its first bad commit earlier, an older kernel reported
//! later moves its first bad kernel, more kernels join it, a signature appears. Telling people
//! needs one identity for a breakage's whole life, so that each one is announced `opened` once
//! and `fixed` once. [`identify`] finds the announced breakage each computed one continues.

use crate::breakage::{Breakage, BreakageFilter};
use crate::grid::{GridFilter, QueryError};
use crate::view::BreakageDetail;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// What happened to a breakage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    Opened,
    Fixed,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Opened => "opened",
            EventKind::Fixed => "fixed",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        [EventKind::Opened, EventKind::Fixed]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One event, as the events API, feeds and mails read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakageEvent {
    /// Increases with every event, in the order they were recorded (across projects).
    pub id: i64,
    pub kind: EventKind,
    pub project: String,
    /// Epoch milliseconds when Trellis saw it happen.
    pub at: i64,
    /// Epoch milliseconds of the last change to what the event describes (the breakage's
    /// kernels, bisect hints or signature); at least `at`.
    pub updated_at: i64,
    /// Stable identifier of the event (feed entry id, mail Message-ID).
    pub uuid: String,
    /// The breakage as last computed (its `commits` list left out: `failing_cells` counts them).
    pub breakage: BreakageDetail,
}

/// Most events one request reads.
pub const MAX_EVENTS: i64 = 500;

/// Which events to read, from `?after=ID&limit=N`: those recorded after event `after` (0: from
/// the first), at most `limit` (default 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventPage {
    pub after: i64,
    pub limit: i64,
}

impl EventPage {
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<EventPage, QueryError> {
        let mut page = EventPage {
            after: 0,
            limit: 100,
        };
        for (k, v) in pairs {
            match k {
                "after" => {
                    page.after = v
                        .parse()
                        .ok()
                        .filter(|a| *a >= 0)
                        .ok_or_else(|| QueryError {
                            param: "after",
                            value: v.to_string(),
                            expected: "use an event id (0 for the first events)",
                        })?
                }
                "limit" => {
                    page.limit = v
                        .parse()
                        .ok()
                        .filter(|l| (1..=MAX_EVENTS).contains(l))
                        .ok_or_else(|| QueryError {
                            param: "limit",
                            value: v.to_string(),
                            expected: "use a number of events from 1 to 500",
                        })?
                }
                _ => {}
            }
        }
        Ok(page)
    }
}

/// Which events a feed shows: a breakage filter (`stream`, `attribution`, `state`) and a part
/// of a kernel name (`kernel=553` keeps breakages that fail on a kernel whose name holds it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedFilter {
    pub breakages: BreakageFilter,
    pub kernel: Option<String>,
}

impl FeedFilter {
    pub fn from_pairs<'a>(
        pairs: impl IntoIterator<Item = (&'a str, &'a str)> + Clone,
    ) -> Result<FeedFilter, QueryError> {
        Ok(FeedFilter {
            breakages: BreakageFilter::from_pairs(pairs.clone())?,
            kernel: pairs
                .into_iter()
                .filter(|(k, v)| *k == "kernel" && !v.is_empty())
                .map(|(_, v)| v.to_string())
                .last(),
        })
    }

    /// The query pairs that give this filter back (feed links, the Subscribe control).
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        let mut pairs = self.breakages.to_pairs();
        if let Some(k) = &self.kernel {
            pairs.push(("kernel", k.clone()));
        }
        pairs
    }

    /// The feed of what a grid view shows: its stream when it shows one, and its kernel search.
    pub fn of_grid(grid: &GridFilter) -> FeedFilter {
        FeedFilter {
            breakages: BreakageFilter {
                stream: match grid.streams.as_slice() {
                    [one] => Some(one.clone()),
                    _ => None,
                },
                ..BreakageFilter::default()
            },
            kernel: (!grid.q.is_empty()).then(|| grid.q.clone()),
        }
    }

    /// Keeps events of breakages the filter names; `kernel` matches like the grid's search
    /// (any part of a kernel name, in any letter case).
    pub fn keeps(&self, e: &BreakageEvent) -> bool {
        let b = &e.breakage.breakage;
        let kernel = self.kernel.as_ref().map(|k| k.to_lowercase());
        self.breakages.keeps(b)
            && kernel.is_none_or(|k| b.kernels.iter().any(|u| u.to_lowercase().contains(&k)))
    }
}

/// A breakage as announced: its lifelong id and where it was last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub id: i64,
    pub stream: String,
    /// The first bad cell (kernel uname, commit sha) when it opened, and as last computed.
    pub opened_cell: (String, String),
    pub first_bad: (String, String),
    pub open: bool,
}

/// Which announced breakage each computed one continues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identified {
    /// Per computed breakage, in order: the announced breakage it continues, or `None` for a
    /// new one.
    pub continues: Vec<Option<i64>>,
    /// Open announced breakages that no computed one continues: their failures are gone (for
    /// example a passing report made their cells flaky).
    pub vanished: Vec<i64>,
}

/// Matches computed breakages to announced ones.
///
/// A computed breakage continues an announced one of its stream when it holds that one's first
/// bad cell (best: as its own first bad cell) or the cell it opened on. A breakage that fails
/// again after its fix is a new breakage, so an open computed breakage only continues an open
/// announced one; a fixed computed breakage prefers an open announced one (that is its fix),
/// then the most recent fixed one. Each side is matched at most once, best matches first.
pub fn identify(tracked: &[Tracked], computed: &[Breakage]) -> Identified {
    // Kernels and commits of each computed breakage, built only for streams with announcements.
    let streams: HashSet<&str> = tracked.iter().map(|t| t.stream.as_str()).collect();
    let cells: Vec<Option<(HashSet<&str>, HashSet<&str>)>> = computed
        .iter()
        .map(|b| {
            streams.contains(b.stream.as_str()).then(|| {
                (
                    b.kernels.iter().map(String::as_str).collect(),
                    b.commits.iter().map(String::as_str).collect(),
                )
            })
        })
        .collect();
    let holds = |bi: usize, (kernel, commit): &(String, String)| {
        cells[bi]
            .as_ref()
            .is_some_and(|(ks, cs)| ks.contains(kernel.as_str()) && cs.contains(commit.as_str()))
    };

    // (closeness, open announced first, oldest announced first, computed index, announced index)
    let mut candidates = Vec::new();
    for (bi, b) in computed.iter().enumerate() {
        for (ti, t) in tracked.iter().enumerate() {
            if t.stream != b.stream || (b.open && !t.open) {
                continue;
            }
            let closeness =
                if t.first_bad == (b.first_bad_kernel.clone(), b.first_bad_commit.clone()) {
                    3
                } else if holds(bi, &t.first_bad) {
                    2
                } else if holds(bi, &t.opened_cell) {
                    1
                } else {
                    continue;
                };
            candidates.push((closeness, t.open, std::cmp::Reverse(t.id), bi, ti));
        }
    }
    candidates.sort_by(|a, b| (b.0, b.1, b.2).cmp(&(a.0, a.1, a.2)).then(a.3.cmp(&b.3)));
    let mut continues = vec![None; computed.len()];
    let mut taken = vec![false; tracked.len()];
    for (_, _, std::cmp::Reverse(id), bi, ti) in candidates {
        if continues[bi].is_none() && !taken[ti] {
            continues[bi] = Some(id);
            taken[ti] = true;
        }
    }
    let vanished = tracked
        .iter()
        .zip(&taken)
        .filter(|(t, taken)| t.open && !**taken)
        .map(|(t, _)| t.id)
        .collect();
    Identified {
        continues,
        vanished,
    }
}

/// Whether an announced breakage still says what a computed one would: every field but the id
/// (computed ones have none yet) and the commits (announcements leave them out). Fields are
/// named one by one, so a new field of `Breakage` has to be considered here.
pub fn describes(announced: &Breakage, computed: &Breakage) -> bool {
    let Breakage {
        id: _,
        commits: _,
        stream,
        stream_label,
        attribution,
        first_bad_commit,
        first_bad_kernel,
        start_kernel_id,
        start_commit_id,
        kernels,
        failing_cells,
        open,
        fixed_by_commit,
        fixed_by_kernel,
        opened_at,
        fixed_at,
        time_to_fix_ms,
        signature,
        commit_bisect,
        kernel_bisect,
        next_cells,
        seen_before,
    } = announced;
    *stream == computed.stream
        && *stream_label == computed.stream_label
        && *attribution == computed.attribution
        && *first_bad_commit == computed.first_bad_commit
        && *first_bad_kernel == computed.first_bad_kernel
        && *start_kernel_id == computed.start_kernel_id
        && *start_commit_id == computed.start_commit_id
        && *kernels == computed.kernels
        && *failing_cells == computed.failing_cells
        && *open == computed.open
        && *fixed_by_commit == computed.fixed_by_commit
        && *fixed_by_kernel == computed.fixed_by_kernel
        && *opened_at == computed.opened_at
        && *fixed_at == computed.fixed_at
        && *time_to_fix_ms == computed.time_to_fix_ms
        && *signature == computed.signature
        && *commit_bisect == computed.commit_bisect
        && *kernel_bisect == computed.kernel_bisect
        && *next_cells == computed.next_cells
        && *seen_before == computed.seen_before
}

/// What an announced breakage keeps of a computed one: its `commits` list can grow with every
/// commit while it stays open, and nothing that tells people about it lists them.
pub fn description(mut detail: BreakageDetail, id: i64) -> BreakageDetail {
    detail.breakage.id = id.to_string();
    detail.breakage.commits = Vec::new();
    detail
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breakage::tests::{named, run, sha};

    /// The breakages of one lane written as in the breakage tests: `P` pass, `F` fail, `.`
    /// untested.
    fn computed(rows: &[(&str, &str)]) -> Vec<Breakage> {
        run(&named(rows))
    }

    /// Announces whatever `identify` calls new, as storage does, and returns the events.
    struct Announcer {
        tracked: Vec<Tracked>,
        events: Vec<(i64, EventKind)>,
    }

    impl Announcer {
        fn new() -> Announcer {
            Announcer {
                tracked: Vec::new(),
                events: Vec::new(),
            }
        }

        fn see(&mut self, rows: &[(&str, &str)]) {
            let computed = computed(rows);
            let found = identify(&self.tracked, &computed);
            for (b, id) in computed.iter().zip(found.continues) {
                let first_bad = (b.first_bad_kernel.clone(), b.first_bad_commit.clone());
                match id {
                    None => {
                        let id = self.tracked.len() as i64 + 1;
                        self.tracked.push(Tracked {
                            id,
                            stream: b.stream.clone(),
                            opened_cell: first_bad.clone(),
                            first_bad,
                            open: b.open,
                        });
                        self.events.push((id, EventKind::Opened));
                        if !b.open {
                            self.events.push((id, EventKind::Fixed));
                        }
                    }
                    Some(id) => {
                        let t = self.tracked.iter_mut().find(|t| t.id == id).unwrap();
                        if t.open && !b.open {
                            self.events.push((id, EventKind::Fixed));
                        }
                        t.open = b.open;
                        t.first_bad = first_bad;
                    }
                }
            }
            for id in found.vanished {
                self.tracked.iter_mut().find(|t| t.id == id).unwrap().open = false;
                self.events.push((id, EventKind::Fixed));
            }
        }
    }

    const K1: &str = "4.18.0-513.5.1.el8_9.x86_64";
    const K2: &str = "4.18.0-513.24.1.el8_9.x86_64";
    const K3: &str = "4.18.0-553.el8_10.x86_64";
    const K4: &str = "4.18.0-553.5.1.el8_10.x86_64";

    #[test]
    fn a_bisect_report_that_moves_the_first_bad_commit_earlier_opens_nothing_new() {
        let mut a = Announcer::new();
        a.see(&[(K1, "P...F"), (K2, "P...F")]);
        a.see(&[(K1, "P.F.F"), (K2, "P...F")]);
        a.see(&[(K1, "PFF.F"), (K2, "PF..F")]);
        assert_eq!(a.events, vec![(1, EventKind::Opened)]);
        assert_eq!(a.tracked[0].first_bad.1, sha(2));
    }

    #[test]
    fn an_older_kernel_reported_later_and_more_kernels_joining_open_nothing_new() {
        let mut a = Announcer::new();
        a.see(&[(K1, "PPP"), (K2, "PPP"), (K4, "PPF")]);
        a.see(&[(K1, "PPP"), (K2, "PPP"), (K3, "PPF"), (K4, "PPF")]);
        assert_eq!(a.events, vec![(1, EventKind::Opened)]);
        assert_eq!(a.tracked[0].first_bad.0, K3);
    }

    #[test]
    fn recomputing_the_same_results_announces_nothing_twice() {
        let mut a = Announcer::new();
        for _ in 0..3 {
            a.see(&[(K1, "PPFFP"), (K2, "PPFFP")]);
        }
        assert_eq!(
            a.events,
            vec![(1, EventKind::Opened), (1, EventKind::Fixed)]
        );
    }

    #[test]
    fn a_fix_is_announced_once_and_failing_again_after_it_is_a_new_breakage() {
        let mut a = Announcer::new();
        a.see(&[(K1, "PFF..")]);
        a.see(&[(K1, "PFFP.")]);
        a.see(&[(K1, "PFFPF")]);
        a.see(&[(K1, "PFFPF")]);
        assert_eq!(
            a.events,
            vec![
                (1, EventKind::Opened),
                (1, EventKind::Fixed),
                (2, EventKind::Opened)
            ]
        );
    }

    #[test]
    fn a_breakage_whose_failures_are_gone_is_closed() {
        let mut a = Announcer::new();
        a.see(&[(K1, "PF")]);
        a.see(&[(K1, "P.")]);
        assert_eq!(
            a.events,
            vec![(1, EventKind::Opened), (1, EventKind::Fixed)]
        );
    }

    #[test]
    fn two_breakages_of_one_stream_keep_their_own_identities() {
        let mut a = Announcer::new();
        // A commit breaks K1 and K2 at commit 2; a kernel update breaks K4 from its first result.
        a.see(&[(K1, "PFFF"), (K2, "PFFF"), (K3, "PPPP"), (K4, "...F")]);
        let first: Vec<(String, String)> = a.tracked.iter().map(|t| t.first_bad.clone()).collect();
        a.see(&[(K1, "PFFP"), (K2, "PFFP"), (K3, "PPPP"), (K4, "..FF")]);
        assert_eq!(a.tracked.len(), 2, "{first:?}");
        let fixed: Vec<i64> = a
            .events
            .iter()
            .filter(|e| e.1 == EventKind::Fixed)
            .map(|e| e.0)
            .collect();
        let module = a
            .tracked
            .iter()
            .find(|t| t.first_bad.0 == K1)
            .expect("the module breakage");
        assert_eq!(fixed, vec![module.id]);
    }

    #[test]
    fn event_pages_and_feed_filters_read_the_query() {
        assert_eq!(
            EventPage::from_pairs([("after", "12"), ("limit", "5")]),
            Ok(EventPage {
                after: 12,
                limit: 5
            })
        );
        assert_eq!(
            EventPage::from_pairs([("limit", "0")]).unwrap_err().param,
            "limit"
        );
        assert_eq!(
            EventPage::from_pairs([("after", "x")]).unwrap_err().param,
            "after"
        );
        let f = FeedFilter::from_pairs([("stream", "el8"), ("state", "open"), ("kernel", "553")])
            .unwrap();
        assert_eq!(
            f.to_pairs(),
            vec![
                ("stream", "el8".to_string()),
                ("state", "open".to_string()),
                ("kernel", "553".to_string())
            ]
        );
        assert!(FeedFilter::from_pairs([("attribution", "weather")]).is_err());
        assert!(
            FeedFilter::from_pairs([("stream", "el8"), ("stream", "el9")]).is_err(),
            "one stream at a time"
        );
    }

    #[test]
    fn an_announcement_describes_its_breakage_until_it_changes() {
        let before = computed(&[(K1, "PPP"), (K2, "PPP"), (K4, "PPF")]);
        let announced = description(
            BreakageDetail {
                breakage: before[0].clone(),
                error_line: None,
                excerpt: None,
            },
            9,
        );
        assert!(describes(&announced.breakage, &before[0]));
        let after = computed(&[(K1, "PPP"), (K2, "PPP"), (K3, "PPF"), (K4, "PPF")]);
        assert!(!describes(&announced.breakage, &after[0]));
    }

    #[test]
    fn kinds_round_trip() {
        for k in [EventKind::Opened, EventKind::Fixed] {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(EventKind::parse("closed"), None);
    }
}

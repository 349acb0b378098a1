//! Seen before: the fix that worked last time. RHEL backports upstream API changes one stream
//! after another, so the module's fix for the first stream is usually the template for the next
//! (the `netif_napi_add` change reached EL9 before EL8.8). For each open breakage, the earlier
//! breakages of the project, in any stream, that a module commit fixed and that failed with the
//! same signature, or the same error at another place, are its precedents: the closest match
//! first, then the most recent.

use crate::breakage::Breakage;
use crate::kernel::stream_label;
use crate::notice::short_error;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Precedents kept per breakage.
pub const MAX_PRECEDENTS: usize = 3;

/// An earlier breakage with the same error, and the commit that fixed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Precedent {
    pub stream: String,
    pub stream_label: String,
    /// Its first failing kernel (`uname -r`) and commit.
    pub first_bad_kernel: String,
    pub first_bad_commit: String,
    pub fixed_by_commit: String,
    /// The fixing commit's subject, when the history has it.
    pub fix_subject: Option<String>,
    /// Milliseconds from its first failing report to the fix.
    pub fixed_after_ms: Option<i64>,
    pub fixed_at: Option<i64>,
    /// The very same signature; otherwise the same error at another file or line.
    pub same_signature: bool,
}

impl Precedent {
    /// `seen before on RHEL 9 (from 5.14.0-162.el9), fixed by commit abc1234 "compat: ..." after
    /// 3 days`.
    pub fn describe(&self) -> String {
        let kernel = crate::notice::kernel_name(&self.first_bad_kernel, &self.stream);
        let mut text = format!(
            "seen before on {} (from {kernel}), fixed by commit {}",
            self.stream_label,
            crate::history::short_sha(&self.fixed_by_commit)
        );
        if let Some(subject) = &self.fix_subject {
            text.push_str(&format!(" \"{subject}\""));
        }
        if let Some(ms) = self.fixed_after_ms {
            text.push_str(&format!(" after {}", crate::view::elapsed(ms)));
        }
        if !self.same_signature {
            text.push_str(" (the same error, elsewhere in the code)");
        }
        text
    }
}

/// How closely a fixed breakage's error matches: `Some(true)` the same signature, `Some(false)`
/// the same error at another file or line, `None` another error.
fn matches(open: &str, earlier: &str) -> Option<bool> {
    if open == earlier {
        Some(true)
    } else {
        (short_error(open) == short_error(earlier)).then_some(false)
    }
}

/// The fixing commits whose subjects [`attach`] can use.
pub fn fixing_commits(breakages: &[Breakage]) -> Vec<String> {
    let mut shas: Vec<String> = breakages
        .iter()
        .filter(|b| !b.open)
        .filter_map(|b| b.fixed_by_commit.clone())
        .collect();
    shas.sort();
    shas.dedup();
    shas
}

/// Gives every open breakage with a signature its precedents among the fixed ones.
pub fn attach(breakages: &mut [Breakage], subjects: &BTreeMap<String, String>) {
    let fixed: Vec<(usize, &Breakage)> = breakages
        .iter()
        .enumerate()
        .filter(|(_, b)| !b.open && b.fixed_by_commit.is_some() && b.signature.is_some())
        .collect();
    let mut found: Vec<(usize, Vec<Precedent>)> = Vec::new();
    for (i, b) in breakages.iter().enumerate() {
        let Some(signature) = b.signature.as_deref().filter(|_| b.open) else {
            continue;
        };
        let mut ranked: Vec<(bool, Option<i64>, Precedent)> = fixed
            .iter()
            .filter(|(j, e)| *j != i && e.opened_at <= b.opened_at.or(e.opened_at))
            .filter_map(|(_, e)| {
                let same = matches(signature, e.signature.as_deref()?)?;
                let fix = e.fixed_by_commit.clone()?;
                Some((
                    same,
                    e.fixed_at,
                    Precedent {
                        stream: e.stream.clone(),
                        stream_label: stream_label(&e.stream),
                        first_bad_kernel: e.first_bad_kernel.clone(),
                        first_bad_commit: e.first_bad_commit.clone(),
                        fix_subject: subjects.get(&fix).cloned(),
                        fixed_by_commit: fix,
                        fixed_after_ms: e.time_to_fix_ms,
                        fixed_at: e.fixed_at,
                        same_signature: same,
                    },
                ))
            })
            .collect();
        // The same signature first, then the most recent fix.
        ranked.sort_by(|a, b| b.0.cmp(&a.0).then(b.1.cmp(&a.1)));
        found.push((
            i,
            ranked
                .into_iter()
                .take(MAX_PRECEDENTS)
                .map(|(_, _, p)| p)
                .collect(),
        ));
    }
    for (i, precedents) in found {
        breakages[i].seen_before = precedents;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breakage::tests::{named, run, sha};

    const NAPI: &str = "too many arguments to function 'netif_napi_add'";

    /// The real story: the `netif_napi_add` change broke EL9 first, a commit fixed it there,
    /// and then the same error came to EL8.
    #[test]
    fn the_el9_fix_is_the_suggestion_for_the_same_error_on_el8() {
        let s = named(&[
            ("5.14.0-162.el9.x86_64", "PFFP."),
            ("4.18.0-477.el8_8.x86_64", "PPPPF"),
        ]);
        let mut breakages = run(&s);
        for b in &mut breakages {
            // One error, printed at two places: the same error, not the same signature.
            b.signature = Some(if b.stream == "el9" {
                format!("main.c: error: {NAPI}")
            } else {
                format!("device.c: error: {NAPI}")
            });
        }
        let subjects = BTreeMap::from([(sha(4), "compat: netif_napi_add lost its weight".into())]);
        attach(&mut breakages, &subjects);
        let el8 = breakages.iter().find(|b| b.stream == "el8").unwrap();
        assert!(el8.open);
        assert_eq!(el8.seen_before.len(), 1);
        let p = &el8.seen_before[0];
        assert_eq!(
            (p.stream.as_str(), p.fixed_by_commit.as_str()),
            ("el9", sha(4).as_str())
        );
        assert!(!p.same_signature);
        assert_eq!(
            p.describe(),
            format!(
                "seen before on Enterprise Linux 9 (from 5.14.0-162.el9), fixed by commit {} \
                 \"compat: netif_napi_add lost its weight\" after 2 s (the same error, elsewhere \
                 in the code)",
                &sha(4)[..7]
            )
        );
        let el9 = breakages.iter().find(|b| b.stream == "el9").unwrap();
        assert!(
            el9.seen_before.is_empty(),
            "a fixed breakage needs no suggestion"
        );
    }

    #[test]
    fn the_same_signature_ranks_above_the_same_error_then_the_newest_fix() {
        let s = named(&[
            ("5.14.0-70.el9.x86_64", "FP...."),
            ("5.14.0-162.el9.x86_64", "..FP.."),
            ("4.18.0-477.el8_8.x86_64", "....FP"),
            ("4.18.0-513.el8_9.x86_64", ".....F"),
        ]);
        let mut breakages = run(&s);
        for b in &mut breakages {
            b.signature = Some(match b.first_bad_kernel.as_str() {
                "5.14.0-70.el9.x86_64" => format!("main.c: error: {NAPI}"),
                _ => format!("device.c: error: {NAPI}"),
            });
        }
        attach(&mut breakages, &BTreeMap::new());
        let open = breakages.iter().find(|b| b.open).unwrap();
        let order: Vec<(&str, bool)> = open
            .seen_before
            .iter()
            .map(|p| (p.first_bad_kernel.as_str(), p.same_signature))
            .collect();
        assert_eq!(
            order,
            [
                ("4.18.0-477.el8_8.x86_64", true),
                ("5.14.0-162.el9.x86_64", true),
                ("5.14.0-70.el9.x86_64", false)
            ]
        );
    }

    #[test]
    fn another_error_is_no_precedent() {
        assert_eq!(matches("a.c: error: x", "a.c: error: x"), Some(true));
        assert_eq!(matches("a.c: error: x", "b.c: error: x"), Some(false));
        assert_eq!(matches("a.c: error: x", "a.c: error: y"), None);
    }
}

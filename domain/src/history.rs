//! Commit history as git order: every commit has a *generation*, 1 + the largest generation of its
//! parents, so sorting by generation is a topological order that costs one index scan.
//!
//! History arrives in pieces and in any order (pushes, and reports that name their parents), so
//! generations are placed as commits arrive and *lifted* when an older piece arrives later. What a
//! client sends may be wrong or hostile: a history must stay a DAG, so a commit that would become
//! its own ancestor is refused, and every walk here is bounded by the commits it is given.

use crate::report::CommitInfo;
use std::collections::{HashMap, HashSet, VecDeque};

/// The abbreviated sha every page shows: its first seven characters (all of a shorter one).
pub fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// A history that would make a commit its own ancestor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("commit {sha} would become its own ancestor: the history sent forms a cycle")]
pub struct CycleError {
    /// A commit on the cycle.
    pub sha: String,
}

/// Orders a batch so that every commit comes after its parents within the batch, or names a
/// commit on a cycle (a commit naming itself as a parent included).
pub fn order_parents_first(commits: &[CommitInfo]) -> Result<Vec<&CommitInfo>, CycleError> {
    let by_sha: HashMap<&str, &CommitInfo> = commits.iter().map(|c| (c.sha.as_str(), c)).collect();
    let mut done: HashSet<&str> = HashSet::with_capacity(commits.len());
    // Commits whose parents are being visited: meeting one again means a cycle.
    let mut open: HashSet<&str> = HashSet::new();
    let mut out = Vec::with_capacity(commits.len());
    for c in commits {
        // Iterative depth-first walk, each commit expanded once: bounded by the batch.
        let mut stack = vec![(c, false)];
        while let Some((commit, expanded)) = stack.pop() {
            let sha = commit.sha.as_str();
            if expanded {
                open.remove(sha);
                if done.insert(sha) {
                    out.push(commit);
                }
                continue;
            }
            if done.contains(sha) {
                continue;
            }
            if !open.insert(sha) {
                return Err(CycleError {
                    sha: sha.to_string(),
                });
            }
            stack.push((commit, true));
            for p in commit.parents.iter().flatten() {
                if p == sha || open.contains(p.as_str()) {
                    return Err(CycleError { sha: p.clone() });
                }
                if let Some(parent) = by_sha
                    .get(p.as_str())
                    .filter(|p| !done.contains(p.sha.as_str()))
                {
                    stack.push((parent, false));
                }
            }
        }
    }
    Ok(out)
}

/// A commit as the lift sees it: where it stands now and which of its parents are in view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Placed {
    pub generation: i64,
    pub parents: Vec<String>,
}

/// Brings generations up to date after some commits were placed: `graph` holds those commits
/// and every known descendant of them (with their current generation and parents), as storage
/// read it. Parents outside `graph` did not move, so a commit only rises above the parents that
/// did. Returns the commits whose generation changes, or a cycle if `graph` has one.
///
/// Kahn's algorithm: each commit is settled once, after all its parents in view, so the work is
/// linear in `graph` and a cycle shows as commits that never settle.
pub fn lift(graph: &HashMap<String, Placed>) -> Result<Vec<(String, i64)>, CycleError> {
    let mut waiting: HashMap<&str, usize> = HashMap::with_capacity(graph.len());
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for (sha, placed) in graph {
        let in_view: HashSet<&str> = placed
            .parents
            .iter()
            .map(String::as_str)
            .filter(|p| graph.contains_key(*p))
            .collect();
        for p in &in_view {
            children.entry(p).or_default().push(sha.as_str());
        }
        waiting.insert(sha.as_str(), in_view.len());
    }
    let mut generation: HashMap<&str, i64> = graph
        .iter()
        .map(|(s, p)| (s.as_str(), p.generation))
        .collect();
    let mut ready: VecDeque<&str> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(s, _)| *s)
        .collect();
    let mut settled = 0;
    while let Some(sha) = ready.pop_front() {
        settled += 1;
        let floor = generation[sha] + 1;
        for child in children.get(sha).into_iter().flatten() {
            let g = generation.get_mut(child).expect("child in graph");
            *g = (*g).max(floor);
            let n = waiting.get_mut(child).expect("child in graph");
            *n -= 1;
            if *n == 0 {
                ready.push_back(child);
            }
        }
    }
    if settled < graph.len() {
        let mut stuck: Vec<&str> = waiting
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, _)| *s)
            .collect();
        stuck.sort_unstable();
        return Err(CycleError {
            sha: stuck[0].to_string(),
        });
    }
    let mut moved: Vec<(String, i64)> = generation
        .into_iter()
        .filter(|(sha, g)| graph[*sha].generation != *g)
        .map(|(sha, g)| (sha.to_string(), g))
        .collect();
    moved.sort_unstable();
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(c: char) -> String {
        c.to_string().repeat(40)
    }

    fn commit(c: char, parents: &str) -> CommitInfo {
        CommitInfo {
            sha: sha(c),
            subject: None,
            author: None,
            committed_at: None,
            parents: Some(parents.chars().map(sha).collect()),
            tags: vec![],
        }
    }

    fn order(batch: &[CommitInfo]) -> Result<String, String> {
        order_parents_first(batch)
            .map(|o| o.iter().map(|c| &c.sha[..1]).collect())
            .map_err(|e| e.sha[..1].to_string())
    }

    #[test]
    fn short_sha_is_the_first_seven_characters_of_any_sha() {
        assert_eq!(
            short_sha("3d3c92b4711b42169137b2ddf42ed4382e2babdf"),
            "3d3c92b"
        );
        assert_eq!(short_sha("3d3c9"), "3d3c9");
        assert_eq!(short_sha(""), "");
    }

    #[test]
    fn batches_are_stored_parents_first() {
        let batch = [
            commit('c', "b"),
            commit('d', "ca"),
            commit('a', ""),
            commit('b', "a"),
        ];
        assert_eq!(order(&batch), Ok("abcd".into()));
    }

    #[test]
    fn a_commit_naming_itself_is_a_cycle() {
        assert_eq!(order(&[commit('a', "a")]), Err("a".into()));
    }

    #[test]
    fn cycles_in_a_batch_are_named() {
        assert_eq!(
            order(&[commit('a', "b"), commit('b', "a")]),
            Err("a".into())
        );
        let long = [
            commit('a', "c"),
            commit('b', "a"),
            commit('c', "b"),
            commit('d', ""),
        ];
        assert!(order(&long).is_err());
    }

    #[test]
    fn diamonds_are_not_cycles() {
        let batch = [
            commit('d', "bc"),
            commit('b', "a"),
            commit('c', "a"),
            commit('a', ""),
        ];
        let order = order(&batch).unwrap();
        assert!(order == "abcd" || order == "acbd", "{order}");
    }

    fn graph(nodes: &[(char, i64, &str)]) -> HashMap<String, Placed> {
        nodes
            .iter()
            .map(|(c, g, parents)| {
                let placed = Placed {
                    generation: *g,
                    parents: parents.chars().map(sha).collect(),
                };
                (sha(*c), placed)
            })
            .collect()
    }

    fn moved(g: &HashMap<String, Placed>) -> Result<Vec<(char, i64)>, char> {
        lift(g)
            .map(|m| {
                m.into_iter()
                    .map(|(s, g)| (s.chars().next().unwrap(), g))
                    .collect()
            })
            .map_err(|e| e.sha.chars().next().unwrap())
    }

    #[test]
    fn an_old_commit_arriving_late_lifts_its_descendants() {
        // b and c were stored before their parent a; a now arrives at generation 5.
        let g = graph(&[('a', 5, "z"), ('b', 1, "a"), ('c', 2, "b"), ('d', 9, "c")]);
        assert_eq!(moved(&g), Ok(vec![('b', 6), ('c', 7)]));
    }

    #[test]
    fn a_child_takes_its_highest_parent() {
        let g = graph(&[('a', 3, ""), ('b', 7, ""), ('c', 1, "ab")]);
        assert_eq!(moved(&g), Ok(vec![('c', 8)]));
    }

    #[test]
    fn a_cycle_never_settles() {
        // a was pushed with parent b, b now names its descendant a.
        assert_eq!(moved(&graph(&[('a', 2, "b"), ('b', 3, "a")])), Err('a'));
        assert_eq!(moved(&graph(&[('a', 2, "a")])), Err('a'));
    }

    #[test]
    fn lifting_is_linear_on_a_long_history() {
        let n = 20_000;
        let name = |i: usize| format!("{i:040}");
        let g: HashMap<String, Placed> = (0..n)
            .map(|i| {
                let parents = if i == 0 { vec![] } else { vec![name(i - 1)] };
                let generation = if i == 0 { 100 } else { 1 };
                (
                    name(i),
                    Placed {
                        generation,
                        parents,
                    },
                )
            })
            .collect();
        let m = lift(&g).unwrap();
        assert_eq!(m.len(), n - 1);
        assert_eq!(m.last(), Some(&(name(n - 1), 100 + n as i64 - 1)));
    }
}

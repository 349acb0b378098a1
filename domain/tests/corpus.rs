//! The error signature extractor against a corpus of real kbuild logs (tiny modules built against
//! Debian's 6.1 headers by `scripts/build-corpus.sh`, plus the real wireguard-linux-compat logs):
//! every log must give the signature and infrastructure verdict a careful human wrote in
//! `fixtures/corpus/expected.tsv`, and must keep them however a runner prints the same build:
//! coloured, with relative paths, after shell-trace noise, or with the error on other lines.
//!
//! Each test lists every mismatch (log, transformation, expected, got) before failing, so one
//! run shows all that the extractor gets wrong.

use std::path::{Path, PathBuf};
use trellis_domain::signature::{extract, is_infrastructure, strip_ansi};

const MANIFEST: &str = include_str!("fixtures/corpus/expected.tsv");

struct Entry {
    log: &'static str,
    infrastructure: bool,
    /// `None`: the build passed, nothing to extract.
    signature: Option<&'static str>,
}

fn corpus_dir() -> PathBuf {
    // Read when the test runs (cargo sets it), not baked in when it is built: two checkouts
    // sharing one target folder must each read their own corpus.
    let crate_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_string());
    Path::new(&crate_dir).join("tests/fixtures/corpus")
}

fn entries() -> Vec<Entry> {
    MANIFEST
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .skip(1) // the column names
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert_eq!(cols.len(), 3, "manifest line {l:?} has not 3 columns");
            let infrastructure = match cols[1] {
                "yes" => true,
                "no" => false,
                other => panic!("manifest line {l:?}: infrastructure {other:?} is not yes/no"),
            };
            Entry {
                log: cols[0],
                infrastructure,
                signature: (cols[2] != "-").then_some(cols[2]),
            }
        })
        .collect()
}

fn read_log(entry: &Entry) -> String {
    let path = corpus_dir().join(entry.log);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs the extractor on `transform(log)` for every entry and fails listing every mismatch.
fn check(transformation: &str, transform: impl Fn(&str) -> String) {
    let entries = entries();
    let mut mismatches = Vec::new();
    for entry in &entries {
        let log = transform(&read_log(entry));
        let got = extract(&log);
        let got_signature = got.as_ref().map(|s| s.signature.as_str());
        if got_signature != entry.signature {
            mismatches.push(format!(
                "{} [{transformation}]\n    expected: {}\n    got:      {}{}",
                entry.log,
                entry.signature.unwrap_or("(none)"),
                got_signature.unwrap_or("(none)"),
                got.as_ref()
                    .map(|s| format!("\n    from line: {}", s.line))
                    .unwrap_or_default(),
            ));
        }
        // What the dashboard asks of a stored signature; judged on the extractor's own output,
        // so a wrong signature does not hide a wrong verdict.
        let got_infrastructure = got_signature.is_some_and(is_infrastructure);
        if got_infrastructure != entry.infrastructure {
            mismatches.push(format!(
                "{} [{transformation}] infrastructure: expected {}, got {} (for {:?})",
                entry.log,
                entry.infrastructure,
                got_infrastructure,
                got_signature.unwrap_or("(none)"),
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{} mismatches over {} logs [{transformation}]:\n{}",
        mismatches.len(),
        entries.len(),
        mismatches.join("\n")
    );
}

#[test]
fn every_log_of_the_corpus_is_in_the_manifest_and_back() {
    let listed: Vec<&str> = entries().iter().map(|e| e.log).collect();
    let mut on_disk: Vec<String> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".log"))
        .collect();
    on_disk.sort();
    let unlisted: Vec<&String> = on_disk
        .iter()
        .filter(|name| !listed.contains(&name.as_str()))
        .collect();
    assert!(
        unlisted.is_empty(),
        "logs with no expectation: {unlisted:?}"
    );
    for entry in entries() {
        assert!(
            corpus_dir().join(entry.log).is_file(),
            "{} is listed but missing",
            entry.log
        );
    }
    // The five real wireguard-linux-compat logs and the generated corpus.
    assert_eq!(listed.iter().filter(|l| l.starts_with("../wg-")).count(), 5);
    assert!(
        on_disk.len() >= 100,
        "only {} generated logs",
        on_disk.len()
    );
}

#[test]
fn as_printed() {
    check("as printed", str::to_string);
}

#[test]
fn colours_added() {
    check("colours added", |log| colourise(&strip_ansi(log)));
}

#[test]
fn paths_relative_to_the_module() {
    check("paths relative to the module", |log| {
        match build_root(log) {
            // /builds/x/src/compat/compat.h -> src/compat/compat.h
            Some(root) => log.replace(&root, ""),
            None => log.to_string(),
        }
    });
}

#[test]
fn paths_relative_to_the_kernel_tree() {
    check("paths relative to the kernel tree", |log| {
        // As kbuild prints them when run in the kernel tree: the module's files through `../`,
        // the kernel's own files relative to it.
        let log = match build_root(log) {
            Some(root) => log.replace(&root, &format!("../../..{root}")),
            None => log.to_string(),
        };
        strip_kernel_tree(&log)
    });
}

#[test]
fn shell_trace_noise_before_the_error() {
    check("shell-trace noise", |log| {
        insert_after_header(
            log,
            &[
                "+ sed -i 's/^#error.*//' src/compat/compat.h",
                "++ grep -c '^#error' src/compat/compat.h",
                "+ echo \"error: this is only an echo\"",
            ],
        )
    });
}

#[test]
fn lines_shifted() {
    check("lines shifted", |log| {
        let top =
            "Runner trellis-7 picked the job\nCloning into 'module'...\nHEAD is now at 3d3c92b\n";
        format!("{top}{}", shift_line_numbers(log, 7))
    });
}

// ---- transformations -------------------------------------------------------------------------

const BOLD: &str = "\u{1b}[01m\u{1b}[K";
const RED: &str = "\u{1b}[01;31m\u{1b}[K";
const MAGENTA: &str = "\u{1b}[01;35m\u{1b}[K";
const CYAN: &str = "\u{1b}[01;36m\u{1b}[K";
const RESET: &str = "\u{1b}[m\u{1b}[K";

/// Colours diagnostics as gcc does with `-fdiagnostics-color=always`: the location bold, the
/// severity in its colour, quoted names bold.
fn colourise(log: &str) -> String {
    let mut out = String::with_capacity(log.len() * 2);
    for line in log.lines() {
        let mut coloured = None;
        for (kind, colour) in [
            ("fatal error: ", RED),
            ("error: ", RED),
            ("warning: ", MAGENTA),
            ("note: ", CYAN),
        ] {
            if let Some(at) = line.find(&format!(": {kind}")) {
                let (location, message) = (&line[..=at], &line[at + 2 + kind.len()..]);
                let message = message
                    .replace('‘', &format!("‘{BOLD}"))
                    .replace('’', &format!("{RESET}’"));
                coloured = Some(format!(
                    "{BOLD}{location}{RESET} {colour}{kind}{RESET}{message}"
                ));
                break;
            }
        }
        out.push_str(coloured.as_deref().unwrap_or(line));
        out.push('\n');
    }
    out
}

/// The folder a log's module was built in (`/builds/<name>/`, `/tmp/corpus/build-a/<module>/`),
/// as the first absolute path naming it shows it.
fn build_root(log: &str) -> Option<String> {
    for prefix in [
        "/builds/",
        "/tmp/corpus/build-a/",
        "/tmp/corpus/other-b/nested/",
    ] {
        if let Some(at) = log.find(prefix) {
            let rest = &log[at + prefix.len()..];
            let name_len = rest.find(['/', '\'', ' ', '\n'])?;
            return Some(format!("{prefix}{}/", &rest[..name_len]));
        }
    }
    None
}

/// `/usr/src/linux-headers-6.1.0-57-common/include/x.h` -> `include/x.h`; the tree itself
/// (`make -C /usr/src/linux-headers-6.1.0-57-amd64`) stays.
fn strip_kernel_tree(log: &str) -> String {
    const TREE: &str = "/usr/src/linux-headers-";
    let mut out = String::with_capacity(log.len());
    let mut rest = log;
    while let Some(at) = rest.find(TREE) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        let name_end = tail[TREE.len()..]
            .find(|c: char| c == '/' || c == '\'' || c == ':' || c.is_whitespace())
            .map(|i| i + TREE.len());
        match name_end {
            Some(end) if tail[end..].starts_with('/') => rest = &tail[end + 1..],
            _ => {
                out.push_str(TREE);
                rest = &tail[TREE.len()..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Inserts `lines` where the build's output starts (after the log's `#` header, if any).
fn insert_after_header(log: &str, lines: &[&str]) -> String {
    let noise: String = lines.iter().map(|l| format!("{l}\n")).collect();
    match log.find("# ---- begin output ----\n") {
        Some(at) => {
            let at = at + "# ---- begin output ----\n".len();
            format!("{}{noise}{}", &log[..at], &log[at..])
        }
        None => format!("{noise}{log}"),
    }
}

/// Adds `by` to every source line number: `x.c:19:9:`, `x.h:8:`, `from x.c:3,` (C sources,
/// headers and assembly only: kbuild's own Makefile lines are not the module's).
fn shift_line_numbers(log: &str, by: u32) -> String {
    let mut out = String::with_capacity(log.len());
    let mut rest = log;
    loop {
        let next = [".c:", ".h:", ".S:"]
            .iter()
            .filter_map(|ext| rest.find(ext).map(|i| i + ext.len()))
            .min();
        let Some(at) = next else { break };
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        if digits > 0 {
            let n: u32 = rest[..digits].parse().unwrap();
            out.push_str(&(n + by).to_string());
            rest = &rest[digits..];
        }
    }
    out.push_str(rest);
    out
}

#[test]
fn the_transformations_change_what_they_claim() {
    // Guards the guards: a transformation that silently did nothing would prove nothing.
    let log = "/builds/x/src/compat/compat.h:38:2: error: #error \"no\"\n\
               In file included from /usr/src/linux-headers-6.1.0-57-common/include/linux/a.h:3,\n\
               make -C /usr/src/linux-headers-6.1.0-57-amd64 M=/builds/x/src\n";
    let coloured = colourise(log);
    assert!(coloured.starts_with(&format!(
        "{BOLD}/builds/x/src/compat/compat.h:38:2:{RESET} {RED}error: {RESET}#error"
    )));
    assert_eq!(strip_ansi(&coloured), log);
    assert_eq!(build_root(log).as_deref(), Some("/builds/x/"));
    assert_eq!(
        strip_kernel_tree(log).lines().nth(1),
        Some("In file included from include/linux/a.h:3,")
    );
    assert!(strip_kernel_tree(log).contains("-C /usr/src/linux-headers-6.1.0-57-amd64 M="));
    assert!(shift_line_numbers(log, 7).starts_with("/builds/x/src/compat/compat.h:45:2: error"));
    assert!(shift_line_numbers(log, 7).contains("linux/a.h:10,"));
    let noisy = insert_after_header("# h\n# ---- begin output ----\nx\n", &["+ y"]);
    assert_eq!(noisy, "# h\n# ---- begin output ----\n+ y\nx\n");
}

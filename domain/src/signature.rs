//! Error signatures: the first meaningful error of a failing build log, normalised so that the
//! same error from another build folder, at another line, or from another commit is one
//! signature, while different errors stay different.
//!
//! Real runners print one error many ways, and each must give the same signature:
//! - colours (`-fdiagnostics-color=always`, a build under a TTY): escape sequences are stripped
//!   before anything is read;
//! - paths absolute, relative to the module, or relative to the kernel tree (`M=`, `O=`, `../`):
//!   a path keeps only its file name;
//! - noise: only compiler, assembler, linker, modpost and make diagnostics count; shell traces
//!   (`+ cmd`), the log's own `#` header and echoed text never do.
//!
//! A missing kernel tree or compiler is the runner's trouble, not the module's: such a
//! signature is an [`infrastructure`](is_infrastructure) one, and the runner should have
//! reported `error`.

use serde::{Deserialize, Serialize};
use std::borrow::Cow;

/// The excerpt kept around the error, at most this many bytes.
pub const MAX_EXCERPT: usize = 16 * 1024;
const CONTEXT_BEFORE: usize = 12;
const CONTEXT_AFTER: usize = 30;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorSignature {
    /// The normalised error, e.g. `compat.h: error: #error "WireGuard has been merged ..."`.
    pub signature: String,
    /// The log line it came from, as printed.
    pub line: String,
    /// Lines around it (at most [`MAX_EXCERPT`] bytes).
    pub excerpt: String,
    /// The log's other distinct errors, normalised, in the order printed (at most
    /// [`MAX_OTHER_ERRORS`]): what the signature page lists as "also seen together with".
    #[serde(default)]
    pub others: Vec<String>,
}

/// Other errors kept per log.
pub const MAX_OTHER_ERRORS: usize = 16;

/// Removes terminal escape sequences (colours, `ESC[K`, OSC titles) so that a coloured build
/// log reads as a plain one.
pub fn strip_ansi(text: &str) -> Cow<'_, str> {
    if !text.contains('\u{1b}') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\u{1b}' {
            out.push(c);
            continue;
        }
        match chars.peek() {
            // CSI: parameters and intermediates, then one final byte in @..~.
            Some('[') => {
                chars.next();
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // OSC: up to BEL or ESC \.
            Some(']') => {
                chars.next();
                while let Some(c) = chars.next() {
                    if c == '\u{7}' {
                        break;
                    }
                    if c == '\u{1b}' {
                        chars.next();
                        break;
                    }
                }
            }
            // A two-character sequence (ESC = , ESC >, ESC ( B ...).
            Some(_) => {
                chars.next();
            }
            None => {}
        }
    }
    Cow::Owned(out)
}

/// A log line as a terminal showed it, without what a CI system added: the text after the last
/// carriage return (progress lines overwrite each other), and without a leading timestamp
/// (`2026-11-30T08:00:00.1234567Z `, as GitHub Actions and GitLab prefix each line, or
/// `[08:00:01] `, `[2026-11-30 08:00:01] `, as Jenkins' timestamper does).
fn as_seen(line: &str) -> &str {
    let line = match line.rsplit_once('\r') {
        Some((_, last)) if !last.trim().is_empty() => last,
        _ => line,
    };
    let bracketed = line
        .strip_prefix('[')
        .and_then(|rest| rest.split_once(']'))
        .filter(|(stamp, _)| is_timestamp(stamp))
        .map(|(_, rest)| rest.trim_start());
    if let Some(rest) = bracketed {
        return rest;
    }
    match line.split_once(' ') {
        Some((stamp, rest)) if is_timestamp(stamp) => rest,
        _ => line,
    }
}

/// `2026-11-30T08:00:00.123Z`, `2026-11-30 08:00:01`, `08:00:01.5`: digits and the separators of
/// a date and time, with a `:` and at least six digits.
fn is_timestamp(text: &str) -> bool {
    let digits = text.chars().filter(char::is_ascii_digit).count();
    digits >= 6
        && text.contains(':')
        && text.starts_with(|c: char| c.is_ascii_digit())
        && text
            .chars()
            .all(|c| c.is_ascii_digit() || "-:.T Z+".contains(c))
}

/// The `file:line:col:` (or `file:line:`, or a tool name) that opens a diagnostic, if the line
/// starts with one: what a compiler, assembler or linker prints before `error:`.
fn located(line: &str) -> Option<&str> {
    let (head, rest) = line.split_once(": ")?;
    let ok = !head.is_empty()
        && !head.contains(' ')
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:<>()".contains(c));
    ok.then_some(rest)
}

/// Whether a program name is a compiler, assembler or linker (`gcc-12`,
/// `x86_64-linux-gnu-gcc`, `clang-14`, `ld.lld`).
fn is_toolchain(name: &str) -> bool {
    let name = name.rsplit('/').next().unwrap_or(name);
    ["gcc", "cc", "clang", "ld", "ld.lld", "as", "cc1"].contains(&name)
        || name.starts_with("gcc-")
        || name.starts_with("clang-")
        || name.ends_with("-gcc")
        || name.contains("-gcc-")
}

/// How strongly a line marks the build's failure (lower is more specific), or `None` when it
/// is no diagnostic. Shell traces, the log's header and echoes never count.
fn rank(line: &str) -> Option<u8> {
    let l = line.trim_start();
    if l.starts_with('+') || l.starts_with('#') || l.starts_with("echo ") {
        return None;
    }
    if is_infrastructure(l) {
        return Some(0);
    }
    // gcc, clang, as, ld.lld: `file:line:col: error: ...`, `cc1: error: ...`, `ld.lld: error:`.
    if let Some(rest) = located(l) {
        if rest.starts_with("error: ") || rest.starts_with("fatal error: ") {
            return Some(0);
        }
        if rest.contains("undefined reference to") || rest.starts_with("multiple definition of") {
            return Some(0);
        }
    }
    if l.starts_with("error: ") && !l.starts_with("error: Command") {
        return Some(0);
    }
    if l.contains("undefined reference to") && l.contains(':') {
        return Some(0);
    }
    if l.starts_with("ERROR: modpost: ") || l.starts_with("ERROR: ") && l.contains(" undefined!") {
        return Some(0);
    }
    if l.starts_with("make") && l.contains("*** No rule to make target") {
        return Some(0);
    }
    // kbuild's own summary line, only when nothing better exists.
    if l.starts_with("make") && l.contains("***") && l.contains("Error") {
        return Some(1);
    }
    None
}

/// Whether an error line (or a signature) says the runner lacked what a build needs rather than
/// that the module is wrong: the kernel tree (`make -C /lib/modules/.../build` that is not
/// there), the compiler (`sh: 1: gcc-12: not found`), or a compiler the kernel was not
/// configured for (`clang: error: unknown argument: '-mfunction-return=thunk-extern'`).
pub fn is_infrastructure(line: &str) -> bool {
    let l = line.trim_start();
    // `make: *** /lib/modules/9.9.9/build: No such file or directory.  Stop.`, as printed or
    // normalised (`make: *** build: No such file or directory.`).
    if let Some(missing) = l
        .strip_prefix("make")
        .and_then(|rest| rest.split_once("*** "))
        .and_then(|(_, rest)| {
            rest.strip_suffix_any(&[
                ": No such file or directory.  Stop.",
                ": No such file or directory.",
                ": No such file or directory",
            ])
        })
    {
        let last = missing.rsplit('/').next().unwrap_or(missing);
        let tree = missing.contains("/lib/modules/")
            || missing.contains("/usr/src/")
            || last == "build"
            || last.starts_with(|c: char| c.is_ascii_digit());
        if tree {
            return true;
        }
    }
    // `sh: 1: gcc-12: not found`, `make[2]: gcc: Command not found`,
    // `make: x86_64-linux-gnu-gcc-12: No such file or directory`.
    let not_found = [
        ": not found",
        ": Command not found",
        ": No such file or directory",
    ]
    .iter()
    .find_map(|end| l.strip_suffix(end));
    if let Some(head) = not_found {
        let program = head.rsplit(": ").next().unwrap_or(head);
        if is_toolchain(program) && !l.contains("*** ") {
            return true;
        }
    }
    let driver = l.split_once(": error: ").map(|(tool, _)| tool);
    driver.is_some_and(is_toolchain)
        && (l.contains("unknown argument") || l.contains("unrecognized command-line option"))
}

/// `str::strip_suffix` for the first of several suffixes that matches.
trait StripSuffixAny {
    fn strip_suffix_any<'a>(&'a self, suffixes: &[&str]) -> Option<&'a str>;
}

impl StripSuffixAny for str {
    fn strip_suffix_any<'a>(&'a self, suffixes: &[&str]) -> Option<&'a str> {
        suffixes.iter().find_map(|s| self.strip_suffix(s))
    }
}

/// A short stable id for a signature (FNV-1a, 64 bits, hex), used in URLs.
pub fn signature_id(signature: &str) -> String {
    let hash = signature.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Finds the first meaningful error of a log, or `None` when nothing looks like one.
pub fn extract(log: &str) -> Option<ErrorSignature> {
    let plain = strip_ansi(log);
    let lines: Vec<&str> = plain.lines().map(as_seen).collect();
    let mut best: Option<(u8, usize)> = None;
    for (i, line) in lines.iter().enumerate() {
        if let Some(r) = rank(line) {
            if best.is_none_or(|(b, _)| r < b) {
                best = Some((r, i));
                if r == 0 {
                    break;
                }
            }
        }
    }
    let (_, i) = best?;
    let line = lines[i].trim_end().to_string();
    let start = i.saturating_sub(CONTEXT_BEFORE);
    let end = (i + CONTEXT_AFTER + 1).min(lines.len());
    let mut excerpt = lines[start..end].join("\n");
    if excerpt.len() > MAX_EXCERPT {
        let mut cut = MAX_EXCERPT;
        while !excerpt.is_char_boundary(cut) {
            cut -= 1;
        }
        excerpt.truncate(cut);
    }
    let signature = normalise(&line);
    let mut others: Vec<String> = Vec::new();
    for l in &lines[i + 1..] {
        if others.len() == MAX_OTHER_ERRORS {
            break;
        }
        if rank(l) == Some(0) {
            let other = normalise(l);
            if other != signature && !others.contains(&other) {
                others.push(other);
            }
        }
    }
    Some(ErrorSignature {
        signature,
        line,
        excerpt,
        others,
    })
}

/// Strips what varies between runs of the same error: folders, line and column numbers, quote
/// styles, addresses and temporary file names.
pub fn normalise(line: &str) -> String {
    let line = line
        .trim()
        .replace(['‘', '’', '`', '´'], "'")
        .replace(['“', '”'], "\"")
        .replace(|c: char| c.is_control(), " ");
    // make's and modpost's own messages name build products, wherever the build put them.
    let products = line.starts_with("make") || line.contains("modpost: ");
    let mut out = Vec::new();
    for (i, word) in line.split_whitespace().enumerate() {
        out.push(normalise_word(word, i == 0 || products));
    }
    let mut out = out.join(" ");
    // `make -k` prints the same error without it.
    if out.starts_with("make") {
        if let Some(kept) = out.strip_suffix(" Stop.") {
            out.truncate(kept.len());
        }
    }
    out
}

/// Whether a path names a source or object file of a build.
fn is_source_or_object(path: &str) -> bool {
    [".c", ".h", ".o", ".ko", ".S", ".s", ".lds", ".mod"]
        .iter()
        .any(|ext| path.ends_with(ext))
}

/// Whether a path is where some runner built, not part of what the error is about.
fn runner_path(path: &str) -> bool {
    (path.starts_with('/') && !path.starts_with("//"))
        || path.starts_with("./")
        || path.starts_with("../")
}

/// `file`: a word where a path names the file a diagnostic is about or a build product, so that
/// only its name counts.
fn normalise_word(word: &str, file: bool) -> String {
    let lead_len = word.len() - word.trim_start_matches(['[', '(', '"', '\'']).len();
    let (lead, word) = word.split_at(lead_len);
    // The file a diagnostic is about keeps only its name, however the build named it: absolute,
    // relative to the module or to the kernel tree (`src/compat/compat.h`, `../../x/compat.h`);
    // so does any absolute or `./`, `../` path in the message. A path such as `linux/siphash.h`
    // in a compiler's message is what the error is about and stays.
    let mut parts = word.split(':');
    let first = parts.next().unwrap_or_default();
    // `src/main.o:src/main.c:5:` in a linker's message is a location too (an object, then its
    // source); `linux/genhd.h:` in a compiler's message is what the error is about.
    let second = word.split(':').nth(1).unwrap_or_default();
    let file = file || is_source_or_object(first) && is_source_or_object(second);
    let base = if runner_path(first) || file && first.contains('/') {
        first.rsplit('/').next().unwrap_or(first)
    } else {
        first
    };
    let base = if base.starts_with("cc") && base.ends_with(".s") || base.starts_with("tmp") {
        "<tmp>"
    } else {
        base
    };
    let mut stripped = lead.to_string();
    stripped.push_str(base);
    // After the file: line and column numbers go; a second location (`main.o:/tmp/x/main.c:5:`,
    // as ld prints) is read like the first.
    let mut after_file = true;
    for part in parts {
        if after_file && !part.is_empty() && part.chars().all(|c| c.is_ascii_digit()) {
            continue;
        }
        stripped.push(':');
        if runner_path(part) || file && part.contains('/') && is_source_or_object(part) {
            stripped.push_str(part.rsplit('/').next().unwrap_or(part));
            after_file = true;
        } else {
            stripped.push_str(part);
            after_file = part.contains('.') && !part.contains(' ');
        }
    }
    let mut stripped = mask_hex(&stripped);
    // make[2]: -> make:
    if let Some(open) = stripped.find("make[") {
        if let Some(close) = stripped[open..].find(']') {
            stripped.replace_range(open + 4..open + close + 1, "");
        }
    }
    stripped
}

/// `+0x1a` -> `+0x…`: code offsets move with every build.
fn mask_hex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("0x") {
        out.push_str(&rest[..i]);
        let digits = rest[i + 2..]
            .chars()
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        if digits == 0 {
            out.push_str("0x");
        } else {
            out.push_str("0x…");
        }
        rest = &rest[i + 2 + digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = include_str!("../tests/fixtures/wg-master-3d3c92b-debian-6.1.0-56.log");
    const MASTER_K: &str =
        include_str!("../tests/fixtures/wg-master-3d3c92b-debian-6.1.0-56-k.log");
    const V1: &str = include_str!("../tests/fixtures/wg-v1.0.20220627-debian-6.1.0-56.log");
    const V0_K: &str = include_str!("../tests/fixtures/wg-v0.0.20191226-debian-6.1.0-56-k.log");
    const V0: &str = include_str!("../tests/fixtures/wg-v0.0.20200121-debian-6.1.0-56.log");

    #[test]
    fn the_modules_own_error_is_one_signature_across_folders_and_lines() {
        let a = extract(MASTER).unwrap();
        let b = extract(V1).unwrap();
        let c = extract(MASTER_K).unwrap();
        assert!(a.line.contains("compat.h:38:2") && b.line.contains("compat.h:41:2"));
        assert_eq!(a.signature, b.signature);
        assert_eq!(a.signature, c.signature);
        assert_eq!(
            a.signature,
            "compat.h: error: #error \"WireGuard has been merged into Linux >= 5.6 and therefore this compatibility module is no longer required.\""
        );
    }

    #[test]
    fn a_real_api_error_is_another_signature() {
        let a = extract(V0).unwrap();
        let b = extract(V0_K).unwrap();
        assert_eq!(a.signature, b.signature);
        assert_eq!(
            a.signature,
            "queueing.h: error: 'struct sk_buff' has no member named 'headers_end'; did you mean 'headers'?"
        );
        assert_ne!(a.signature, extract(MASTER).unwrap().signature);
    }

    #[test]
    fn a_keep_going_log_lists_its_other_errors_once_each() {
        let e = extract(V0_K).unwrap();
        assert!(!e.others.is_empty());
        assert!(!e.others.contains(&e.signature));
        let mut unique = e.others.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), e.others.len());
        assert!(e.others.len() <= MAX_OTHER_ERRORS);
        assert!(extract(V0).unwrap().others.len() <= e.others.len());
    }

    #[test]
    fn timestamps_and_overwritten_progress_lines_are_not_the_error() {
        let plain = extract(V0).unwrap();
        let stamped: String = V0
            .lines()
            .map(|l| format!("2026-11-30T08:00:00.1234567Z {l}\n"))
            .collect();
        assert_eq!(extract(&stamped).unwrap().signature, plain.signature);
        let jenkins: String = V0.lines().map(|l| format!("[08:00:01] {l}\n")).collect();
        assert_eq!(extract(&jenkins).unwrap().signature, plain.signature);
        let progress = V0.replace("  CC [M]", "  [ 10%] building\r  CC [M]");
        assert_eq!(extract(&progress).unwrap().signature, plain.signature);
        // A line that only looks like a time is kept.
        assert_eq!(as_seen("12:30 is no timestamp"), "12:30 is no timestamp");
    }

    #[test]
    fn signature_ids_are_stable_and_distinct() {
        assert_eq!(signature_id("a"), "af63dc4c8601ec8c");
        assert_ne!(signature_id("a"), signature_id("b"));
    }

    #[test]
    fn excerpt_surrounds_the_error_and_is_bounded() {
        let e = extract(V0).unwrap();
        assert!(e.excerpt.contains(&e.line));
        assert!(e.excerpt.lines().count() <= CONTEXT_BEFORE + CONTEXT_AFTER + 1);
        let huge = format!("x.c:1:1: error: boom\n{}", "y".repeat(40_000));
        assert!(extract(&huge).unwrap().excerpt.len() <= MAX_EXCERPT);
    }

    #[test]
    fn other_error_kinds() {
        let ld = "  LD [M]  wg.ko\n/tmp/x/main.o: in function `f':\nmain.c:(.text+0x1a): undefined reference to `kfree_sensitive'\n";
        assert_eq!(
            extract(ld).unwrap().signature,
            "main.c:(.text+0x…): undefined reference to 'kfree_sensitive'"
        );
        let modpost =
            "ERROR: modpost: \"ip6_dst_lookup\" [/builds/a/src/wireguard.ko] undefined!\n";
        assert_eq!(
            extract(modpost).unwrap().signature,
            "ERROR: modpost: \"ip6_dst_lookup\" [wireguard.ko] undefined!"
        );
        let fallback = "  CC foo.o\nmake[2]: *** [scripts/Makefile.build:250: main.o] Error 1\nmake[1]: *** Error 2\n";
        assert_eq!(
            extract(fallback).unwrap().signature,
            "make: *** [Makefile.build: main.o] Error 1"
        );
        assert_eq!(extract("all good\n"), None);
        assert_eq!(normalise("a.c: error: x\u{1f}y\u{7}z"), "a.c: error: x y z");
        let fatal = "/builds/q/src/compat/compat.h:9:10: fatal error: linux/siphash.h: No such file or directory";
        assert_eq!(
            extract(fatal).unwrap().signature,
            "compat.h: fatal error: linux/siphash.h: No such file or directory"
        );
    }
}

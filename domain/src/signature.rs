//! Error signatures: the first meaningful error of a failing build log, normalised so that the
//! same error from another build folder, at another line, or from another commit is one
//! signature, while different errors stay different.

use serde::{Deserialize, Serialize};

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
}

/// How strongly a line marks the build's failure; lower is more specific.
fn rank(line: &str) -> Option<u8> {
    let l = line.trim_start();
    if l.contains("fatal error:")
        || l.contains(" error: ")
        || l.starts_with("error: ")
        || l.contains("#error")
    {
        return Some(0);
    }
    if l.contains("undefined reference to") {
        return Some(0);
    }
    if l.starts_with("ERROR:") && l.contains("modpost") || l.starts_with("ERROR: modpost:") {
        return Some(0);
    }
    // kbuild's own summary line, only when nothing better exists.
    if l.starts_with("make") && l.contains("***") && l.contains("Error") {
        return Some(1);
    }
    None
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
    let lines: Vec<&str> = log.lines().collect();
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
    Some(ErrorSignature {
        signature: normalise(&line),
        line,
        excerpt,
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
    let mut out = Vec::new();
    for word in line.split_whitespace() {
        out.push(normalise_word(word));
    }
    out.join(" ")
}

fn normalise_word(word: &str) -> String {
    let lead_len = word.len() - word.trim_start_matches(['[', '(', '"', '\'']).len();
    let (lead, word) = word.split_at(lead_len);
    // Absolute paths keep only their file name (the folder is the runner's):
    // /builds/<tmp>/src/compat/compat.h:38:2: -> compat.h:
    let (path_part, rest) = match word.find(':') {
        Some(i) => (&word[..i], &word[i..]),
        None => (word, ""),
    };
    let base = if path_part.starts_with('/') {
        path_part.rsplit('/').next().unwrap_or(path_part)
    } else {
        path_part
    };
    let base = if base.starts_with("cc") && base.ends_with(".s") || base.starts_with("tmp") {
        "<tmp>"
    } else {
        base
    };
    // Line and column numbers after the file name.
    let mut rest = rest;
    let mut stripped = lead.to_string();
    while let Some(r) = rest.strip_prefix(':') {
        let digits = r.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            break;
        }
        rest = &r[digits..];
    }
    stripped.push_str(base);
    stripped.push_str(rest);
    let stripped = mask_hex(&stripped);
    let mut stripped = stripped;
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
            "make: *** [scripts/Makefile.build: main.o] Error 1"
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

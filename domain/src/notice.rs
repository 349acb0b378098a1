//! What Trellis says about a breakage event: the feed entry's title and content, and the mail's
//! subject and plain-text body, all from one set of facts so that they never disagree.
//!
//! Mail bodies follow the habits of kernel mailing lists: plain text, prose wrapped at 72
//! columns, commands and log lines left whole (a wrapped log line or URL no longer works).

use crate::breakage::{Attribution, BisectHint, NeighbourAxis};
use crate::events::{BreakageEvent, EventKind};
use crate::history::short_sha;
use crate::kernel::Kernel;
use crate::view::format_ms;

/// Column at which prose is wrapped.
pub const WIDTH: usize = 72;
/// Most log lines a mail or feed entry quotes.
const EXCERPT_LINES: usize = 30;
/// Most kernels named one by one; more are counted.
const NAMED_KERNELS: usize = 40;

/// Absolute URLs of the pages an event points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Links {
    pub breakage: String,
    /// The first bad cell.
    pub cell: String,
    /// The first bad commit.
    pub commit: String,
    pub signature: Option<String>,
    /// The commits that fixed the same error before (`seen_before`, in its order).
    pub fixes: Vec<String>,
}

/// A kernel as people name it: `4.18.0-553.el8_10`, with its arch when it is not x86_64 and
/// its variant (`+debug`).
pub fn kernel_name(uname: &str, stream: &str) -> String {
    match Kernel::parse(uname, None, Some(stream)) {
        Ok(k) => {
            let mut name = k.version_release();
            if k.arch != "x86_64" {
                name.push('.');
                name.push_str(&k.arch);
            }
            if !k.variant.is_empty() {
                name.push('+');
                name.push_str(&k.variant);
            }
            name
        }
        Err(_) => uname.to_string(),
    }
}

/// The error itself, without the file and line it was reported at: `too many arguments to
/// function 'netif_napi_add'`.
pub fn short_error(signature: &str) -> &str {
    let message = signature
        .split_once("error: ")
        .map_or(signature, |(_, m)| m)
        .trim();
    match message.char_indices().nth(120) {
        Some((i, _)) => &message[..i],
        None => message,
    }
}

/// What broke, in a few words: `kernel 4.18.0-553.el8_10 broke the build`.
fn what_broke(e: &BreakageEvent) -> String {
    let b = &e.breakage.breakage;
    let kernel = kernel_name(&b.first_bad_kernel, &b.stream);
    let commit = short_sha(&b.first_bad_commit);
    match b.attribution {
        Attribution::Kernel => format!("kernel {kernel} broke the build"),
        Attribution::Module => format!("module commit {commit} broke the build"),
        Attribution::Both => format!("module commit {commit} broke the build on kernel {kernel}"),
        Attribution::Unknown => {
            format!("the build fails on kernel {kernel} at commit {commit}")
        }
    }
}

/// What fixed it: `commit abc1234`, `kernel 4.18.0-553.8.1.el8_10`, or why it closed.
fn what_fixed(e: &BreakageEvent) -> String {
    let b = &e.breakage.breakage;
    match (&b.fixed_by_commit, &b.fixed_by_kernel) {
        (Some(c), _) => format!("fixed by commit {}", short_sha(c)),
        (None, Some(k)) => format!("fixed by kernel {}", kernel_name(k, &b.stream)),
        (None, None) => "its failures are gone".to_string(),
    }
}

/// The feed entry's title: `el8: kernel 4.18.0-553.el8_10 broke the build: too many arguments
/// to function 'netif_napi_add'`; a fix says so first.
pub fn title(e: &BreakageEvent) -> String {
    let b = &e.breakage.breakage;
    let mut t = match e.kind {
        EventKind::Opened => format!("{}: {}", b.stream, what_broke(e)),
        EventKind::Fixed => format!("{}: fixed: {} ({})", b.stream, what_broke(e), what_fixed(e)),
    };
    if let Some(s) = &b.signature {
        t.push_str(": ");
        t.push_str(short_error(s));
    }
    t
}

/// The mail subject: `[trellis] wireguard-linux-compat: el8 kernel 4.18.0-553.el8_10 broke the
/// build`. The fix answers the opening mail, so it shares its subject after `Re: `.
pub fn subject(e: &BreakageEvent) -> String {
    let b = &e.breakage.breakage;
    let opened = format!("[trellis] {}: {} {}", e.project, b.stream, what_broke(e));
    match e.kind {
        EventKind::Opened => opened,
        EventKind::Fixed => format!("Re: {opened}"),
    }
}

/// One line of facts: a label and its value.
type Fact = (&'static str, String);

fn kernels_named(e: &BreakageEvent) -> String {
    let b = &e.breakage.breakage;
    let mut names: Vec<String> = b
        .kernels
        .iter()
        .take(NAMED_KERNELS)
        .map(|k| kernel_name(k, &b.stream))
        .collect();
    if b.kernels.len() > NAMED_KERNELS {
        names.push(format!("and {} more", b.kernels.len() - NAMED_KERNELS));
    }
    names.join(", ")
}

fn facts(e: &BreakageEvent) -> Vec<Fact> {
    let b = &e.breakage.breakage;
    let mut facts = vec![
        ("Project", e.project.clone()),
        ("Stream", format!("{} ({})", b.stream, b.stream_label)),
        (
            "Cause",
            format!(
                "{}: {}",
                b.attribution.as_str(),
                b.attribution.description()
            ),
        ),
        ("First bad", first_bad(e)),
        (
            "Kernels",
            format!("{} failing: {}", b.kernels.len(), kernels_named(e)),
        ),
        ("Failing cells", b.failing_cells.to_string()),
    ];
    if let Some(at) = b.opened_at {
        facts.push(("Opened", format_ms(at)));
    }
    if e.kind == EventKind::Fixed || !b.open {
        let mut fixed = what_fixed(e);
        if let Some(at) = b.fixed_at {
            fixed.push_str(&format!(", {}", format_ms(at)));
        }
        facts.push(("Fixed", fixed));
    }
    facts
}

/// The first bad one on the axis that explains it. A kernel update's breakage fails from the
/// oldest commit tested on it, so that commit is no culprit and is not named.
fn first_bad(e: &BreakageEvent) -> String {
    let b = &e.breakage.breakage;
    let kernel = &b.first_bad_kernel;
    let commit = short_sha(&b.first_bad_commit);
    match b.attribution {
        Attribution::Kernel => format!("kernel {kernel}"),
        Attribution::Module => format!("commit {commit} (first seen on {kernel})"),
        Attribution::Both | Attribution::Unknown => format!("commit {commit} on kernel {kernel}"),
    }
}

/// For a cause that is unknown: the neighbour cells whose results would tell it.
fn next_steps(e: &BreakageEvent) -> Vec<String> {
    let b = &e.breakage.breakage;
    b.next_cells
        .iter()
        .map(|n| {
            let blames = match n.axis {
                NeighbourAxis::Kernel => "a pass there blames the kernel update",
                NeighbourAxis::Commit => "a pass there blames a module commit",
            };
            format!(
                "test kernel {} at commit {}: {blames}",
                kernel_name(&n.kernel, &b.stream),
                short_sha(&n.commit)
            )
        })
        .collect()
}

/// Lines of one bisect axis: last good, first bad, the untested ones and the next to test.
fn bisect_lines(hint: &BisectHint, name: &dyn Fn(&str) -> String) -> Vec<Fact> {
    let mut lines = vec![
        ("last good", name(&hint.last_good)),
        ("first bad", name(&hint.first_bad)),
    ];
    if hint.adjacent() {
        lines.push(("untested", "none: the first bad one is known".to_string()));
    } else {
        let shown: Vec<String> = hint.untested.iter().take(10).map(|u| name(u)).collect();
        let more = hint.untested.len().saturating_sub(shown.len());
        let mut untested = format!("{}: {}", hint.untested.len(), shown.join(", "));
        if more > 0 {
            untested.push_str(&format!(" and {more} more"));
        }
        lines.push(("untested", untested));
        if let Some(next) = &hint.next {
            lines.push(("test next", name(next)));
        }
    }
    lines
}

/// The `git bisect start` line with abbreviated ids, short enough to read and to paste.
fn bisect_command(hint: &BisectHint) -> String {
    format!(
        "git bisect start {} {}",
        short12(&hint.first_bad),
        short12(&hint.last_good)
    )
}

fn short12(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

/// The excerpt of the first bad cell's log, bounded.
fn excerpt_lines(e: &BreakageEvent) -> Vec<&str> {
    e.breakage
        .excerpt
        .as_deref()
        .map(|x| x.lines().take(EXCERPT_LINES).collect())
        .unwrap_or_default()
}

/// Wraps prose at `width`, continuing lines with `indent`. Words longer than a line stay whole.
pub fn wrap(text: &str, width: usize, indent: &str) -> String {
    let mut out = String::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let room = if line.is_empty() { 0 } else { 1 };
        if !line.is_empty() && line.chars().count() + room + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_string();
        } else if room == 1 && line != indent {
            line.push(' ');
        }
        line.push_str(word);
    }
    out.push_str(&line);
    out
}

/// A `label: value` line, the value wrapped under itself.
fn fact_line(label: &str, value: &str, label_width: usize) -> String {
    let head = format!("{label}:{}", " ".repeat(label_width + 1 - label.len()));
    let indent = " ".repeat(head.len());
    let value = wrap(value, WIDTH - head.len(), "").replace('\n', &format!("\n{indent}"));
    format!("{head}{value}")
}

/// The plain-text body of a mail (or a feed reader's text): what broke and why, bisect hints
/// on both axes, the signature and log excerpt, and links. `footer` ends it (unsubscribe).
pub fn text_body(e: &BreakageEvent, links: &Links, footer: &str) -> String {
    let b = &e.breakage.breakage;
    let mut out = Vec::new();
    let lead = match e.kind {
        EventKind::Opened => format!(
            "On {} ({}), {} of {}. {}.",
            b.stream,
            b.stream_label,
            what_broke(e),
            e.project,
            capitalise(b.attribution.description())
        ),
        EventKind::Fixed => format!(
            "Fixed on {} ({}): {} of {}, {}.",
            b.stream,
            b.stream_label,
            what_broke(e),
            e.project,
            what_fixed(e)
        ),
    };
    out.push(wrap(&lead, WIDTH, ""));
    out.push(String::new());
    for (label, value) in facts(e) {
        out.push(fact_line(label, &value, 13));
    }
    let stream = b.stream.clone();
    let kernel = move |u: &str| kernel_name(u, &stream);
    let commit = |s: &str| short_sha(s).to_string();
    for (heading, hint, name) in [
        (
            "Kernel axis",
            &b.kernel_bisect,
            &kernel as &dyn Fn(&str) -> String,
        ),
        ("Commit axis", &b.commit_bisect, &commit),
    ] {
        if let Some(hint) = hint {
            out.push(String::new());
            out.push(heading.to_string());
            for (label, value) in bisect_lines(hint, name) {
                out.push(fact_line(&format!("  {label}"), &value, 13));
            }
            if hint.command.is_some() {
                out.push(format!("  {}", bisect_command(hint)));
            }
        }
    }
    let steps = next_steps(e);
    if !steps.is_empty() {
        out.push(String::new());
        out.push("Next step".to_string());
        out.extend(
            steps
                .iter()
                .map(|step| wrap(&format!("  {step}"), WIDTH, "    ")),
        );
    }
    if let Some(s) = &b.signature {
        out.push(String::new());
        out.push("Error signature".to_string());
        out.push(format!("  {s}"));
    }
    if !b.seen_before.is_empty() {
        out.push(String::new());
        out.push("Seen before: the fix that worked last time".to_string());
        for (p, url) in b.seen_before.iter().zip(links.fixes.iter()) {
            let item = wrap(&format!("{}: {url}", p.describe()), WIDTH - 2, "    ");
            out.push(format!("  {item}"));
        }
    }
    let excerpt = excerpt_lines(e);
    if !excerpt.is_empty() {
        out.push(String::new());
        out.push("Log excerpt (first bad cell)".to_string());
        out.extend(excerpt.iter().map(|l| format!("  {l}")));
    }
    out.push(String::new());
    out.push("Links".to_string());
    out.push(format!("  Breakage:       {}", links.breakage));
    out.push(format!("  First bad cell: {}", links.cell));
    out.push(format!("  Commit:         {}", links.commit));
    if let Some(s) = &links.signature {
        out.push(format!("  Signature:      {s}"));
    }
    if !footer.is_empty() {
        out.push(String::new());
        out.push("-- ".to_string());
        out.push(wrap(footer, WIDTH, ""));
    }
    let mut text = out.join("\n");
    text.push('\n');
    text
}

/// The same content as [`text_body`], as HTML for a feed entry.
pub fn html_body(e: &BreakageEvent, links: &Links) -> String {
    let b = &e.breakage.breakage;
    let mut h = String::new();
    h.push_str(&format!("<p>{}</p><dl>", escape(&title(e))));
    for (label, value) in facts(e) {
        h.push_str(&format!("<dt>{label}</dt><dd>{}</dd>", escape(&value)));
    }
    h.push_str("</dl>");
    let stream = b.stream.clone();
    let kernel = move |u: &str| kernel_name(u, &stream);
    let commit = |s: &str| short_sha(s).to_string();
    for (heading, hint, name) in [
        (
            "Kernel axis",
            &b.kernel_bisect,
            &kernel as &dyn Fn(&str) -> String,
        ),
        ("Commit axis", &b.commit_bisect, &commit),
    ] {
        if let Some(hint) = hint {
            h.push_str(&format!("<h3>{heading}</h3><ul>"));
            for (label, value) in bisect_lines(hint, name) {
                h.push_str(&format!("<li>{label}: {}</li>", escape(&value)));
            }
            h.push_str("</ul>");
            if let Some(command) = &hint.command {
                h.push_str(&format!("<pre>{}</pre>", escape(command)));
            }
        }
    }
    let steps = next_steps(e);
    if !steps.is_empty() {
        h.push_str("<h3>Next step</h3><ul>");
        for step in steps {
            h.push_str(&format!("<li>{}</li>", escape(&step)));
        }
        h.push_str("</ul>");
    }
    if let Some(s) = &b.signature {
        h.push_str(&format!("<h3>Error signature</h3><pre>{}</pre>", escape(s)));
    }
    if !b.seen_before.is_empty() {
        h.push_str("<h3>Seen before: the fix that worked last time</h3><ul>");
        for (p, url) in b.seen_before.iter().zip(links.fixes.iter()) {
            h.push_str(&format!(
                "<li><a href=\"{}\">{}</a></li>",
                escape(url),
                escape(&p.describe())
            ));
        }
        h.push_str("</ul>");
    }
    let excerpt = excerpt_lines(e);
    if !excerpt.is_empty() {
        h.push_str(&format!(
            "<h3>Log excerpt</h3><pre>{}</pre>",
            escape(&excerpt.join("\n"))
        ));
    }
    h.push_str("<ul>");
    let mut link = |label: &str, url: &str| {
        h.push_str(&format!("<li><a href=\"{}\">{label}</a></li>", escape(url)));
    };
    link("Breakage", &links.breakage);
    link("First bad cell", &links.cell);
    link("Commit", &links.commit);
    if let Some(s) = &links.signature {
        link("Signature", s);
    }
    h.push_str("</ul>");
    h
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Escapes text for HTML (element content and quoted attributes).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::breakage::Breakage;
    use crate::view::BreakageDetail;

    fn event(kind: EventKind, attribution: Attribution) -> BreakageEvent {
        let bad = format!("abc1234{:033x}", 0);
        BreakageEvent {
            id: 7,
            kind,
            project: "wireguard-linux-compat".to_string(),
            at: 1_700_000_000_000,
            updated_at: 1_700_000_000_000,
            uuid: "0b8e4f8a-9d0c-4f43-9c62-3f4e9f3b2a10".to_string(),
            breakage: BreakageDetail {
                breakage: Breakage {
                    id: "3".to_string(),
                    stream: "el8".to_string(),
                    stream_label: "RHEL 8".to_string(),
                    attribution,
                    first_bad_commit: bad.clone(),
                    first_bad_kernel: "4.18.0-553.el8_10.x86_64".to_string(),
                    start_kernel_id: 1,
                    start_commit_id: 2,
                    kernels: (0..45)
                        .map(|i| format!("4.18.0-553.{i}.1.el8_10.x86_64"))
                        .collect(),
                    commits: Vec::new(),
                    failing_cells: 45,
                    open: kind == EventKind::Opened,
                    fixed_by_commit: None,
                    fixed_by_kernel: (kind == EventKind::Fixed)
                        .then(|| "4.18.0-553.60.1.el8_10.x86_64".to_string()),
                    opened_at: Some(1_700_000_000_000),
                    fixed_at: None,
                    time_to_fix_ms: None,
                    signature: Some(
                        "src/compat/compat.h: error: too many arguments to function 'netif_napi_add'"
                            .to_string(),
                    ),
                    commit_bisect: None,
                    kernel_bisect: Some(BisectHint {
                        last_good: "4.18.0-513.24.1.el8_9.x86_64".to_string(),
                        first_bad: "4.18.0-553.el8_10.x86_64".to_string(),
                        untested: vec!["4.18.0-513.26.1.el8_9.x86_64".to_string()],
                        next: Some("4.18.0-513.26.1.el8_9.x86_64".to_string()),
                        command: None,
                    }),
                    next_cells: Vec::new(),
                    seen_before: Vec::new(),
                },
                error_line: None,
                excerpt: Some(format!(
                    "  CC [M]  /builds/x/src/device.o\n{}\n",
                    "a very long compiler line ".repeat(8)
                )),
            },
        }
    }

    fn links() -> Links {
        Links {
            breakage: "https://ci.example/p/wg/breakages#3".to_string(),
            cell: "https://ci.example/p/wg/cell/el8/4.18.0-553.el8_10.x86_64/abc".to_string(),
            commit: "https://ci.example/p/wg/commit/abc".to_string(),
            signature: None,
            fixes: Vec::new(),
        }
    }

    #[test]
    fn titles_and_subjects_say_what_happened() {
        let opened = event(EventKind::Opened, Attribution::Kernel);
        assert_eq!(
            title(&opened),
            "el8: kernel 4.18.0-553.el8_10 broke the build: too many arguments to function 'netif_napi_add'"
        );
        assert_eq!(
            subject(&opened),
            "[trellis] wireguard-linux-compat: el8 kernel 4.18.0-553.el8_10 broke the build"
        );
        let fixed = event(EventKind::Fixed, Attribution::Kernel);
        assert_eq!(
            title(&fixed),
            "el8: fixed: kernel 4.18.0-553.el8_10 broke the build (fixed by kernel 4.18.0-553.60.1.el8_10): too many arguments to function 'netif_napi_add'"
        );
        assert_eq!(subject(&fixed), format!("Re: {}", subject(&opened)));
    }

    #[test]
    fn mail_prose_is_wrapped_at_72_columns_and_log_lines_and_urls_stay_whole() {
        let e = event(EventKind::Opened, Attribution::Kernel);
        let body = text_body(&e, &links(), "You subscribed to every breakage. Unsubscribe: https://ci.example/unsubscribe/0123456789abcdef0123456789abcdef");
        // Quoted build output: the signature and the excerpt's lines.
        let mut quoted: Vec<&str> = e.breakage.excerpt.as_deref().unwrap().lines().collect();
        quoted.extend(e.breakage.breakage.signature.as_deref());
        for line in body.lines() {
            let whole = quoted.iter().any(|x| line == format!("  {x}"))
                || line.split_whitespace().any(|w| w.starts_with("https://"));
            assert!(
                whole || line.chars().count() <= WIDTH,
                "line over {WIDTH} columns: {line:?}"
            );
        }
        assert!(
            body.contains("45 failing: 4.18.0-553.0.1.el8_10,"),
            "{body}"
        );
        assert!(
            body.contains("test next:   4.18.0-513.26.1.el8_9"),
            "{body}"
        );
        assert!(body.contains(&links().cell));
    }

    #[test]
    fn wrapping_keeps_words_and_indents_continuations() {
        assert_eq!(wrap("a b c", 3, "  "), "a b\n  c");
        assert_eq!(
            wrap("averyveryverylongword x", 5, ""),
            "averyveryverylongword\nx"
        );
    }

    #[test]
    fn html_is_escaped() {
        let mut e = event(EventKind::Opened, Attribution::Module);
        e.breakage.breakage.signature = Some("x.c: error: <script>".to_string());
        let html = html_body(&e, &links());
        assert!(html.contains("&lt;script&gt;") && !html.contains("<script>"));
    }

    #[test]
    fn kernel_names_drop_the_common_arch_only() {
        assert_eq!(
            kernel_name("4.18.0-553.el8_10.x86_64", "el8"),
            "4.18.0-553.el8_10"
        );
        assert_eq!(
            kernel_name("5.14.0-427.el9_4.aarch64+64k", "el9"),
            "5.14.0-427.el9_4.aarch64+64k"
        );
    }

    #[test]
    fn the_fix_that_worked_last_time_is_in_the_mail_and_the_feed() {
        let mut e = event(EventKind::Opened, Attribution::Kernel);
        e.breakage.breakage.seen_before = vec![crate::precedent::Precedent {
            stream: "el9".into(),
            stream_label: "RHEL 9".into(),
            first_bad_kernel: "5.14.0-162.6.1.el9_1.x86_64".into(),
            first_bad_commit: "f".repeat(40),
            fixed_by_commit: "1234567".repeat(5) + "89abc",
            fix_subject: Some("compat: netif_napi_add lost its weight".into()),
            fixed_after_ms: Some(3 * 24 * 3_600_000),
            fixed_at: Some(1),
            same_signature: true,
        }];
        let mut l = links();
        l.fixes = vec!["https://ci.example/p/wg/commit/1234567".into()];
        let text = text_body(&e, &l, "footer");
        assert!(
            text.contains("Seen before: the fix that worked last time"),
            "{text}"
        );
        let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains("seen before on RHEL 9 (from 5.14.0-162.6.1.el9_1), fixed by commit 1234567 \"compat: netif_napi_add lost its weight\" after 3 days: https://ci.example/p/wg/commit/1234567"),
            "{text}"
        );
        let html = html_body(&e, &l);
        assert!(
            html.contains(
                "<a href=\"https://ci.example/p/wg/commit/1234567\">seen before on RHEL 9"
            ),
            "{html}"
        );
    }
}

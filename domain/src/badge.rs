//! Status badges for READMEs: what a project's (or one stream's) badge says, and its drawing as
//! a shields-style flat SVG ("el8 | passing", "el8 | 2 broken", "el8 | no results").
//!
//! Text is measured with Verdana's advance widths at 11 px, as shields.io does, and pinned with
//! `textLength`, so the badge looks the same whichever font the viewer has.

/// What a badge reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadgeStatus {
    /// Nothing has been reported yet.
    NoResults,
    /// Results, and no open breakage.
    Passing,
    /// This many open breakages.
    Broken(usize),
}

impl BadgeStatus {
    pub fn of(has_results: bool, open_breakages: usize) -> BadgeStatus {
        match (has_results, open_breakages) {
            (false, _) => BadgeStatus::NoResults,
            (true, 0) => BadgeStatus::Passing,
            (true, n) => BadgeStatus::Broken(n),
        }
    }

    fn message(self) -> String {
        match self {
            BadgeStatus::NoResults => "no results".to_string(),
            BadgeStatus::Passing => "passing".to_string(),
            BadgeStatus::Broken(n) => format!("{n} broken"),
        }
    }

    /// shields.io's lightgrey, brightgreen and red.
    fn color(self) -> &'static str {
        match self {
            BadgeStatus::NoResults => "#9f9f9f",
            BadgeStatus::Passing => "#4c1",
            BadgeStatus::Broken(_) => "#e05d44",
        }
    }
}

/// Longest label drawn, in characters; a longer one (a stream name from a URL) is cut with "…".
const MAX_LABEL_CHARS: usize = 40;

/// A badge: grey label on the left, coloured message on the right.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Badge {
    pub label: String,
    pub message: String,
    pub color: &'static str,
}

impl Badge {
    pub fn new(label: &str, status: BadgeStatus) -> Badge {
        let label = if label.chars().count() > MAX_LABEL_CHARS {
            let kept: String = label.chars().take(MAX_LABEL_CHARS - 1).collect();
            format!("{kept}…")
        } else {
            label.to_string()
        };
        Badge {
            label,
            message: status.message(),
            color: status.color(),
        }
    }

    /// The badge as a standalone SVG document, its text in a `<title>` for screen readers.
    pub fn svg(&self) -> String {
        let (label, message) = (Side::new(&self.label), Side::new(&self.message));
        let texts = [label.text(0), message.text(label.width)].concat();
        format!(
            concat!(
                r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" "#,
                r#"role="img" aria-label="{title}"><title>{title}</title>"#,
                r##"<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" "##,
                r#"stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>"#,
                r##"<clipPath id="r"><rect width="{width}" height="20" rx="3" fill="#fff"/>"##,
                r#"</clipPath><g clip-path="url(#r)">"#,
                r##"<rect width="{lw}" height="20" fill="#555"/>"##,
                r#"<rect x="{lw}" width="{mw}" height="20" fill="{color}"/>"#,
                r#"<rect width="{width}" height="20" fill="url(#s)"/></g>"#,
                r##"<g fill="#fff" text-anchor="middle" "##,
                r#"font-family="Verdana,Geneva,DejaVu Sans,sans-serif" "#,
                r#"text-rendering="geometricPrecision" font-size="110">{texts}</g></svg>"#,
            ),
            width = label.width + message.width,
            lw = label.width,
            mw = message.width,
            color = self.color,
            title = xml_escape(&format!("{}: {}", self.label, self.message)),
            texts = texts,
        )
    }
}

/// One half of a badge: its text, the text's width in tenths of a pixel and the half's width in
/// pixels (5 px of padding on each side).
struct Side {
    text: String,
    text_width: u32,
    width: u32,
}

impl Side {
    fn new(text: &str) -> Side {
        let text_width = text_width(text);
        Side {
            text: xml_escape(text),
            text_width,
            width: text_width.div_ceil(10) + 10,
        }
    }

    /// The text (with its shadow) centred in the half starting at `x` px; drawn at 10x scale,
    /// as shields does, for sub-pixel placement.
    fn text(&self, x: u32) -> String {
        format!(
            concat!(
                r##"<text aria-hidden="true" x="{x}" y="150" fill="#010101" fill-opacity=".3" "##,
                r#"transform="scale(.1)" textLength="{length}">{text}</text>"#,
                r#"<text x="{x}" y="140" transform="scale(.1)" "#,
                r#"textLength="{length}">{text}</text>"#,
            ),
            x = x * 10 + self.width * 5,
            length = self.text_width,
            text = self.text,
        )
    }
}

/// Verdana's advance widths (units of 1/2048 em) of the printable ASCII characters, from space.
const VERDANA: [u16; 95] = [
    720, 809, 1047, 1832, 1303, 2210, 1499, 563, 911, 911, 1303, 1832, 745, 861, 745,
    921, // ' '../
    1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, 1303, // 0..9
    921, 921, 1832, 1832, 1832, 1114, 2048, // :..@
    1401, 1405, 1430, 1577, 1294, 1178, 1587, 1540, 861, 917, 1415, 1145, 1731, // A..M
    1532, 1643, 1242, 1643, 1441, 1401, 1245, 1510, 1401, 2025, 1405, 1245, 1405, // N..Z
    911, 921, 911, 1832, 1303, 1303, // [..`
    1229, 1276, 1067, 1276, 1208, 720, 1276, 1296, 562, 687, 1188, 562, 1992, // a..m
    1296, 1243, 1276, 1276, 874, 1067, 807, 1296, 1188, 1683, 1188, 1188, 1051, // n..z
    1300, 921, 1300, 1832, // {..~
];

/// Any other character is measured as a wide letter: a badge a little too wide reads better
/// than one whose text is squeezed.
const OTHER_WIDTH: u16 = 1643;

/// The width of `text` in Verdana 11 px, in tenths of a pixel.
fn text_width(text: &str) -> u32 {
    let units: u32 = text
        .chars()
        .map(|c| {
            let i = (c as usize).wrapping_sub(0x20);
            u32::from(VERDANA.get(i).copied().unwrap_or(OTHER_WIDTH))
        })
        .sum();
    (units * 110).div_ceil(2048)
}

/// Text safe inside XML elements and attributes. Characters XML 1.0 forbids (control
/// characters) become U+FFFD, so the document stays well-formed whatever a URL carried.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(' '),
            c if c.is_control() || matches!(c, '\u{FFFE}' | '\u{FFFF}') => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_follows_results_and_open_breakages() {
        assert_eq!(BadgeStatus::of(false, 0), BadgeStatus::NoResults);
        // Breakages without results cannot happen; if they did, "no results" is what is known.
        assert_eq!(BadgeStatus::of(false, 3), BadgeStatus::NoResults);
        assert_eq!(BadgeStatus::of(true, 0), BadgeStatus::Passing);
        assert_eq!(BadgeStatus::of(true, 2), BadgeStatus::Broken(2));
    }

    #[test]
    fn messages_and_colours() {
        let badge = |s| Badge::new("el8", s);
        assert_eq!(
            badge(BadgeStatus::Passing),
            Badge {
                label: "el8".into(),
                message: "passing".into(),
                color: "#4c1"
            }
        );
        let broken = badge(BadgeStatus::Broken(2));
        assert_eq!(
            (broken.message.as_str(), broken.color),
            ("2 broken", "#e05d44")
        );
        let none = badge(BadgeStatus::NoResults);
        assert_eq!(
            (none.message.as_str(), none.color),
            ("no results", "#9f9f9f")
        );
    }

    #[test]
    fn the_svg_says_it_in_its_title_and_its_text() {
        let svg = Badge::new("el8", BadgeStatus::Broken(2)).svg();
        assert!(svg.starts_with(r#"<svg xmlns="http://www.w3.org/2000/svg""#));
        assert!(svg.contains("<title>el8: 2 broken</title>"));
        assert!(svg.contains(r#"aria-label="el8: 2 broken""#));
        assert!(svg.contains(">el8</text>") && svg.contains(">2 broken</text>"));
        assert!(svg.contains(r##"fill="#e05d44""##));
        assert!(svg.ends_with("</svg>"));
    }

    #[test]
    fn widths_follow_the_text() {
        // Verdana 11 px: "passing" is about 42 px wide; digits are all one width.
        assert_eq!(text_width("passing"), 418);
        assert_eq!(text_width("0"), text_width("9"));
        assert!(text_width("WWW") > text_width("iii"));
        assert_eq!(text_width(""), 0);
        // Halves are padded by 5 px on each side, the whole badge is both halves.
        let (label, message) = (Side::new("el8"), Side::new("passing"));
        assert_eq!(message.width, 42 + 10);
        let width = label.width + message.width;
        let svg = Badge::new("el8", BadgeStatus::Passing).svg();
        assert!(svg.contains(&format!(r#"width="{width}" height="20" role="img""#)));
    }

    #[test]
    fn text_from_a_url_is_escaped_and_clipped() {
        let svg = Badge::new("<a href=\"x\">&'\u{1}", BadgeStatus::Passing).svg();
        assert!(svg.contains("&lt;a href=&quot;x&quot;&gt;&amp;&apos;\u{FFFD}</text>"));
        assert!(!svg.contains("<a ") && !svg.contains('\u{1}'));

        let long = "x".repeat(100);
        let badge = Badge::new(&long, BadgeStatus::NoResults);
        assert_eq!(badge.label.chars().count(), MAX_LABEL_CHARS);
        assert!(badge.label.ends_with('…'));
        assert_eq!(Badge::new("el9", BadgeStatus::Passing).label, "el9");
    }
}

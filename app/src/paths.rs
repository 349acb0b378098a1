//! URLs of the pages, built in one place.

use trellis_domain::Kernel;

/// Percent-encodes a path segment (kernel versions may hold `^`).
fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

pub fn project(project: &str) -> String {
    format!("/p/{}", segment(project))
}

pub fn breakages(project: &str) -> String {
    format!("/p/{}/breakages", segment(project))
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
    format!("/p/{}/commit/{sha}", segment(project))
}

pub fn signature(project: &str, signature: &str) -> String {
    format!(
        "/p/{}/signature/{}",
        segment(project),
        trellis_domain::signature::signature_id(signature)
    )
}

/// `/p/{project}/cell/{stream}/{uname -r}/{sha}`: readable, and stable across databases.
pub fn cell(project: &str, kernel: &Kernel, sha: &str) -> String {
    format!("{}{sha}", cell_prefix(project, kernel))
}

/// The cell URL of a kernel's row, up to the commit sha.
pub fn cell_prefix(project: &str, kernel: &Kernel) -> String {
    format!(
        "/p/{}/cell/{}/{}/",
        segment(project),
        segment(&kernel.stream),
        segment(&kernel.uname())
    )
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
}

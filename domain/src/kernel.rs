//! Kernels: parsing what a runner reports (`uname -r`, or version-release plus arch), deriving the
//! distribution stream, and ordering kernels of one stream exactly as RPM does.

use crate::report::FieldError;
use crate::version::rpmvercmp;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// Architectures that `uname -r` of a distribution kernel may end with.
const KNOWN_ARCHES: &[&str] = &[
    "x86_64", "aarch64", "ppc64le", "ppc64", "s390x", "i686", "i386", "armv7hl", "riscv64",
    "noarch",
];

/// A kernel's identity: (stream, version-release, arch, variant).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Kernel {
    /// Distribution stream slug: `el8`, `rhel-8`, `centos-stream-9`, `upstream`.
    pub stream: String,
    /// Upstream version part, before the first `-`: `4.18.0`.
    pub version: String,
    /// Package release, after the first `-`: `553.5.1.el8_10`; empty for kernel.org versions.
    pub release: String,
    pub arch: String,
    /// Build variant that `uname -r` shows after `+`: `debug`, `rt`, `64k`; empty for the default.
    pub variant: String,
}

impl Kernel {
    /// Parses a report's `kernel` fields. Every problem is reported, each under its field name.
    pub fn parse(
        version: &str,
        arch: Option<&str>,
        distro: Option<&str>,
    ) -> Result<Kernel, Vec<FieldError>> {
        let mut errors = Vec::new();
        let raw = version.trim();
        if raw.is_empty() || raw.len() > 128 {
            return Err(vec![FieldError::new(
                "kernel.version",
                "must be 1 to 128 characters, e.g. 4.18.0-553.el8_10.x86_64",
            )]);
        }
        if let Some(bad) = raw
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "._+~^-".contains(*c)))
        {
            return Err(vec![FieldError::new(
                "kernel.version",
                format!("contains {bad:?}; allowed are letters, digits and . _ + ~ ^ -"),
            )]);
        }

        let (rest, variant) = match raw.split_once('+') {
            Some((rest, variant)) => (rest, variant),
            None => (raw, ""),
        };
        if raw.contains('+') && (variant.is_empty() || !variant.chars().all(is_slug_char)) {
            errors.push(FieldError::new(
                "kernel.version",
                "the variant after '+' must be a non-empty lowercase word such as debug or rt",
            ));
        }

        let suffix_arch = KNOWN_ARCHES
            .iter()
            .find(|a| rest.len() > a.len() + 1 && rest.ends_with(&format!(".{a}")[..]))
            .copied();
        let vr = match suffix_arch {
            Some(a) => &rest[..rest.len() - a.len() - 1],
            None => rest,
        };
        let arch = match (suffix_arch, arch.map(str::trim).filter(|a| !a.is_empty())) {
            (Some(s), Some(given)) if s != given => {
                errors.push(FieldError::new(
                    "kernel.arch",
                    format!("is {given:?} but kernel.version ends with .{s}"),
                ));
                s.to_string()
            }
            (Some(s), _) => s.to_string(),
            (None, Some(given))
                if given.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && given.len() <= 16 =>
            {
                given.to_string()
            }
            (None, Some(given)) => {
                errors.push(FieldError::new(
                    "kernel.arch",
                    format!("{given:?} is not an architecture name such as x86_64 or aarch64"),
                ));
                String::new()
            }
            (None, None) => {
                errors.push(FieldError::new(
                    "kernel.arch",
                    "is required when kernel.version does not end with the arch (as uname -r does)",
                ));
                String::new()
            }
        };

        let (ver, release) = vr.split_once('-').unwrap_or((vr, ""));
        if ver.is_empty() || !ver.starts_with(|c: char| c.is_ascii_digit()) {
            errors.push(FieldError::new(
                "kernel.version",
                "must start with the upstream version, e.g. 5.14.0-427.el9_4 or 5.4.280",
            ));
        }

        let stream = match distro.map(str::trim).filter(|d| !d.is_empty()) {
            Some(d) if is_slug(d) => Some(d.to_string()),
            Some(d) => {
                errors.push(FieldError::new(
                    "kernel.distro",
                    format!("{d:?} must be a lowercase slug such as rhel-8 or centos-stream-9"),
                ));
                None
            }
            None => derive_stream(release),
        };
        let stream = match stream {
            Some(s) => s,
            None => {
                if errors.is_empty() {
                    errors.push(FieldError::new(
                        "kernel.distro",
                        format!(
                            "is required: no elN dist tag in release {release:?} to derive the stream from"
                        ),
                    ));
                }
                String::new()
            }
        };

        if errors.is_empty() {
            Ok(Kernel {
                stream,
                version: ver.to_string(),
                release: release.to_string(),
                arch,
                variant: variant.to_string(),
            })
        } else {
            Err(errors)
        }
    }

    /// `version-release` as the package names it: `4.18.0-553.el8_10`.
    pub fn version_release(&self) -> String {
        if self.release.is_empty() {
            self.version.clone()
        } else {
            format!("{}-{}", self.version, self.release)
        }
    }

    /// What `uname -r` prints for this kernel: `3.10.0-1160.el7.x86_64+debug`. Unique within a stream.
    pub fn uname(&self) -> String {
        let mut s = format!("{}.{}", self.version_release(), self.arch);
        if !self.variant.is_empty() {
            s.push('+');
            s.push_str(&self.variant);
        }
        s
    }

    /// Orders two kernels of one stream as RPM orders their packages (version, then release),
    /// then by arch and variant so that kernels that RPM calls equal still get a stable order.
    pub fn rpm_cmp(&self, other: &Kernel) -> Ordering {
        let upstream = self.stream == UPSTREAM;
        rpmvercmp(&self.version, &other.version)
            .then_with(|| {
                if upstream {
                    // kernel.org release candidates (6.10.0-rc3) come before the release itself.
                    rpmvercmp(
                        &rc_as_prerelease(&self.release),
                        &rc_as_prerelease(&other.release),
                    )
                } else {
                    rpmvercmp(&self.release, &other.release)
                }
            })
            .then_with(|| self.version_release().cmp(&other.version_release()))
            .then_with(|| self.arch.cmp(&other.arch))
            .then_with(|| self.variant.cmp(&other.variant))
    }
}

fn rc_as_prerelease(release: &str) -> String {
    if release.starts_with("rc") {
        format!("~{release}")
    } else {
        release.to_string()
    }
}

pub const UPSTREAM: &str = "upstream";

fn is_slug_char(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' || c == '.'
}

/// A lowercase identifier usable in URLs: `rhel-8`, `centos-stream-9`.
pub fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars().all(is_slug_char)
}

/// `el8` from a release carrying an `.el8` / `.el8_10` dist tag; `upstream` for kernel.org versions.
fn derive_stream(release: &str) -> Option<String> {
    if release.is_empty()
        || (release.starts_with("rc") && release[2..].chars().all(|c| c.is_ascii_digit()))
    {
        return Some(UPSTREAM.to_string());
    }
    release.split('.').find_map(|part| {
        let major = part.strip_prefix("el")?.split('_').next()?;
        (!major.is_empty() && major.chars().all(|c| c.is_ascii_digit()))
            .then(|| format!("el{major}"))
    })
}

/// The stream as a person reads it: `rhel-8` → "RHEL 8", `centos-stream-9` → "CentOS Stream 9".
pub fn stream_label(stream: &str) -> String {
    if stream == UPSTREAM {
        return "Upstream (kernel.org)".to_string();
    }
    if let Some(n) = stream
        .strip_prefix("el")
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
    {
        return format!("Enterprise Linux {n}");
    }
    const FAMILIES: &[(&str, &str)] = &[
        ("centos-stream", "CentOS Stream"),
        ("rhel", "RHEL"),
        ("centos", "CentOS"),
        ("almalinux", "AlmaLinux"),
        ("alma", "AlmaLinux"),
        ("rocky", "Rocky Linux"),
        ("oracle", "Oracle Linux"),
        ("ol", "Oracle Linux"),
        ("fedora", "Fedora"),
    ];
    for (prefix, name) in FAMILIES {
        if let Some(rest) = stream.strip_prefix(prefix) {
            if rest.is_empty() {
                return name.to_string();
            }
            if let Some(v) = rest.strip_prefix('-') {
                return format!("{name} {v}");
            }
        }
    }
    stream
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Display order of streams: upstream first, then newest major release first, then name.
pub fn stream_cmp(a: &str, b: &str) -> Ordering {
    let key = |s: &str| {
        let major: u64 = s
            .rsplit(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok())
            .unwrap_or(0);
        (s != UPSTREAM, std::cmp::Reverse(major))
    };
    key(a).cmp(&key(b)).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(v: &str) -> Kernel {
        Kernel::parse(v, None, None).unwrap()
    }

    #[test]
    fn parses_uname_with_arch_and_variant() {
        let kernel = k("3.10.0-1160.119.1.el7.x86_64+debug");
        assert_eq!(kernel.stream, "el7");
        assert_eq!(kernel.version, "3.10.0");
        assert_eq!(kernel.release, "1160.119.1.el7");
        assert_eq!(kernel.arch, "x86_64");
        assert_eq!(kernel.variant, "debug");
        assert_eq!(kernel.uname(), "3.10.0-1160.119.1.el7.x86_64+debug");
        let el8 = k("4.18.0-553.el8_10.x86_64");
        assert_eq!((el8.stream.as_str(), el8.variant.as_str()), ("el8", ""));
        assert_eq!(k("5.14.0-427.13.1.el9_4.aarch64+64k").variant, "64k");
    }

    #[test]
    fn parses_version_release_with_separate_arch_and_distro() {
        let kernel =
            Kernel::parse("4.18.0-483.el8", Some("aarch64"), Some("centos-stream-8")).unwrap();
        assert_eq!(kernel.stream, "centos-stream-8");
        assert_eq!(kernel.uname(), "4.18.0-483.el8.aarch64");
        let upstream = Kernel::parse("5.4.280", Some("x86_64"), None).unwrap();
        assert_eq!(upstream.stream, UPSTREAM);
        assert_eq!(upstream.release, "");
        assert_eq!(upstream.uname(), "5.4.280.x86_64");
    }

    #[test]
    fn rejects_what_cannot_name_a_kernel() {
        let fields = |v: &str, a: Option<&str>, d: Option<&str>| -> Vec<String> {
            Kernel::parse(v, a, d)
                .unwrap_err()
                .into_iter()
                .map(|e| e.field)
                .collect()
        };
        assert_eq!(fields("4.18.0-553.el8_10", None, None), ["kernel.arch"]);
        assert_eq!(
            fields("4.18.0-553.el8_10.x86_64", Some("aarch64"), None),
            ["kernel.arch"]
        );
        assert_eq!(fields("", None, None), ["kernel.version"]);
        assert_eq!(fields("4.18.0 553", None, None), ["kernel.version"]);
        assert_eq!(
            fields("6.1.0-26-amd64", Some("x86_64"), None),
            ["kernel.distro"]
        );
        assert_eq!(
            fields("4.18.0-553.el8.x86_64", None, Some("RHEL 8")),
            ["kernel.distro"]
        );
        assert_eq!(fields("linux-4.18.x86_64", None, None), ["kernel.version"]);
        assert_eq!(
            fields("4.18.0-553.el8.x86_64+", None, None),
            ["kernel.version"]
        );
    }

    #[test]
    fn orders_within_a_stream_as_rpm() {
        let mut kernels: Vec<Kernel> = [
            "4.18.0-553.5.1.el8_10.x86_64",
            "4.18.0-477.10.1.el8_8.x86_64",
            "4.18.0-553.el8_10.x86_64",
            "4.18.0-80.el8.x86_64",
            "4.18.0-477.27.1.el8_8.x86_64",
            "4.18.0-553.5.1.el8_10.x86_64+debug",
        ]
        .iter()
        .map(|v| k(v))
        .collect();
        kernels.sort_by(|a, b| a.rpm_cmp(b));
        let order: Vec<String> = kernels.iter().map(Kernel::uname).collect();
        assert_eq!(
            order,
            [
                "4.18.0-80.el8.x86_64",
                "4.18.0-477.10.1.el8_8.x86_64",
                "4.18.0-477.27.1.el8_8.x86_64",
                "4.18.0-553.el8_10.x86_64",
                "4.18.0-553.5.1.el8_10.x86_64",
                "4.18.0-553.5.1.el8_10.x86_64+debug",
            ]
        );
    }

    #[test]
    fn rpm_equal_kernels_get_a_stable_order() {
        // rpm calls these equal (separators are equivalent); the order must still be total.
        let a = Kernel::parse("4.18.0-80.el8", Some("x86_64"), Some("x")).unwrap();
        let b = Kernel::parse("4.18.0-80_el8", Some("x86_64"), Some("x")).unwrap();
        assert_eq!(rpmvercmp(&a.release, &b.release), Ordering::Equal);
        assert_ne!(a.rpm_cmp(&b), Ordering::Equal);
        assert_eq!(a.rpm_cmp(&b), b.rpm_cmp(&a).reverse());
    }

    #[test]
    fn upstream_release_candidates_precede_the_release() {
        let rc = Kernel::parse("6.10.0-rc3", Some("x86_64"), None).unwrap();
        let ga = Kernel::parse("6.10.0", Some("x86_64"), None).unwrap();
        assert_eq!(rc.stream, UPSTREAM);
        assert_eq!(rc.rpm_cmp(&ga), Ordering::Less);
    }

    #[test]
    fn stream_labels_and_order() {
        assert_eq!(stream_label("rhel-8"), "RHEL 8");
        assert_eq!(stream_label("centos-stream-8"), "CentOS Stream 8");
        assert_eq!(stream_label("almalinux-9"), "AlmaLinux 9");
        assert_eq!(stream_label("el7"), "Enterprise Linux 7");
        assert_eq!(stream_label("upstream"), "Upstream (kernel.org)");
        assert_eq!(stream_label("my-distro-2"), "My Distro 2");
        let mut streams = vec!["rhel-7", "centos-stream-9", "upstream", "rhel-9", "rhel-8"];
        streams.sort_by(|a, b| stream_cmp(a, b));
        assert_eq!(
            streams,
            ["upstream", "centos-stream-9", "rhel-9", "rhel-8", "rhel-7"]
        );
    }
}

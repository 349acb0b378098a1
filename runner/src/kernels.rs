//! The kernel trees this host can build against, found by globs, and naming helpers for them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Architectures the server recognises at the end of a uname.
const ARCHES: &[&str] = &[
    "x86_64", "aarch64", "ppc64le", "ppc64", "s390x", "i686", "i386", "armv7hl", "riscv64",
    "noarch",
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelTree {
    pub uname: String,
    pub dir: PathBuf,
}

/// The server's uname rule: starts with a digit; letters, digits and `. _ ~ ^ -`; optionally
/// `+variant` in lowercase; at most 128 bytes.
pub fn valid_uname(u: &str) -> bool {
    let (base, variant) = match u.split_once('+') {
        Some((b, v)) => (b, Some(v)),
        None => (u, None),
    };
    u.len() <= 128
        && base.starts_with(|c: char| c.is_ascii_digit())
        && base
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._~^-".contains(c))
        && variant.is_none_or(|v| {
            !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
        })
}

/// The uname of the tree at `dir`: `include/config/kernel.release` when present, else the
/// directory's name.
fn uname_of(dir: &Path) -> Option<String> {
    let release = dir.join("include/config/kernel.release");
    if let Ok(text) = std::fs::read_to_string(release) {
        let t = text.trim();
        if !t.is_empty() {
            return Some(t.to_string());
        }
    }
    dir.file_name().map(|n| n.to_string_lossy().into_owned())
}

/// Every tree matching the globs, one per uname (the first glob's match wins), sorted by uname.
/// Names the server would refuse are left out, with a note, so one odd directory cannot make
/// every lease fail.
pub fn discover(globs: &[String]) -> Vec<KernelTree> {
    let mut found: BTreeMap<String, PathBuf> = BTreeMap::new();
    for pattern in globs {
        let Ok(paths) = glob::glob(pattern) else {
            continue;
        };
        for dir in paths.flatten().filter(|p| p.is_dir()) {
            let Some(uname) = uname_of(&dir) else {
                continue;
            };
            if !valid_uname(&uname) {
                crate::out::debug(format_args!(
                    "skipping {}: {uname:?} is not a kernel release",
                    dir.display()
                ));
                continue;
            }
            found.entry(uname).or_insert(dir);
        }
    }
    found
        .into_iter()
        .map(|(uname, dir)| KernelTree { uname, dir })
        .collect()
}

/// The tree in a provisioned directory: an unpacked kernel-devel package keeps it under
/// `usr/src/kernels/<uname>`; anything else is taken as the tree itself.
pub fn provisioned_tree(dir: &Path, uname: &str) -> PathBuf {
    let nested = dir.join("usr/src/kernels").join(uname);
    if nested.is_dir() {
        nested
    } else {
        dir.to_path_buf()
    }
}

/// Trees the runner provisioned into `cache`, one directory per uname. Dot-directories are
/// provisioning still in progress (or interrupted) and are left out.
pub fn provisioned(cache: &Path) -> Vec<KernelTree> {
    let Ok(entries) = std::fs::read_dir(cache) else {
        return Vec::new();
    };
    let mut trees: Vec<KernelTree> = entries
        .flatten()
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            let uname = e.file_name().to_string_lossy().into_owned();
            (!uname.starts_with('.') && valid_uname(&uname)).then(|| KernelTree {
                dir: provisioned_tree(&e.path(), &uname),
                uname,
            })
        })
        .collect();
    trees.sort_by(|a, b| a.uname.cmp(&b.uname));
    trees
}

/// `4.18.0-513.5.1.el8_9.x86_64+debug` -> `4.18.0-513.5.1.el8_9`: the version-release a
/// package manager names.
pub fn version_release(uname: &str) -> String {
    let base = uname.split_once('+').map_or(uname, |(b, _)| b);
    ARCHES
        .iter()
        .find_map(|a| base.strip_suffix(&format!(".{a}")))
        .unwrap_or(base)
        .to_string()
}

/// This host's arch as RPM names it (`x86_64`, `aarch64`, `ppc64le`, `s390x`).
pub fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "powerpc64" if cfg!(target_endian = "little") => "ppc64le",
        "powerpc64" => "ppc64",
        "x86" => "i686",
        other => other,
    }
}

/// Whether a tree of `tree_uname` is the kernel the server calls `leased`: the same, or the
/// same with the host's arch that the lease call sent along (`6.1.192` and `6.1.192.x86_64`).
pub fn names(tree_uname: &str, leased: &str) -> bool {
    tree_uname == leased
        || arch_of(tree_uname).is_none()
            && leased
                .strip_suffix(host_arch())
                .and_then(|rest| rest.strip_suffix('.'))
                == Some(tree_uname)
}

/// The arch at the end of a uname, if it names one.
pub fn arch_of(uname: &str) -> Option<&'static str> {
    let base = uname.split_once('+').map_or(uname, |(b, _)| b);
    ARCHES
        .iter()
        .find(|a| base.ends_with(&format!(".{a}")))
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovers_trees_by_dir_name_and_kernel_release() {
        let tmp = tempfile::tempdir().unwrap();
        let kernels = tmp.path().join("kernels");
        for d in [
            "4.18.0-513.5.1.el8_9.x86_64",
            "5.14.0-427.el9.x86_64",
            "custom-tree",
            "not-a-kernel",
        ] {
            std::fs::create_dir_all(kernels.join(d)).unwrap();
        }
        std::fs::write(kernels.join("README"), "a file, not a tree").unwrap();
        let cfg = kernels.join("custom-tree/include/config");
        std::fs::create_dir_all(&cfg).unwrap();
        std::fs::write(cfg.join("kernel.release"), "6.1.55-rt15\n").unwrap();
        // A second glob naming a tree already found keeps the first.
        let other = tmp.path().join("other/5.14.0-427.el9.x86_64");
        std::fs::create_dir_all(&other).unwrap();

        let globs = vec![
            format!("{}/*", kernels.display()),
            format!("{}/*", tmp.path().join("other").display()),
        ];
        let trees = discover(&globs);
        let names: Vec<&str> = trees.iter().map(|t| t.uname.as_str()).collect();
        assert_eq!(
            names,
            [
                "4.18.0-513.5.1.el8_9.x86_64",
                "5.14.0-427.el9.x86_64",
                "6.1.55-rt15"
            ]
        );
        assert_eq!(trees[1].dir, kernels.join("5.14.0-427.el9.x86_64"));
        assert_eq!(trees[2].dir, kernels.join("custom-tree"));
    }

    #[test]
    fn provisioned_trees_skip_partial_ones_and_find_rpm_layouts() {
        let tmp = tempfile::tempdir().unwrap();
        let u = "4.18.0-513.el8.x86_64";
        std::fs::create_dir_all(tmp.path().join(u).join("usr/src/kernels").join(u)).unwrap();
        std::fs::create_dir_all(tmp.path().join("6.1.55")).unwrap();
        std::fs::create_dir_all(tmp.path().join(".partial-x")).unwrap();
        let trees = provisioned(tmp.path());
        assert_eq!(trees.len(), 2);
        assert_eq!(trees[0].uname, u);
        assert_eq!(
            trees[0].dir,
            tmp.path().join(u).join("usr/src/kernels").join(u)
        );
        assert_eq!(trees[1].dir, tmp.path().join("6.1.55"));
    }

    #[test]
    fn version_and_arch() {
        assert_eq!(
            version_release("4.18.0-513.5.1.el8_9.x86_64"),
            "4.18.0-513.5.1.el8_9"
        );
        assert_eq!(
            version_release("3.10.0-1160.el7.x86_64+debug"),
            "3.10.0-1160.el7"
        );
        assert_eq!(version_release("6.1.55"), "6.1.55");
        assert_eq!(arch_of("5.14.0-1.el9.aarch64"), Some("aarch64"));
        assert_eq!(arch_of("6.1.55"), None);
        let leased = format!("6.1.192.{}", host_arch());
        assert!(names("6.1.192", &leased));
        assert!(names(&leased, &leased));
        assert!(!names("6.1.19", &leased));
        assert!(!names(
            "4.18.0-553.el8_10.aarch64",
            "4.18.0-553.el8_10.aarch64.x86_64"
        ));
        assert!(valid_uname("3.10.0-1160.el7.x86_64+debug"));
        assert!(!valid_uname("not-a-kernel") && !valid_uname("5.1+DEBUG"));
    }
}

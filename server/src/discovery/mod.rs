//! Kernel discovery: polls each project's kernel sources (dnf/yum repositories such as a vault's
//! `BaseOS/x86_64/os/`) and registers every version of the source's package as a kernel of its
//! stream. A source that fails (unreachable, truncated, bad checksum, bad XML) changes nothing
//! known: the error is logged and recorded on the source, and its last good state stays.

mod fetch;
mod repodata;

pub use fetch::{client, REQUEST_TIMEOUT};

use crate::storage::{DiscoveredKernel, KernelSource, RepoState, Storage};
use repodata::{parse_primary, parse_repomd, Compression, Package, PrimaryError};
use reqwest::{Client, Url};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use trellis_domain::Kernel;

/// repomd.xml is a few kilobytes; anything near this is not one.
const MAX_REPOMD: u64 = 8 << 20;
/// The compressed primary metadata downloaded (a distribution's is a few to tens of MiB).
const MAX_PRIMARY: u64 = 512 << 20;
/// The primary metadata once decompressed.
const MAX_PRIMARY_XML: u64 = 4 << 30;

/// What one poll of a source did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// repomd.xml was not modified, or names the primary metadata already read.
    Unchanged,
    /// The primary metadata was read: `packages` of the source's package and arch, of which
    /// `new_kernels` (unames) were not known to the project.
    Updated {
        packages: usize,
        new_kernels: Vec<String>,
    },
    /// Why the poll failed, in one line (also recorded on the source).
    Failed(String),
}

/// The variant `uname -r` shows for kernels of a `-devel` package: `kernel-devel` → "",
/// `kernel-rt-devel` → "rt", `kernel-64k-debug-devel` → "64k-debug"; `None` for a package that
/// is not a kernel's development files.
pub fn package_variant(package: &str) -> Option<&str> {
    let rest = package.strip_prefix("kernel")?.strip_suffix("-devel")?;
    if rest.is_empty() {
        return Some("");
    }
    let variant = rest.strip_prefix('-')?;
    let word = |w: &str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    variant.split('-').all(word).then_some(variant)
}

/// The kernel a package installs, or `None` when its version-release names none.
fn kernel_of(source: &KernelSource, p: &Package) -> Option<Kernel> {
    let variant = package_variant(&source.package)?;
    let vr = format!("{}-{}", p.version, p.release);
    let mut kernel = Kernel::parse(&vr, Some(&source.arch), Some(&source.stream)).ok()?;
    if kernel.version != p.version || kernel.release != p.release || !kernel.variant.is_empty() {
        return None;
    }
    // EL8's real-time kernels carry `.rt` in their release instead (4.18.0-513.rt7.302.el8):
    // their uname has no `+rt`, and kernel-rt-debug's only `+debug`.
    kernel.variant = match variant.strip_prefix("rt") {
        Some(rest) if p.release.contains(".rt") => rest.trim_start_matches('-').to_string(),
        _ => variant.to_string(),
    };
    Some(kernel)
}

/// What reading a source found, before it is stored.
enum Read {
    Unchanged {
        etag: Option<String>,
        last_modified: Option<String>,
    },
    Found {
        state: RepoState,
        packages: Vec<Package>,
        /// Every package in the repository, of any name.
        total: usize,
    },
}

/// `file.xml.gz` → `file.xml`: XML errors name the document, read errors the file.
fn document_name(file: &str) -> &str {
    [".gz", ".xz", ".zst"]
        .iter()
        .find_map(|ext| file.strip_suffix(ext))
        .unwrap_or(file)
}

async fn read(client: &Client, source: &KernelSource) -> Result<Read, String> {
    const REPOMD: &str = "repodata/repomd.xml";
    let base = Url::parse(&source.url).map_err(|e| format!("{}: {e}", source.url))?;
    let url = base.join(REPOMD).map_err(|e| format!("{REPOMD}: {e}"))?;
    let fetched = fetch::repomd(
        client,
        url,
        source.etag.as_deref(),
        source.last_modified.as_deref(),
        MAX_REPOMD,
    )
    .await
    .map_err(|e| format!("{REPOMD}: {e}"))?;
    let (bytes, etag, last_modified) = match fetched {
        fetch::Repomd::NotModified => {
            return Ok(Read::Unchanged {
                etag: source.etag.clone(),
                last_modified: source.last_modified.clone(),
            })
        }
        fetch::Repomd::Fetched {
            bytes,
            etag,
            last_modified,
        } => (bytes, etag, last_modified),
    };
    let primary = parse_repomd(&bytes).map_err(|e| format!("{REPOMD}: {e}"))?;
    let checksum = primary.checksum.to_string();
    if source.primary_checksum.as_deref() == Some(&checksum) {
        return Ok(Read::Unchanged {
            etag,
            last_modified,
        });
    }
    let file = primary.file_name().to_string();
    let compression =
        Compression::of(&file).ok_or_else(|| format!("{file}: unknown compression"))?;
    let primary_base = match &primary.base {
        Some(b) => Url::parse(b).map_err(|e| format!("{REPOMD}: xml:base {b:?}: {e}"))?,
        None => base.clone(),
    };
    let url = primary_base
        .join(&primary.href)
        .map_err(|e| format!("{REPOMD}: location {:?}: {e}", primary.href))?;
    let compressed = fetch::download(client, url, MAX_PRIMARY)
        .await
        .map_err(|e| format!("{file}: {e}"))?;
    let got = primary.checksum.of(&compressed);
    if got != primary.checksum {
        return Err(format!(
            "primary checksum mismatch: expected {checksum}, got {got}"
        ));
    }
    // Decompressing and parsing tens of megabytes is CPU work: off the async workers.
    let (package, arch) = (source.package.clone(), source.arch.clone());
    let parsed = tokio::task::spawn_blocking(move || {
        let limit = primary
            .open_size
            .map_or(MAX_PRIMARY_XML, |n| n.min(MAX_PRIMARY_XML));
        let input = compression
            .reader(&compressed, limit)
            .map_err(|e| PrimaryError::Read(e.to_string()))?;
        parse_primary(input, &package, &arch)
    })
    .await
    .map_err(|e| format!("{file}: reading stopped: {e}"))?;
    let (packages, total) = parsed.map_err(|e| match e {
        PrimaryError::Read(e) => format!("{file}: {e}"),
        PrimaryError::Xml(e) => format!("{}: {e}", document_name(&file)),
    })?;
    Ok(Read::Found {
        state: RepoState {
            etag,
            last_modified,
            primary_checksum: Some(checksum),
        },
        packages,
        total,
    })
}

/// The kernels of the packages found, with where each package is; packages whose version and
/// release make no kernel are left out (and logged).
fn discovered(source: &KernelSource, packages: &[Package]) -> Vec<DiscoveredKernel> {
    let base = Url::parse(&source.url).ok();
    let mut skipped = Vec::new();
    let kernels = packages
        .iter()
        .filter_map(|p| {
            let Some(kernel) = kernel_of(source, p) else {
                skipped.push(format!("{}-{}", p.version, p.release));
                return None;
            };
            let package_base = p.base.as_deref().and_then(|b| Url::parse(b).ok());
            let location = package_base
                .as_ref()
                .or(base.as_ref())
                .and_then(|b| b.join(&p.href).ok())
                .map_or_else(|| p.href.clone(), String::from);
            Some(DiscoveredKernel {
                kernel,
                build_time: p.build_time.map(|s| s.saturating_mul(1000)),
                location,
                checksum: p.checksum.as_ref().map(ToString::to_string),
            })
        })
        .collect();
    if !skipped.is_empty() {
        tracing::warn!(
            "kernel source {} ({}): skipped {} {} packages whose version names no kernel: {}",
            source.id,
            source.url,
            skipped.len(),
            source.package,
            skipped.join(", ")
        );
    }
    kernels
}

/// Polls one source and records what it found, or why it failed, on the source.
pub async fn poll(storage: &Storage, client: &Client, source: &KernelSource) -> PollOutcome {
    let stored = match read(client, source).await {
        Ok(Read::Unchanged {
            etag,
            last_modified,
        }) => storage
            .record_poll_unchanged(source.id, etag.as_deref(), last_modified.as_deref())
            .await
            .map(|()| PollOutcome::Unchanged),
        Ok(Read::Found {
            state,
            packages,
            total,
        }) => {
            let kernels = discovered(source, &packages);
            let count = kernels.len();
            let stored = storage.record_poll_success(source, &state, kernels).await;
            if let Ok(new) = &stored {
                // The repository's size tells a source pointed at the wrong repository (0 of
                // 1500 packages) from an empty one.
                tracing::info!(
                    "kernel source {} ({} {}.{}): {count} of {total} packages, {} new kernels{}{}",
                    source.id,
                    source.url,
                    source.package,
                    source.arch,
                    new.len(),
                    if new.is_empty() { "" } else { ": " },
                    new.join(", ")
                );
            }
            stored.map(|new_kernels| PollOutcome::Updated {
                packages: count,
                new_kernels,
            })
        }
        Err(error) => {
            tracing::warn!(
                "kernel source {} ({} {}.{}): {error}",
                source.id,
                source.url,
                source.package,
                source.arch
            );
            if let Err(e) = storage.record_poll_failure(source.id, &error).await {
                tracing::warn!("kernel source {}: recording the failure: {e}", source.id);
            }
            return PollOutcome::Failed(error);
        }
    };
    match stored {
        Ok(outcome) => outcome,
        Err(e) => {
            let error = format!("storing what was found: {e}");
            tracing::warn!("kernel source {}: {error}", source.id);
            if let Err(e) = storage.record_poll_failure(source.id, &error).await {
                tracing::warn!("kernel source {}: recording the failure: {e}", source.id);
            }
            PollOutcome::Failed(error)
        }
    }
}

/// Polls every source of every project, one after another.
pub async fn poll_all(storage: &Storage, client: &Client) -> Vec<(KernelSource, PollOutcome)> {
    let sources = match storage.kernel_sources(None).await {
        Ok(sources) => sources,
        Err(e) => {
            tracing::warn!("kernel discovery: listing the sources: {e}");
            return Vec::new();
        }
    };
    let mut outcomes = Vec::with_capacity(sources.len());
    for source in sources {
        let outcome = poll(storage, client, &source).await;
        outcomes.push((source, outcome));
    }
    outcomes
}

/// Wakes the discovery loops of this process that wait; `WAKES` counts the requests, so one
/// made while a loop is polling is not lost.
static WAKE: Notify = Notify::const_new();
static WAKES: AtomicU64 = AtomicU64::new(0);

/// Makes the discovery loop poll every source now rather than at its next interval (say, once a
/// source was added).
pub fn poll_soon() {
    WAKES.fetch_add(1, Ordering::SeqCst);
    WAKE.notify_waiters();
}

/// Polls every source at once, then every `interval` (or sooner after [`poll_soon`]).
pub fn spawn(storage: Storage, interval: Duration) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let client = match client() {
            Ok(client) => client,
            Err(e) => {
                tracing::error!("kernel discovery is off: no HTTP client: {e}");
                return;
            }
        };
        loop {
            let asked = WAKES.load(Ordering::SeqCst);
            poll_all(&storage, &client).await;
            // Registered before the check, so a request from now on wakes it.
            let woken = WAKE.notified();
            if WAKES.load(Ordering::SeqCst) == asked {
                tokio::select! {
                    () = tokio::time::sleep(interval) => {}
                    () = woken => {}
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(package: &str, arch: &str) -> KernelSource {
        KernelSource {
            id: 1,
            project: "wg".into(),
            url: "https://vault.example.org/8.9/BaseOS/x86_64/os/".into(),
            package: package.into(),
            stream: "el8".into(),
            arch: arch.into(),
            created_at: 0,
            checked_at: None,
            succeeded_at: None,
            error: None,
            failing_since: None,
            packages: 0,
            etag: None,
            last_modified: None,
            primary_checksum: None,
        }
    }

    fn package(version: &str, release: &str) -> Package {
        Package {
            version: version.into(),
            release: release.into(),
            build_time: Some(1_699_900_000),
            href: format!("Packages/kernel-devel-{version}-{release}.x86_64.rpm"),
            base: None,
            checksum: None,
        }
    }

    #[test]
    fn package_names_give_the_uname_variant() {
        assert_eq!(package_variant("kernel-devel"), Some(""));
        assert_eq!(package_variant("kernel-rt-devel"), Some("rt"));
        assert_eq!(package_variant("kernel-64k-debug-devel"), Some("64k-debug"));
        assert_eq!(package_variant("kernel-headers"), None);
        assert_eq!(package_variant("kernelfoo-devel"), None);
        assert_eq!(package_variant("kernel--devel"), None);
    }

    #[test]
    fn packages_map_to_the_kernels_uname_shows() {
        let unames = |pkg: &str, arch: &str, vr: (&str, &str)| {
            kernel_of(&source(pkg, arch), &package(vr.0, vr.1)).map(|k| k.uname())
        };
        assert_eq!(
            unames("kernel-devel", "x86_64", ("4.18.0", "553.el8_10")).as_deref(),
            Some("4.18.0-553.el8_10.x86_64")
        );
        assert_eq!(
            unames("kernel-debug-devel", "x86_64", ("4.18.0", "553.el8_10")).as_deref(),
            Some("4.18.0-553.el8_10.x86_64+debug")
        );
        assert_eq!(
            unames("kernel-rt-devel", "x86_64", ("5.14.0", "427.13.1.el9_4")).as_deref(),
            Some("5.14.0-427.13.1.el9_4.x86_64+rt")
        );
        assert_eq!(
            unames("kernel-rt-devel", "x86_64", ("4.18.0", "513.rt7.302.el8")).as_deref(),
            Some("4.18.0-513.rt7.302.el8.x86_64")
        );
        assert_eq!(
            unames(
                "kernel-rt-debug-devel",
                "x86_64",
                ("4.18.0", "513.rt7.302.el8")
            )
            .as_deref(),
            Some("4.18.0-513.rt7.302.el8.x86_64+debug")
        );
        assert_eq!(
            unames("kernel-64k-devel", "aarch64", ("5.14.0", "427.el9")).as_deref(),
            Some("5.14.0-427.el9.aarch64+64k")
        );
        assert_eq!(unames("kernel-devel", "x86_64", ("v4", "1.el8")), None);
        assert_eq!(
            unames("kernel-devel", "x86_64", ("4.18.0", "1+x.el8")),
            None
        );
    }

    #[test]
    fn discovered_packages_carry_where_they_are() {
        let s = source("kernel-devel", "x86_64");
        let mut elsewhere = package("4.18.0", "553.el8_10");
        elsewhere.base = Some("https://mirror.example.net/el8/".into());
        let found = discovered(
            &s,
            &[
                package("4.18.0", "513.5.1.el8_9"),
                package("bad", "1"),
                elsewhere,
            ],
        );
        assert_eq!(found.len(), 2);
        assert_eq!(
            found[0].location,
            "https://vault.example.org/8.9/BaseOS/x86_64/os/Packages/kernel-devel-4.18.0-513.5.1.el8_9.x86_64.rpm"
        );
        assert_eq!(found[0].build_time, Some(1_699_900_000_000));
        assert_eq!(
            found[1].location,
            "https://mirror.example.net/el8/Packages/kernel-devel-4.18.0-553.el8_10.x86_64.rpm"
        );
        assert_eq!(document_name("primary.xml.zst"), "primary.xml");
    }
}

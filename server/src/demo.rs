//! The demo project `make run` seeds into an empty database, so a newcomer sees a grid at once.
//!
//! Its commits are real: the wireguard-linux-compat history (with its release tags), followed by
//! the four commits of the darkranger-red fork that kept it building on RHEL 8.7 to 8.10 after
//! upstream stopped (their fork parents are not in our data, so each is chained to the previous
//! one). Its kernels are real RHEL 7, RHEL 8, CentOS Stream 8 and RHEL 9 builds. The results are
//! simulated, and the project is flagged `demo` so every page says so, but each failure is the
//! one that really happened: the RHEL kernel API change that broke the module, on the kernel
//! build that introduced it, until the module commit that really fixed it (see
//! `../shared/data/rhel-fixes.jsonl`), logged as kbuild and RHEL's compiler for that stream print
//! it. Reports go through [`accept::submit_report`], the path real runner reports take.
//!
//! What it shows:
//! - el7: 8c59173 "compat: remove RHEL-7.6 workaround" broke RHEL 7.6 (3.10.0-957) between the
//!   tested releases v0.0.20200128 and v0.0.20200205 (a module commit, with a bisect range),
//!   and RHEL 7.7 builds pass (7.6 support was dropped on purpose). RHEL 7.9 (3.10.0-1160.el7)
//!   moved `ipv6_dst_lookup_flow` into `ipv6_stub`: a kernel update, fixed by 5a45add "compat:
//!   ipv6_dst_lookup_flow was ported to rhel 7.9 beta".
//! - el8: RHEL 8.7 (4.18.0-425.3.1.el8) backported `ktime_get_coarse_boottime_ns`, fixed by
//!   8cfcb57; RHEL 8.8 (4.18.0-477.10.1.el8_8) made `netif_napi_add` take 3 arguments, which the
//!   fork's f345e37 only handled from 4.18.0-483, so it stays broken until 4e21a95.
//! - centos-stream-8: 4.18.0-483.el8 (`netif_napi_add`, fixed by f345e37) and 4.18.0-489.el8
//!   (`sk_buff` `headers_start`/`headers_end`, fixed by d0e94a9); and one open breakage of
//!   unknown cause: the runner started at 3d3c92b "drop CentOS 8 Stream support", whose only
//!   results on 394/408/448.el8 fail with nothing older to compare (the next step: its parent
//!   99935b0 on 4.18.0-394.el8, which would show that 3d3c92b did it).
//! - el9: WireGuard is in RHEL 9's own kernel and the module refuses kernels >= 5.6, so the
//!   runner skips it.
//!
//! The error lines are the module's real source lines at those revisions; line numbers inside
//! RHEL's own headers (`netdevice.h`, `timekeeping.h`, ...) are plausible, not looked up.

use crate::accept;
use crate::storage::{AddedRunner, Storage, StorageError};
use serde_json::{json, Value};
use trellis_domain::project::ProjectEdit;
use trellis_domain::scope::Grant;
use trellis_domain::Kernel;

pub const PROJECT: &str = "demo-wireguard-linux-compat";
/// Where the real module's commits are browsed (the fork's four resolve only on GitHub).
const UPSTREAM_GIT: &str = "https://git.zx2c4.com/wireguard-linux-compat";
const RUNNER: &str = "demo-simulator";
/// `../shared/data/wireguard-linux-compat-commits.jsonl` (sha, parents, date, author, subject,
/// tags) plus the four darkranger-red fork commits named in `rhel-fixes.jsonl`.
const COMMITS: &str = include_str!("../demo/commits.jsonl");
/// Shipped builds from `../shared/data/rhel-kernels.jsonl`: version-release and stream.
const KERNELS: &str = include_str!("../demo/demo-kernels.txt");
/// The module's build folder on the demo runner.
const SRC: &str = "/var/lib/trellis-runner/build/wireguard-linux-compat/src";

// Commits the story turns on.
const V20200121: &str = "cc26f386fe7a92a56a22dfdc544e29442db15cc3";
const DROP_EL76: &str = "8c591730d8cd5b3e253eeb767e491647b1061757";
const V20200215: &str = "d05a993b76af758b4bd998999aea633d30e88ce4";
const V20200413: &str = "fe82d0b68de57fa02cc59877b32414701e0ec373";
const V20200506: &str = "99b29a623277999b48f1ea58905ec078cb1c8eea";
const V20200712: &str = "d553aa7c52ac78c1963886afb74ba861b0b7b0fc";
const FIX_EL79_IPV6: &str = "5a45add2b3d3318ad7aa6c06c3d3612bb0094479";
const V20220627: &str = "18fbcd68a35a892527345dc5679d0b2d860ee004";
const DROP_C8S: &str = "3d3c92b4711b42169137b2ddf42ed4382e2babdf";
const FIX_KTIME_394: &str = "8cfcb57cdcc020deb7727e73c231f6ea08e692fd";
const FIX_NAPI_483: &str = "f345e37a15d1232b1d8a8f2f38fed4de3f648579";
const FIX_HEADERS_489: &str = "d0e94a9f70aa0998870fecef63618e4523ee84da";
const FIX_NAPI_477: &str = "4e21a9585c488b6cc592bfca839a83014afc378e";

/// How many of the newest EL9 builds the (skipping) RHEL 9 runner has seen.
const EL9_KERNELS: usize = 36;

#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("demo data is broken: {0}")]
    Data(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("demo report rejected: {0}")]
    Rejected(String),
}

fn history() -> Result<Vec<Value>, DemoError> {
    COMMITS
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Value = serde_json::from_str(l).map_err(|e| DemoError::Data(e.to_string()))?;
            Ok(json!({
                "sha": c["sha"], "parents": c["parents"], "subject": c["subject"],
                "author": c["author"], "committed_at": c["committer_date"],
                "tags": c.get("tags").cloned().unwrap_or_else(|| json!([])),
            }))
        })
        .collect()
}

/// One demo kernel: the kernel, and the build number (`477` of `4.18.0-477.10.1.el8_8`).
#[derive(Debug, Clone)]
struct DemoKernel {
    kernel: Kernel,
    build: u32,
    /// Rank among its stream's kernels of its arch, 0 = newest.
    rank: usize,
}

fn kernels() -> Result<Vec<DemoKernel>, DemoError> {
    let mut by_stream: std::collections::BTreeMap<String, Vec<Kernel>> = Default::default();
    for line in KERNELS.lines().filter(|l| !l.starts_with('#')) {
        let mut parts = line.split_whitespace();
        let (Some(vr), Some(stream)) = (parts.next(), parts.next()) else {
            continue;
        };
        let distro = (stream == "centos-stream-8").then_some(stream);
        let k = Kernel::parse(vr, Some("x86_64"), distro)
            .map_err(|e| DemoError::Data(format!("{vr}: {e:?}")))?;
        if k.stream != stream {
            return Err(DemoError::Data(format!(
                "{vr} is in {} not {stream}",
                k.stream
            )));
        }
        by_stream.entry(k.stream.clone()).or_default().push(k);
    }
    let mut out = Vec::new();
    for (stream, mut ks) in by_stream {
        ks.sort_by(|a, b| b.rpm_cmp(a));
        if stream == "el9" {
            ks.truncate(EL9_KERNELS);
        }
        // RHEL 8 for aarch64 too (every 8.6 to 8.9 build, every other 8.10 one), so the arch
        // filter has something to do.
        let arm: Vec<Kernel> = ks
            .iter()
            .enumerate()
            .filter(|(i, k)| stream == "el8" && (build_of(k) < 553 || i % 2 == 0))
            .map(|(_, k)| Kernel {
                arch: "aarch64".into(),
                ..k.clone()
            })
            .collect();
        for list in [ks, arm] {
            out.extend(
                list.into_iter()
                    .enumerate()
                    .map(|(rank, kernel)| DemoKernel {
                        build: build_of(&kernel),
                        kernel,
                        rank,
                    }),
            );
        }
    }
    Ok(out)
}

/// `477` of release `477.10.1.el8_8`.
fn build_of(k: &Kernel) -> u32 {
    k.release
        .split('.')
        .next()
        .and_then(|b| b.parse().ok())
        .unwrap_or(0)
}

/// RHEL's compiler for a kernel: what `gcc --version` prints on the stream's build root.
fn compiler(k: &DemoKernel) -> &'static str {
    match k.kernel.stream.as_str() {
        "el7" => "gcc (GCC) 4.8.5 20150623 (Red Hat 4.8.5-44)",
        "el9" if k.build < 503 => "gcc (GCC) 11.4.1 20231218 (Red Hat 11.4.1-3)",
        "el9" => "gcc (GCC) 11.5.0 20240719 (Red Hat 11.5.0-5)",
        "centos-stream-8" => "gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-18)",
        _ => match k.build {
            0..=424 => "gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-10)",
            425..=476 => "gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-15)",
            477..=512 => "gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-18)",
            513..=552 => "gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-20)",
            _ => "gcc (GCC) 8.5.0 20210514 (Red Hat 8.5.0-22)",
        },
    }
}

/// The commits a stream's runner tested (positions in history, oldest first); which kernels it
/// tested each on is [`tested_window`]'s.
fn tested_commits(stream: &str, history: &[Value]) -> Vec<usize> {
    let pos = |sha: &str| history.iter().position(|c| c["sha"] == sha);
    let fork: Vec<&str> = vec![FIX_KTIME_394, FIX_NAPI_483, FIX_HEADERS_489, FIX_NAPI_477];
    let shas: Vec<&str> = match stream {
        // Every release from v0.0.20200121 on, the RHEL 7.9 fix, and the upstream head.
        "el7" => {
            let from = pos(V20200121).unwrap_or(0);
            let mut v: Vec<&str> = history[from..]
                .iter()
                .filter(|c| c["tags"].as_array().is_some_and(|t| !t.is_empty()))
                .filter_map(|c| c["sha"].as_str())
                .collect();
            v.push(FIX_EL79_IPV6);
            v.push(DROP_C8S);
            v
        }
        "el8" => [V20220627, DROP_C8S].into_iter().chain(fork).collect(),
        "centos-stream-8" => [DROP_C8S].into_iter().chain(fork).collect(),
        _ => [V20220627, DROP_C8S].into_iter().chain(fork).collect(),
    };
    let mut out: Vec<usize> = shas.into_iter().filter_map(pos).collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The first and last commit a kernel was tested on. Kernels arrive over time: a runner tests a
/// new kernel on the module's head of the day and what follows, backfilling a release or two;
/// and it stops testing a kernel once the module supports only newer ones.
fn tested_window(k: &DemoKernel) -> (&'static str, Option<&'static str>) {
    let from = match (k.kernel.stream.as_str(), k.build) {
        ("el7", b) if b >= 1160 => V20200712,
        ("el7", b) if b >= 1127 => V20200413,
        ("el7", _) => V20200121,
        ("el8", b) if b >= 513 => FIX_NAPI_477,
        ("el8", b) if b >= 477 => FIX_NAPI_483,
        ("el8", _) => V20220627,
        ("centos-stream-8", b) if b >= 489 => FIX_NAPI_483,
        ("centos-stream-8", b) if b >= 481 => FIX_KTIME_394,
        ("centos-stream-8", _) => DROP_C8S,
        _ => V20220627,
    };
    let until = match (k.kernel.stream.as_str(), k.build) {
        ("el7", b) if b < 1062 => Some(V20200215),
        ("el7", b) if b < 1127 => Some(V20200506),
        // The CentOS Stream 8 runner's first kernels were superseded before it went on.
        ("centos-stream-8", b) if b < 481 => Some(DROP_C8S),
        _ => None,
    };
    (from, until)
}

/// What went wrong, if anything, building commit `sha` (at `pos` in history) on `k`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Failure {
    /// 8c59173 dropped the RHEL 7.6 workaround: 7.6's `IP6_ECN_set_ce` takes one argument.
    Ecn76,
    /// RHEL 7.9 moved `ipv6_dst_lookup` of `ipv6_stub` to `ipv6_dst_lookup_flow`.
    Ipv6DstLookupFlow,
    /// RHEL 8.7 / c8s 394 backported `ktime_get_coarse_boottime_ns`; compat.h defines it again.
    KtimeRedefined,
    /// `sk_buff` lost `headers_start`/`headers_end` (struct_group `headers`) in 4.18.0-489.
    SkbHeaders,
    /// `netif_napi_add` lost its weight argument (RHEL 8.8 / 4.18.0-477).
    NapiWeight,
}

fn failure(k: &DemoKernel, at: usize, pos: impl Fn(&str) -> usize) -> Option<Failure> {
    let before = |sha: &str| at < pos(sha);
    let b = k.build;
    match k.kernel.stream.as_str() {
        "el7" if b < 1062 && !before(DROP_EL76) => Some(Failure::Ecn76),
        "el7" if b >= 1160 && before(FIX_EL79_IPV6) => Some(Failure::Ipv6DstLookupFlow),
        "el8" | "centos-stream-8" => {
            let c8s = k.kernel.stream == "centos-stream-8";
            // compat.h comes first (forced include), then main.c's queueing.h, then peer.c.
            if b >= 394 && before(FIX_KTIME_394) {
                Some(Failure::KtimeRedefined)
            } else if b >= 489 && before(FIX_HEADERS_489) {
                Some(Failure::SkbHeaders)
            } else if (b >= 483 && before(FIX_NAPI_483))
                // f345e37 handled the 3-argument call from 4.18.0-483 on; RHEL 8.8's 477 had it
                // already, which 4e21a95 fixed.
                || (!c8s && (477..483).contains(&b) && before(FIX_NAPI_477))
            {
                Some(Failure::NapiWeight)
            } else {
                None
            }
        }
        _ => None,
    }
}

/// The kbuild log of a build of commit `sha` on `k`, as the runner captures it.
fn build_log(k: &DemoKernel, sha: &str, failure: Option<Failure>) -> String {
    let uname = k.kernel.uname();
    let kdir = format!("/usr/src/kernels/{uname}");
    let el7 = k.kernel.stream == "el7";
    // make 3.82 (EL7) quotes directories `like this' and names no makefile line in its errors;
    // make 4.2 (EL8) does both.
    let (open_q, build_mk) = if el7 {
        ('`', String::new())
    } else {
        ('\'', "scripts/Makefile.build:315: ".to_string())
    };
    let mut log = format!(
        "# wireguard-linux-compat {sha}\n# kernel-devel-{vr}.{arch}\n# {cc}\n\
         $ make -C {kdir} M={SRC} modules\n\
         make: Entering directory {open_q}{kdir}'\n",
        vr = k.kernel.version_release(),
        arch = k.kernel.arch,
        cc = compiler(k),
    );
    let objs = [
        "main",
        "noise",
        "device",
        "peer",
        "timers",
        "queueing",
        "send",
        "receive",
        "socket",
        "peerlookup",
        "allowedips",
        "ratelimiter",
        "cookie",
        "netlink",
    ];
    let failing_obj = match failure {
        None => None,
        Some(Failure::KtimeRedefined | Failure::SkbHeaders) => Some("main"),
        Some(Failure::NapiWeight) => Some("peer"),
        Some(Failure::Ipv6DstLookupFlow) => Some("socket"),
        Some(Failure::Ecn76) => Some("receive"),
    };
    for obj in objs {
        log.push_str(&format!("  CC [M]  {SRC}/{obj}.o\n"));
        if Some(obj) == failing_obj {
            log.push_str(&error_lines(&kdir, failure.expect("a failure")));
            let module = format!("_module_{SRC}");
            log.push_str(&format!(
                "make[1]: *** [{build_mk}{SRC}/{obj}.o] Error 1\n\
                 make: *** [{top}{module}] Error 2\n\
                 make: Leaving directory {open_q}{kdir}'\n\
                 [demo data: simulated result]\n",
                top = if el7 { "" } else { "Makefile:1563: " },
            ));
            return log;
        }
    }
    for obj in [
        "chacha20/chacha20",
        "poly1305/poly1305",
        "chacha20poly1305",
        "blake2s/blake2s",
        "curve25519/curve25519",
    ] {
        log.push_str(&format!("  CC [M]  {SRC}/crypto/zinc/{obj}.o\n"));
    }
    log.push_str(&format!(
        "  LD [M]  {SRC}/wireguard.o\n  Building modules, stage 2.\n  MODPOST 1 modules\n\
         \x20 CC      {SRC}/wireguard.mod.o\n  LD [M]  {SRC}/wireguard.ko\n\
         make: Leaving directory {open_q}{kdir}'\n[demo data: simulated result]\n"
    ));
    log
}

/// gcc's diagnostics for one failure, in the shape the stream's gcc prints them (gcc 4.8: a
/// bare caret; gcc 8: byte columns and underlined ranges).
fn error_lines(kdir: &str, failure: Failure) -> String {
    match failure {
        Failure::Ecn76 => format!(
            "{SRC}/receive.c: In function ‘wg_packet_consume_data_done’:\n\
             {SRC}/receive.c:349:4: error: too many arguments to function ‘IP6_ECN_set_ce’\n\
             \x20\t\t\tIP6_ECN_set_ce(skb, ipv6_hdr(skb));\n\
             \x20   ^\n\
             In file included from {SRC}/compat/compat.h:103:0,\n\
             \x20                from <command-line>:0:\n\
             {kdir}/include/net/inet_ecn.h:124:19: note: declared here\n\
             \x20static inline int IP6_ECN_set_ce(struct ipv6hdr *iph)\n\
             \x20                  ^\n"
        ),
        Failure::Ipv6DstLookupFlow => format!(
            "{SRC}/socket.c: In function ‘send6’:\n\
             {SRC}/socket.c:139:3: error: ‘const struct ipv6_stub’ has no member named ‘ipv6_dst_lookup’\n\
             \x20  dst = ipv6_stub->ipv6_dst_lookup_flow(sock_net(sock), sock, &fl,\n\
             \x20  ^\n\
             {SRC}/compat/compat.h:110:56: note: in definition of macro ‘ipv6_dst_lookup_flow’\n\
             \x20#define ipv6_dst_lookup_flow(a, b, c, d) ipv6_dst_lookup(a, b, &dst, c) + (void *)0 ?: dst\n\
             \x20                                                       ^\n"
        ),
        Failure::KtimeRedefined => format!(
            "In file included from <command-line>:0:0:\n\
             {SRC}/compat/compat.h:371:19: error: redefinition of ‘ktime_get_coarse_boottime_ns’\n\
             \x20static inline u64 ktime_get_coarse_boottime_ns(void)\n\
             \x20                  ^~~~~~~~~~~~~~~~~~~~~~~~~~~~\n\
             In file included from {kdir}/include/linux/ktime.h:270,\n\
             \x20                from {SRC}/compat/compat.h:349,\n\
             \x20                from <command-line>:0:0:\n\
             {kdir}/include/linux/timekeeping.h:113:19: note: previous definition of ‘ktime_get_coarse_boottime_ns’ was here\n\
             \x20static inline u64 ktime_get_coarse_boottime_ns(void)\n\
             \x20                  ^~~~~~~~~~~~~~~~~~~~~~~~~~~~\n"
        ),
        Failure::SkbHeaders => format!(
            "In file included from {SRC}/main.c:11:\n\
             {SRC}/queueing.h: In function ‘wg_reset_packet’:\n\
             {SRC}/queueing.h:84:13: error: ‘struct sk_buff’ has no member named ‘headers_start’\n\
             \x20 memset(&skb->headers_start, 0,\n\
             \x20            ^~\n\
             {SRC}/queueing.h:85:34: error: ‘struct sk_buff’ has no member named ‘headers_end’; did you mean ‘headers’?\n\
             \x20        offsetof(struct sk_buff, headers_end) -\n\
             \x20                                 ^~~~~~~~~~~\n"
        ),
        Failure::NapiWeight => format!(
            "{SRC}/peer.c: In function ‘wg_peer_create’:\n\
             {SRC}/peer.c:57:2: error: too many arguments to function ‘netif_napi_add’\n\
             \x20 netif_napi_add(wg->dev, &peer->napi, wg_packet_rx_poll,\n\
             \x20 ^~~~~~~~~~~~~~\n\
             In file included from {kdir}/include/net/sock.h:46,\n\
             \x20                from {kdir}/include/linux/tcp.h:23,\n\
             \x20                from {kdir}/include/linux/ipv6.h:88,\n\
             \x20                from {SRC}/allowedips.h:11,\n\
             \x20                from {SRC}/device.h:10,\n\
             \x20                from {SRC}/peer.h:9,\n\
             \x20                from {SRC}/peer.c:6:\n\
             {kdir}/include/linux/netdevice.h:2704:20: note: declared here\n\
             \x20static inline void netif_napi_add(struct net_device *dev,\n\
             \x20                   ^~~~~~~~~~~~~~\n"
        ),
    }
}

/// The simulated reports of commit `sha` (at `at` in history) on `k`: (status, log) pairs.
fn outcome(
    k: &DemoKernel,
    sha: &str,
    at: usize,
    newest: bool,
    pos: &impl Fn(&str) -> usize,
) -> Vec<(&'static str, String)> {
    let (from, until) = tested_window(k);
    if at < pos(from) || until.is_some_and(|u| at > pos(u)) {
        return vec![];
    }
    // The newest commit is still being tested on RHEL 9: every other kernel has reported.
    if newest && k.kernel.stream == "el9" && k.rank % 2 == 1 {
        return vec![];
    }
    if k.kernel.stream == "el9" {
        return vec![(
            "skip",
            format!(
                "# wireguard-linux-compat {sha}\n# kernel-devel-{vr}.{arch}\n\
                 skipped: the module supports Linux 3.10 to 5.5 (compat.h: #error \"WireGuard has been merged into Linux >= 5.6\"); \
                 RHEL 9 kernels ship WireGuard in-tree (CONFIG_WIREGUARD=m)\n[demo data: simulated result]\n",
                vr = k.kernel.version_release(),
                arch = k.kernel.arch,
            ),
        )];
    }
    // A mirror outage on one RHEL 8.10 build: a runner error, never the module's fault.
    if newest && k.kernel.stream == "el8" && k.kernel.arch == "x86_64" && k.rank == 2 {
        return vec![(
            "error",
            format!("runner: could not install kernel-devel-{}: mirror timed out after 3 attempts\n[demo data: simulated result]\n", k.kernel.version_release()),
        )];
    }
    let failure = failure(k, at, pos);
    let log = build_log(k, sha, failure);
    if failure.is_some() {
        return vec![("fail", log)];
    }
    // One flaky cell: the netns test timed out once on the newest RHEL 7 kernel.
    if k.kernel.stream == "el7" && k.rank == 0 && sha == V20220627 {
        return vec![
            ("pass", log.clone()),
            (
                "fail",
                format!(
                    "{build}$ insmod {SRC}/wireguard.ko && {SRC}/tests/netns.sh\n\
                     [+] NS1: ip link add dev wg0 type wireguard\n\
                     [+] NS2: ip link add dev wg0 type wireguard\n\
                     [+] NS1: ping -c 10 -f -W 1 192.168.241.2\n\
                     netns.sh: timed out after 600 s\n[demo data: simulated result]\n",
                    build = log.trim_end_matches("[demo data: simulated result]\n"),
                ),
            ),
        ];
    }
    vec![("pass", log)]
}

pub async fn seed(storage: &Storage, max_log_bytes: usize) -> Result<(), DemoError> {
    tracing::info!("seeding the demo project {PROJECT:?} (simulated results)");
    // The flow an administrator follows: add the project, then a runner scoped to it.
    let settings = ProjectEdit {
        description: Some(
            "Demo: the real wireguard-linux-compat history (and the darkranger-red fork's RHEL 8 fixes) on real RHEL 7, RHEL 8, CentOS Stream 8 and RHEL 9 kernels; simulated results that replay the real RHEL breakages.".into(),
        ),
        git_url: Some(Some(UPSTREAM_GIT.into())),
        commit_url: None,
    }
    .with_derived_commit_url();
    if !storage.add_project(PROJECT, &settings, true).await? {
        return Err(DemoError::Data(format!("project {PROJECT} already exists")));
    }
    let history = history()?;
    storage
        .push_commits(
            PROJECT,
            &trellis_domain::report::commits_from_json(&json!({ "commits": history }))
                .map_err(|e| DemoError::Data(format!("{e:?}")))?,
        )
        .await?;
    let grant = Grant::parse(PROJECT).expect("the demo project is a slug");
    match storage.add_runner(RUNNER, &[grant]).await? {
        AddedRunner::Added(_) => {}
        refused => {
            return Err(DemoError::Data(format!(
                "runner {RUNNER} could not be added: {refused:?}"
            )))
        }
    }
    let runner = storage
        .list_runners()
        .await?
        .into_iter()
        .find(|r| r.name == RUNNER)
        .ok_or_else(|| DemoError::Data("demo runner vanished".into()))?;

    let stored = for_each_report(&history, |body| {
        let runner = &runner;
        async move {
            accept::submit_report(storage, runner, &body, max_log_bytes)
                .await
                .map(|_| ())
                .map_err(|e| DemoError::Rejected(e.to_string()))
        }
    })
    .await?;
    tracing::info!("demo project seeded: {stored} simulated reports");
    Ok(())
}

/// Builds every demo report body, in the order a runner would have posted them, and hands each
/// to `post`. Returns how many there were.
async fn for_each_report<F, Fut>(history: &[Value], mut post: F) -> Result<usize, DemoError>
where
    F: FnMut(Value) -> Fut,
    Fut: std::future::Future<Output = Result<(), DemoError>>,
{
    let index: std::collections::HashMap<&str, usize> = history
        .iter()
        .enumerate()
        .filter_map(|(i, c)| c["sha"].as_str().map(|s| (s, i)))
        .collect();
    let pos = |sha: &str| index.get(sha).copied().unwrap_or(usize::MAX);
    let kernels = kernels()?;
    let now = chrono::Utc::now();
    let mut stored = 0;
    for stream in ["el7", "el8", "centos-stream-8", "el9"] {
        let tested = tested_commits(stream, history);
        let Some(&newest_at) = tested.last() else {
            return Err(DemoError::Data(format!("no tested commits for {stream}")));
        };
        for &at in &tested {
            let sha = history[at]["sha"].as_str().unwrap_or_default();
            let age = tested.iter().filter(|&&t| t > at).count();
            for (i, k) in kernels
                .iter()
                .filter(|k| k.kernel.stream == stream)
                .enumerate()
            {
                for (n, (status, log)) in outcome(k, sha, at, at == newest_at, &pos)
                    .into_iter()
                    .enumerate()
                {
                    let finished = now - chrono::Duration::minutes((age * 240 + i) as i64)
                        + chrono::Duration::seconds(n as i64);
                    let body = json!({
                        "project": PROJECT,
                        "kernel": if stream == "centos-stream-8" {
                            json!({ "version": k.kernel.uname(), "distro": stream })
                        } else {
                            json!({ "version": k.kernel.uname() })
                        },
                        "commit": { "sha": sha },
                        "status": status,
                        "stages": [
                            { "name": "build", "status": if status == "pass" || log.contains("netns.sh") { "pass" } else { status }, "duration_s": 40 + (i % 17) },
                            { "name": "test", "status": match status { "pass" => "pass", "fail" if log.contains("netns.sh") => "fail", _ => "skip" }, "duration_s": if status == "pass" { 95 } else { 0 } }
                        ],
                        "started_at": (finished - chrono::Duration::minutes(3)).to_rfc3339(),
                        "finished_at": finished.to_rfc3339(),
                        "log": log,
                        "run_id": format!("demo-{}-{}-{n}", &sha[..12.min(sha.len())], k.kernel.uname()),
                        "metadata": {
                            "compiler": compiler(k),
                            "runner-image": format!("demo-{stream}-builder"),
                            "kernel-devel": format!("kernel-devel-{}.{}", k.kernel.version_release(), k.kernel.arch),
                        },
                    });
                    post(body).await?;
                    stored += 1;
                }
            }
        }
    }
    Ok(stored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use trellis_domain::breakage::Attribution;

    async fn bodies() -> Vec<Value> {
        let history = history().unwrap();
        let mut out = Vec::new();
        for_each_report(&history, |b| {
            out.push(b);
            async { Ok(()) }
        })
        .await
        .unwrap();
        out
    }

    #[test]
    fn demo_data_parses_and_covers_every_stream() {
        let h = history().unwrap();
        assert_eq!(h.len(), 1297 + 4);
        assert_eq!(
            h.iter()
                .filter(|c| c["tags"].as_array().is_some_and(|t| !t.is_empty()))
                .count(),
            28
        );
        let ks = kernels().unwrap();
        for stream in ["el7", "el8", "centos-stream-8", "el9"] {
            assert!(
                ks.iter().filter(|k| k.kernel.stream == stream).count() >= 30,
                "{stream}"
            );
        }
    }

    #[tokio::test]
    async fn every_failure_is_a_kbuild_log_of_its_own_kernel_with_the_streams_gcc() {
        let bodies = bodies().await;
        let fails: Vec<&Value> = bodies.iter().filter(|b| b["status"] == "fail").collect();
        assert!(fails.len() > 50);
        for b in &fails {
            let uname = b["kernel"]["version"].as_str().unwrap();
            let log = b["log"].as_str().unwrap();
            let cc = b["metadata"]["compiler"].as_str().unwrap();
            let gcc = if uname.contains(".el7") {
                "4.8.5"
            } else {
                "8.5.0"
            };
            assert!(cc.contains(gcc) && log.contains(gcc), "{uname}: {cc}");
            assert!(
                log.contains(&format!("make -C /usr/src/kernels/{uname} M=")),
                "{uname}"
            );
            assert!(
                !log.contains("Debian") && !log.contains("merged into Linux >= 5.6"),
                "{uname}"
            );
        }
        // EL7 fails on the RHEL 7.9 and 7.6 API differences, never on the module's 5.6 #error.
        for b in fails.iter().filter(|b| {
            b["kernel"]["version"].as_str().unwrap().contains(".el7")
                && !b["log"].as_str().unwrap().contains("netns.sh")
        }) {
            let (uname, log) = (
                b["kernel"]["version"].as_str().unwrap(),
                b["log"].as_str().unwrap(),
            );
            assert!(
                (uname.starts_with("3.10.0-1160.")
                    && log.contains("no member named ‘ipv6_dst_lookup’"))
                    || (uname.starts_with("3.10.0-957.")
                        && log.contains("too many arguments to function ‘IP6_ECN_set_ce’")),
                "{uname}"
            );
        }
        // The real APIs, on the kernels that introduced them.
        for (needle, kernel) in [
            (
                "too many arguments to function ‘netif_napi_add’",
                "4.18.0-477.10.1.el8_8.x86_64",
            ),
            (
                "too many arguments to function ‘netif_napi_add’",
                "4.18.0-483.el8.x86_64",
            ),
            ("has no member named ‘headers_end’", "4.18.0-489.el8.x86_64"),
            (
                "redefinition of ‘ktime_get_coarse_boottime_ns’",
                "4.18.0-425.3.1.el8.x86_64",
            ),
        ] {
            assert!(
                fails.iter().any(|b| b["kernel"]["version"] == kernel
                    && b["log"].as_str().unwrap().contains(needle)),
                "{needle} on {kernel}"
            );
        }
        // RHEL 9 is skipped, not failed.
        assert!(bodies
            .iter()
            .filter(|b| b["kernel"]["version"].as_str().unwrap().contains(".el9"))
            .all(|b| b["status"] == "skip"));
    }

    #[tokio::test]
    async fn seeded_breakages_start_at_the_right_kernel_and_end_at_the_real_fix() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("demo.db");
        let storage = Storage::connect(&format!("sqlite://{}?mode=rwc", db.display()))
            .await
            .unwrap();
        seed(&storage, 1 << 20).await.unwrap();
        let project = storage.project(PROJECT).await.unwrap().unwrap();
        let all = storage.breakages(&project).await.unwrap();
        let summary: Vec<String> = all
            .iter()
            .map(|b| {
                format!(
                    "{} {:?} {} fixed_by={:?} open={} next={}",
                    b.stream,
                    b.attribution,
                    b.first_bad_kernel,
                    b.fixed_by_commit,
                    b.open,
                    b.next_cells.len()
                )
            })
            .collect();
        let find = |stream: &str, kernel: &str| {
            all.iter()
                .find(|b| b.stream == stream && b.first_bad_kernel.starts_with(kernel))
                .unwrap_or_else(|| panic!("{stream} {kernel}: {summary:#?}"))
        };
        for (stream, kernel, attribution, fix) in [
            ("el7", "3.10.0-1160.el7", Attribution::Kernel, FIX_EL79_IPV6),
            (
                "el8",
                "4.18.0-425.3.1.el8",
                Attribution::Kernel,
                FIX_KTIME_394,
            ),
            (
                "el8",
                "4.18.0-477.10.1.el8_8",
                Attribution::Kernel,
                FIX_NAPI_477,
            ),
            (
                "centos-stream-8",
                "4.18.0-483.el8",
                Attribution::Kernel,
                FIX_NAPI_483,
            ),
            (
                "centos-stream-8",
                "4.18.0-489.el8",
                Attribution::Kernel,
                FIX_HEADERS_489,
            ),
        ] {
            let b = find(stream, kernel);
            assert_eq!(b.attribution, attribution, "{summary:#?}");
            assert_eq!(b.fixed_by_commit.as_deref(), Some(fix), "{summary:#?}");
        }
        // 8c59173 dropped RHEL 7.6 between two tested releases: a module commit, with a bisect
        // range of untested commits, resolved by moving to RHEL 7.7.
        let el76 = find("el7", "3.10.0-957.el7");
        assert_eq!(el76.attribution, Attribution::Module, "{summary:#?}");
        let hint = el76.commit_bisect.as_ref().expect("a commit bisect hint");
        assert!(!hint.adjacent(), "{hint:?}");
        assert!(hint.untested.iter().any(|c| c == DROP_EL76), "{hint:?}");
        assert!(
            el76.fixed_by_kernel
                .as_deref()
                .is_some_and(|k| k.starts_with("3.10.0-1062.")),
            "{summary:#?}"
        );
        let unknown = find("centos-stream-8", "4.18.0-394.el8");
        assert_eq!(unknown.attribution, Attribution::Unknown, "{summary:#?}");
        assert!(unknown.open, "{summary:#?}");
        assert_eq!(unknown.next_cells.len(), 1, "{summary:#?}");
        assert_eq!(
            unknown.next_cells[0].commit,
            "99935b07b48a2ff696d64996277d89efe8242d37"
        );
        assert_eq!(all.iter().filter(|b| b.open).count(), 1, "{summary:#?}");
        eprintln!("{summary:#?}");
    }
}

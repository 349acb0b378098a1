//! Kernel ordering checked against the real `rpm`: answers it gave for thousands of pairs of real
//! kernel versions and releases, and the real RHEL/CentOS kernel list as rpm sorts it.
//! (`scripts/rpm-golden.sh` regenerates both fixtures with Debian's `rpm` package.)

use std::cmp::Ordering;
use trellis_domain::version::rpmvercmp;
use trellis_domain::Kernel;

#[test]
fn rpmvercmp_agrees_with_rpm_on_every_golden_pair() {
    let golden = include_str!("fixtures/rpm-vercmp-golden.txt");
    let mut checked = 0;
    for line in golden.lines() {
        let mut parts = line.split(' ');
        let (a, b, want) = (
            parts.next().unwrap(),
            parts.next().unwrap(),
            parts.next().unwrap(),
        );
        let want = match want {
            "-1" => Ordering::Less,
            "0" => Ordering::Equal,
            "1" => Ordering::Greater,
            other => panic!("bad golden line {other:?}"),
        };
        assert_eq!(rpmvercmp(a, b), want, "rpmvercmp({a:?}, {b:?})");
        checked += 1;
    }
    assert!(checked > 3000, "only {checked} golden pairs");
}

#[test]
fn real_kernel_list_sorts_exactly_as_rpm_sorts_it() {
    let golden = include_str!("fixtures/rhel-kernels-rpm-sorted.txt");
    let real = include_str!("fixtures/rhel-kernels.txt");
    let mut streams: std::collections::BTreeMap<String, Vec<Kernel>> = Default::default();
    for line in real.lines().filter(|l| !l.starts_with('#')) {
        let vr = line.split(' ').next().unwrap();
        let k = Kernel::parse(vr, Some("x86_64"), None).unwrap_or_else(|e| panic!("{vr}: {e:?}"));
        streams.entry(k.stream.clone()).or_default().push(k);
    }
    let mut ours = Vec::new();
    for stream in ["el7", "el8", "el9"] {
        let mut ks = streams.remove(stream).unwrap();
        ks.sort_by(|a, b| a.rpm_cmp(b));
        ours.extend(
            ks.into_iter()
                .map(|k| format!("{stream} {}", k.version_release())),
        );
    }
    assert!(
        streams.is_empty(),
        "unexpected streams {:?}",
        streams.keys()
    );
    let theirs: Vec<&str> = golden.lines().collect();
    assert_eq!(ours.len(), 1268);
    assert_eq!(ours, theirs);
}

#!/usr/bin/env bash
# Builds a small dnf/yum repository of kernel packages, as a distribution vault publishes them,
# for discovery tests: each NAME-VERSION-RELEASE.ARCH becomes a tiny real RPM (one Makefile under
# /usr/src/kernels/<version-release.arch>/) in REPO_DIR/Packages/, then createrepo_c (re)indexes.
#
# Usage: scripts/kernel-repo.sh REPO_DIR [--compress gz|xz|zst] NAME-VERSION-RELEASE.ARCH...
#   e.g. scripts/kernel-repo.sh /tmp/repo kernel-devel-4.18.0-553.el8_10.x86_64
# Packages already built are kept; running it with no package only re-indexes.
set -euo pipefail

usage() {
    echo "usage: $0 REPO_DIR [--compress gz|xz|zst] NAME-VERSION-RELEASE.ARCH..." >&2
    exit 2
}

[ $# -ge 1 ] || usage
repo=$1
shift
compress=gz
packages=()
while [ $# -gt 0 ]; do
    case $1 in
    --compress)
        [ $# -ge 2 ] || usage
        compress=$2
        shift 2
        ;;
    -*) usage ;;
    *)
        packages+=("$1")
        shift
        ;;
    esac
done
# createrepo_c before 0.20 writes no zstd, so a zst repository is indexed with gz and its
# primary recompressed with zstd(1) afterwards, repomd.xml rewritten to match (as Fedora's are).
case $compress in
gz | zst) compress_type=gz ;;
xz) compress_type=xz ;;
*) usage ;;
esac

for tool in rpmbuild createrepo_c zstd; do
    command -v "$tool" >/dev/null || {
        echo "$0 needs rpmbuild, createrepo_c and zstd (Debian: apt-get install rpm createrepo-c zstd)" >&2
        exit 1
    }
done

mkdir -p "$repo/Packages"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for nvra in ${packages[@]+"${packages[@]}"}; do
    [ -e "$repo/Packages/$nvra.rpm" ] && continue
    arch=${nvra##*.}
    nvr=${nvra%.*}
    release=${nvr##*-}
    nv=${nvr%-*}
    version=${nv##*-}
    name=${nv%-*}
    if [ -z "$name" ] || [ "$name" = "$nv" ] || [ "$nvr" = "$nvra" ]; then
        echo "$nvra: not NAME-VERSION-RELEASE.ARCH" >&2
        exit 2
    fi
    uname="$version-$release.$arch"
    cat >"$work/$name.spec" <<EOF
%define _build_id_links none
%define _binary_payload w2.xzdio
%define __os_install_post %{nil}
Name: $name
Version: $version
Release: $release
Summary: Development files of kernel $uname (a test package)
License: GPLv2
%description
Headers and makefiles to build modules against kernel $uname; built for Trellis's tests.
%install
mkdir -p %{buildroot}/usr/src/kernels/$uname
echo "# kernel $uname" > %{buildroot}/usr/src/kernels/$uname/Makefile
%files
/usr/src/kernels/$uname/Makefile
EOF
    # --target alone (no BuildArch) builds any arch's package on this host: it holds no code.
    rpmbuild -bb --quiet --target "$arch" \
        --define "_topdir $work/top" \
        --define "_rpmdir $work/out" \
        --define "_build_name_fmt %{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}.rpm" \
        "$work/$name.spec" >"$work/rpmbuild.log" 2>&1 || {
        cat "$work/rpmbuild.log" >&2
        exit 1
    }
    mv "$work/out/$nvra.rpm" "$repo/Packages/"
done

createrepo_c --quiet --no-database --compress-type "$compress_type" \
    --general-compress-type "$compress_type" "$repo" >/dev/null

if [ "$compress" = zst ]; then
    md=$repo/repodata
    gz=$(sed -n 's|.*<location href="repodata/\([^"]*-primary\.xml\.gz\)".*|\1|p' "$md/repomd.xml")
    old=${gz%-primary.xml.gz}
    gzip -dc "$md/$gz" | zstd -q -19 -o "$work/primary.xml.zst"
    new=$(sha256sum "$work/primary.xml.zst" | cut -d' ' -f1)
    size=$(stat -c %s "$work/primary.xml.zst")
    mv "$work/primary.xml.zst" "$md/$new-primary.xml.zst"
    rm "$md/$gz"
    # Only the primary's block changes: its checksum, location and size.
    awk -v old="$old" -v new="$new" -v size="$size" '
        /<data type="primary">/ { inside = 1 }
        inside && /<checksum / { sub(old, new) }
        inside && /<location / { sub(old "-primary.xml.gz", new "-primary.xml.zst") }
        inside && /<size>/ { sub(/<size>[0-9]+</, "<size>" size "<") }
        /<\/data>/ { inside = 0 }
        { print }
    ' "$md/repomd.xml" >"$work/repomd.xml"
    mv "$work/repomd.xml" "$md/repomd.xml"
fi

#!/usr/bin/env bash
# Regenerates domain/tests/fixtures/corpus/*.log: real kbuild output of tiny out-of-tree kernel
# modules that fail against Debian's 6.1 kernel headers the way real modules fail against a newer
# kernel, each built several ways (plain M=, a module Makefile run with `make -C src`, colours,
# another build folder, O=, V=1, clang), plus runner (infrastructure) failures: no kernel tree,
# no compiler. The error signature extractor (domain/src/signature.rs) is tested against them by
# domain/tests/corpus.rs with the expectations in domain/tests/fixtures/corpus/expected.tsv.
#
# Not run by the build or the tests; its output is committed, so the tests need no kernel tree.
# expected.tsv is not generated: a person judges what each log's signature must be.
#
# Needs (Debian 12): make, gcc-12, linux-headers-$KVER (default 6.1.0-57-amd64), and for the clang
# logs clang, llvm and lld (`apt-get install -y clang llvm lld`; skipped with a note if absent).
# Builds under $CORPUS_WORK (default /tmp/corpus), which it deletes and recreates: the folders
# are part of the logs, so keep the default to regenerate the committed logs byte for byte
# (up to compiler and headers package versions, which each log's header names).
# No `set -e`: the builds are meant to fail; each one's exit status goes into its log.
set -uo pipefail

cd "$(dirname "$0")/.."
OUT=$PWD/domain/tests/fixtures/corpus
WORK=${CORPUS_WORK:-/tmp/corpus}
KVER=${KVER:-6.1.0-57-amd64}
KDIR=/usr/src/linux-headers-$KVER
KBUILD=/lib/modules/$KVER/build
HEADERS_PKG="linux-headers-$KVER $(dpkg-query -W -f='${Version}' "linux-headers-$KVER" 2>/dev/null || echo '?')"

[ -d "$KDIR" ] || { echo "no kernel headers at $KDIR (apt-get install linux-headers-$KVER)" >&2; exit 1; }
command -v make >/dev/null || { echo "make is needed" >&2; exit 1; }
GCC_VERSION=$(gcc-12 --version | head -n1)
HAVE_CLANG=0
command -v clang >/dev/null && command -v ld.lld >/dev/null && HAVE_CLANG=1

rm -rf "$WORK"
mkdir -p "$WORK" "$OUT"
rm -f "$OUT"/*.log

# ---------------------------------------------------------------------------------------------
# The modules. Each is laid out like wireguard-linux-compat: src/ holds a Kbuild, a Makefile that
# calls kbuild itself (for `make -C src`), main.c and a compat/ header force-included by Kbuild.

# The module Makefile most out-of-tree modules ship: `make -C src KERNELDIR=...` from the parent.
module_makefile() {
	cat <<'EOF'
# Builds the module against KERNELDIR, as out-of-tree modules' own Makefiles do.
KERNELDIR ?= /lib/modules/$(shell uname -r)/build
PWD := $(shell pwd)

all: module

module:
	@$(MAKE) -C $(KERNELDIR) M=$(PWD) modules

clean:
	@$(MAKE) -C $(KERNELDIR) M=$(PWD) clean

.PHONY: all module clean
EOF
}

# A compat header every module force-includes (as wireguard-linux-compat does): harmless except
# in `refuse`, whose header refuses kernels it is not needed on.
compat_header() {
	cat <<'EOF'
/* Compatibility shims, force-included into every file by Kbuild. */
#ifndef _COMPAT_H
#define _COMPAT_H
#include <linux/version.h>
#include <linux/kconfig.h>
EOF
	if [ "$1" = refuse ]; then
		cat <<'EOF'

#if LINUX_VERSION_CODE >= KERNEL_VERSION(5, 6, 0)
#error "This module has been merged into Linux >= 5.6 and therefore this compatibility module is no longer required."
#endif
EOF
	fi
	echo '#endif'
}

# write_module DIR NAME: the module NAME's sources in DIR/src.
write_module() {
	local dir=$1 name=$2 src=$1/src
	rm -rf "$dir"
	mkdir -p "$src/compat"
	module_makefile >"$src/Makefile"
	compat_header "$name" >"$src/compat/compat.h"
	{
		echo "# Kbuild file of the $name module."
		echo "ccflags-y += -include \$(src)/compat/compat.h"
		case $name in
		dup_symbol) echo "obj-m := $name.o"; echo "$name-y := main.o helper.o" ;;
		no_rule) echo "obj-m := $name.o"; echo "$name-y := main.o compat.o" ;;
		*) echo "obj-m := $name.o"; echo "$name-y := main.o" ;;
		esac
	} >"$src/Kbuild"
	local head='#include <linux/module.h>
#include <linux/init.h>'
	local tail='MODULE_LICENSE("GPL");'
	case $name in
	napi_args)
		# 6.1 dropped the weight argument of netif_napi_add (netif_napi_add_weight keeps it).
		cat >"$src/main.c" <<EOF
$head
#include <linux/etherdevice.h>
#include <linux/netdevice.h>

static struct napi_struct napi;

static int demo_poll(struct napi_struct *napi, int budget)
{
	return 0;
}

static int __init demo_init(void)
{
	struct net_device *dev = alloc_etherdev(0);

	if (!dev)
		return -ENOMEM;
	netif_napi_add(dev, &napi, demo_poll, 64);
	free_netdev(dev);
	return 0;
}
module_init(demo_init);
$tail
EOF
		;;
	skb_member)
		# 5.16 replaced sk_buff's headers_start/headers_end markers by a struct_group.
		cat >"$src/queueing.h" <<'EOF'
/* Packet queueing helpers. */
#ifndef _QUEUEING_H
#define _QUEUEING_H
#include <linux/skbuff.h>

static inline void reset_packet(struct sk_buff *skb)
{
	skb->queue_mapping = 0;
	memset(skb->cb, 0, sizeof(skb->cb));
	skb->mark = (u32)(offsetof(struct sk_buff, headers_end) -
			  offsetof(struct sk_buff, mark));
}
#endif
EOF
		cat >"$src/main.c" <<EOF
$head
#include "queueing.h"

static int __init demo_init(void)
{
	struct sk_buff *skb = alloc_skb(64, GFP_KERNEL);

	if (!skb)
		return -ENOMEM;
	reset_packet(skb);
	kfree_skb(skb);
	return 0;
}
module_init(demo_init);
$tail
EOF
		;;
	implicit_decl)
		# 5.18 removed the pci_set_dma_mask() wrapper (use dma_set_mask()).
		cat >"$src/main.c" <<EOF
$head
#include <linux/pci.h>

static int demo_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	return pci_set_dma_mask(pdev, DMA_BIT_MASK(64));
}

static struct pci_driver demo_driver = {
	.name = "demo",
	.probe = demo_probe,
};
module_pci_driver(demo_driver);
$tail
EOF
		;;
	proc_ops)
		# 5.6 made proc_create() take a struct proc_ops instead of a struct file_operations.
		cat >"$src/main.c" <<EOF
$head
#include <linux/fs.h>
#include <linux/proc_fs.h>

static ssize_t demo_read(struct file *file, char __user *buf, size_t len, loff_t *off)
{
	return 0;
}

static const struct file_operations demo_fops = {
	.owner = THIS_MODULE,
	.read = demo_read,
};

static int __init demo_init(void)
{
	if (!proc_create("demo", 0444, NULL, &demo_fops))
		return -ENOMEM;
	return 0;
}

static void __exit demo_exit(void)
{
	remove_proc_entry("demo", NULL);
}
module_init(demo_init);
module_exit(demo_exit);
$tail
EOF
		;;
	genhd)
		# 5.18 folded linux/genhd.h into linux/blkdev.h.
		cat >"$src/main.c" <<EOF
$head
#include <linux/genhd.h>

static int __init demo_init(void)
{
	return 0;
}
module_init(demo_init);
$tail
EOF
		;;
	refuse | ok | no_kbuild)
		# refuse: the compat header's own #error; ok: builds cleanly; no_kbuild: see below.
		cat >"$src/main.c" <<EOF
$head

static int __init demo_init(void)
{
	pr_info("demo loaded\n");
	return 0;
}
module_init(demo_init);
$tail
EOF
		;;
	kallsyms)
		# 5.7 stopped exporting kallsyms_lookup_name: compiles, but modpost cannot resolve it.
		cat >"$src/main.c" <<EOF
$head

extern unsigned long kallsyms_lookup_name(const char *name);

static int __init demo_init(void)
{
	return kallsyms_lookup_name("sys_call_table") ? 0 : -ENOENT;
}
module_init(demo_init);
$tail
EOF
		;;
	dup_symbol)
		# Two objects of one module define the same global: the module's `ld -r` refuses.
		cat >"$src/main.c" <<EOF
$head

int demo_helper(void)
{
	return 1;
}

static int __init demo_init(void)
{
	return demo_helper() ? 0 : -EINVAL;
}
module_init(demo_init);
$tail
EOF
		cat >"$src/helper.c" <<'EOF'
/* A helper that main.c also defines (a copy-paste left behind by a refactoring). */
int demo_helper(void)
{
	return 2;
}
EOF
		;;
	no_rule)
		# Kbuild still lists compat.o, whose source was removed.
		cat >"$src/main.c" <<EOF
$head

static int __init demo_init(void)
{
	return 0;
}
module_init(demo_init);
$tail
EOF
		;;
	*)
		echo "unknown module $name" >&2
		exit 1
		;;
	esac
	# A revision whose build files moved away: M= names a folder kbuild finds no Kbuild in (the
	# make output says "No such file or directory" without it being the runner's fault).
	if [ "$name" = no_kbuild ]; then
		rm -f "$src/Kbuild" "$src/Makefile"
	fi
}

# One sentence per module for the log header.
describe() {
	case $1 in
	napi_args) echo "calls netif_napi_add() with the weight argument 6.1 removed" ;;
	skb_member) echo "uses sk_buff's headers_end marker, gone since 5.16" ;;
	implicit_decl) echo "calls pci_set_dma_mask(), removed in 5.18" ;;
	proc_ops) echo "passes a struct file_operations to proc_create(), which takes a struct proc_ops since 5.6" ;;
	genhd) echo "includes linux/genhd.h, removed in 5.18" ;;
	refuse) echo "its compat header refuses kernels >= 5.6 with #error" ;;
	kallsyms) echo "calls kallsyms_lookup_name(), no longer exported since 5.7 (modpost)" ;;
	dup_symbol) echo "two of its objects define demo_helper (linker)" ;;
	no_rule) echo "its Kbuild lists compat.o, whose source is gone (make)" ;;
	ok) echo "builds cleanly" ;;
	no_kbuild) echo "its src/ folder has no Kbuild or Makefile (moved away)" ;;
	esac
}

# ---------------------------------------------------------------------------------------------
# run LOG MODULE COMPILER DIR [VAR=value ...] -- COMMAND...: writes MODULE afresh (into DIR, or
# DIR's parent when DIR is the module's src/ folder), runs COMMAND in DIR with stdout and stderr merged (as a runner captures them) and writes LOG with a
# header and the exit status. VAR=value are environment variables (written in the command line).
run() {
	local log=$1 module=$2 compiler=$3 dir=$4
	shift 4
	local envs=()
	while [ "$1" != -- ]; do
		envs+=("$1")
		shift
	done
	shift
	write_module "${dir%/src}" "$module"
	# Quoted as a shell would need it, so the header's command can be pasted back.
	local shown
	shown="cd $dir && $(printf '%q ' "${envs[@]}" "$@")"
	shown=${shown% }
	{
		echo "# module: $module (trellis corpus: $(describe "$module"))"
		echo "# kernel headers: $KDIR ($HEADERS_PKG)"
		echo "# compiler: $compiler"
		echo "# command: $shown"
		echo "# ---- begin output ----"
		(cd "$dir" && env "${envs[@]}" "$@" </dev/null 2>&1)
		echo "# ---- end output; exit status: $? ----"
	} >"$OUT/$log.log"
	echo "$log: $(tail -n1 "$OUT/$log.log")"
}

CLANG_VERSION=
CLANG=$WORK/bin/clang-for-gcc-headers
if [ "$HAVE_CLANG" = 1 ]; then
	CLANG_VERSION="$(clang --version | head -n1), through $CLANG (drops the gcc-only flags of the gcc-configured headers)"
	LLVM_VERSION="$CLANG_VERSION; LLVM=1: $(ld.lld --version | head -n1)"
	# Debian's headers are configured for gcc-12: clang 14 stops at their gcc-only flags before
	# reading a line of the module (see the *-clang-unwrapped logs). This wrapper drops those
	# flags so that clang reaches the module's own code.
	mkdir -p "$WORK/bin"
	cat >"$CLANG" <<'EOF'
#!/bin/sh
# clang for Debian's gcc-configured kernel headers: drops the flags clang 14 does not know.
for a do
	shift
	case $a in
	-mfunction-return=thunk-extern | -fconserve-stack | -mrecord-mcount) ;;
	*) set -- "$@" "$a" ;;
	esac
done
exec clang -enable-trivial-auto-var-init-zero-knowing-it-will-be-removed-from-clang "$@" \
	-Wno-unknown-warning-option -Qunused-arguments
EOF
	chmod +x "$CLANG"
fi

# The ways every module is built: one log each.
build_all_ways() {
	local m=$1
	local a=$WORK/build-a/$m b=$WORK/other-b/nested/$m
	# kbuild directly, the module folder as M=.
	run "$m-plain" "$m" "$GCC_VERSION" "$a/src" -- make -C "$KBUILD" M="$a/src" modules
	# The module's own Makefile, from its parent folder (how wireguard-linux-compat is built).
	run "$m-make-c-src" "$m" "$GCC_VERSION" "$a" -- make -C src KERNELDIR="$KDIR"
	# Keep going after the first error (more errors after the first one).
	run "$m-make-c-src-k" "$m" "$GCC_VERSION" "$a" -- make -C src KERNELDIR="$KDIR" -k
	# Colours forced, as a runner with a TTY or a CI that wants colours does.
	run "$m-color" "$m" "$GCC_VERSION" "$a/src" -- \
		make -C "$KBUILD" M="$a/src" KCFLAGS=-fdiagnostics-color=always modules
	# Colours with a custom palette (GCC_COLORS), through the module's Makefile.
	run "$m-color-gcc-colors" "$m" "$GCC_VERSION" "$a" \
		"GCC_COLORS=error=01;35:warning=01;33:note=01;36:caret=01;32:locus=04:quote=01" -- \
		make -C src KERNELDIR="$KDIR" KCFLAGS=-fdiagnostics-color=always
	# Another build folder, deeper.
	run "$m-other-folder" "$m" "$GCC_VERSION" "$b/src" -- make -C "$KBUILD" M="$b/src" modules
	# The kernel's source tree with its configured output tree in O= (Debian's split headers).
	run "$m-o" "$m" "$GCC_VERSION" "$b/src" -- \
		make -C "/usr/src/linux-headers-${KVER%-*}-common" O="$KDIR" M="$b/src" modules
	# The full command lines (V=1), as many CI runners log them.
	run "$m-v1" "$m" "$GCC_VERSION" "$a/src" -- make -C "$KBUILD" M="$a/src" V=1 modules
	# A runner script traced with `bash -x`: its `+ ...` lines mention #error before the build.
	run "$m-traced" "$m" "$GCC_VERSION" "$b" -- bash -xc \
		"test -d '$KDIR'; grep -c '^#error' src/compat/compat.h || true; make -C src KERNELDIR='$KDIR'"
	if [ "$HAVE_CLANG" = 1 ]; then
		run "$m-clang" "$m" "$CLANG_VERSION" "$a/src" -- make -C "$KBUILD" M="$a/src" CC="$CLANG" modules
		run "$m-clang-color" "$m" "$CLANG_VERSION" "$b/src" -- \
			make -C "$KBUILD" M="$b/src" CC="$CLANG" KCFLAGS=-fcolor-diagnostics modules
		# LLVM=1: clang and LLVM's binutils (ld.lld); the headers' own CC= still needs the wrapper.
		run "$m-llvm" "$m" "$LLVM_VERSION" "$a/src" -- \
			make -C "$KBUILD" M="$a/src" LLVM=1 CC="$CLANG" modules
	else
		echo "clang or ld.lld missing: no clang logs" >&2
	fi
}

for m in napi_args skb_member implicit_decl proc_ops genhd refuse kallsyms dup_symbol no_rule; do
	build_all_ways "$m"
done

# No Kbuild: only the ways that point kbuild at the folder (`make -C src` fails otherwise).
for way in plain other-folder; do
	dir=$WORK/build-a/no_kbuild/src
	[ "$way" = other-folder ] && dir=$WORK/other-b/nested/no_kbuild/src
	run "no_kbuild-$way" no_kbuild "$GCC_VERSION" "$dir" -- make -C "$KBUILD" M="$dir" modules
done
run no_kbuild-o no_kbuild "$GCC_VERSION" "$WORK/other-b/nested/no_kbuild/src" -- \
	make -C "/usr/src/linux-headers-${KVER%-*}-common" O="$KDIR" M="$WORK/other-b/nested/no_kbuild/src" modules

# clang as is, against the gcc-configured headers: it stops at their flags, before the module's
# code (the same first error for any module).
if [ "$HAVE_CLANG" = 1 ]; then
	run napi_args-clang-unwrapped napi_args "$(clang --version | head -n1)" "$WORK/build-a/napi_args/src" -- \
		make -C "$KBUILD" M="$WORK/build-a/napi_args/src" CC=clang modules
	run ok-clang-unwrapped ok "$(clang --version | head -n1)" "$WORK/build-a/ok/src" -- \
		make -C "$KBUILD" M="$WORK/build-a/ok/src" CC=clang modules
fi

# A clean build: nothing to extract.
run ok-plain ok "$GCC_VERSION" "$WORK/build-a/ok/src" -- \
	make -C "$KBUILD" M="$WORK/build-a/ok/src" modules

# ---------------------------------------------------------------------------------------------
# Runner failures: the module is fine, the runner lacks the kernel tree or the compiler.
a=$WORK/build-a/ok
run infra-no-tree-plain ok "$GCC_VERSION" "$a/src" -- \
	make -C /lib/modules/9.9.9-nope/build M="$a/src" modules
run infra-no-tree-make-c-src ok "$GCC_VERSION" "$a" -- \
	make -C src KERNELDIR=/lib/modules/9.9.9-nope/build
run infra-no-tree-rhel ok "$GCC_VERSION" "$a/src" -- \
	make -C /usr/src/kernels/4.18.0-553.el8_10.x86_64 M="$a/src" modules
run infra-no-cc ok "(none: gcc-404 does not exist)" "$a/src" -- \
	make -C "$KBUILD" M="$a/src" CC=gcc-404 modules
run infra-no-cc-make-c-src ok "(none: gcc-404 does not exist)" "$a" -- \
	make -C src KERNELDIR="$KDIR" CC=gcc-404
run infra-no-clang ok "(none: clang-404 does not exist)" "$a/src" -- \
	make -C "$KBUILD" M="$a/src" CC=clang-404 modules
# A PATH with every tool but the compilers (the headers' default CC is gcc-12).
nogcc=$WORK/bin-without-gcc
mkdir -p "$nogcc"
for f in /usr/bin/*; do
	case ${f##*/} in
	gcc* | cc | c89* | c99* | x86_64-linux-gnu-gcc* | clang* | cpp*) ;;
	*) ln -s "$f" "$nogcc/" ;;
	esac
done
run infra-path-without-gcc ok "(none: PATH has no compiler)" "$a/src" "PATH=$nogcc" -- \
	make -C "$KBUILD" M="$a/src" modules

ls -l "$OUT"

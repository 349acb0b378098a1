//! Reading dnf/yum repository metadata from bytes: repomd.xml (where the primary metadata is and
//! its checksum), and the packages of one name and arch in primary.xml, streamed (a distribution's
//! primary.xml is tens of megabytes) through whichever compression its file name says.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::QName;
use quick_xml::{Reader, XmlVersion};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use std::fmt;
use std::io::{BufRead, BufReader, Read};

/// A checksum as repository metadata states it: `<checksum type="sha256">hex</checksum>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    /// `sha1`, `sha256` or `sha512` (old yum's `sha` is sha1).
    pub kind: String,
    pub hex: String,
}

impl Checksum {
    fn parse(kind: &str, hex: &str) -> Result<Checksum, String> {
        let kind = match kind {
            "sha" | "sha1" => "sha1",
            "sha256" => "sha256",
            "sha512" => "sha512",
            other => return Err(format!("unsupported checksum type {other:?}")),
        };
        let hex = hex.trim().to_ascii_lowercase();
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(format!("{kind} checksum {hex:?} is not hexadecimal"));
        }
        Ok(Checksum {
            kind: kind.to_string(),
            hex,
        })
    }

    /// The checksum of `bytes` computed the same way.
    pub fn of(&self, bytes: &[u8]) -> Checksum {
        let hex = match self.kind.as_str() {
            "sha1" => hex::encode(Sha1::digest(bytes)),
            "sha512" => hex::encode(Sha512::digest(bytes)),
            _ => hex::encode(Sha256::digest(bytes)),
        };
        Checksum {
            kind: self.kind.clone(),
            hex,
        }
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.hex)
    }
}

/// Where repomd.xml says the primary metadata is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryRef {
    /// Relative to the repository (or to `base`): `repodata/<hex>-primary.xml.gz`.
    pub href: String,
    /// The location's `xml:base`, when the metadata lives elsewhere.
    pub base: Option<String>,
    /// Of the file as downloaded (compressed).
    pub checksum: Checksum,
    /// Decompressed size, when stated: more is refused.
    pub open_size: Option<u64>,
}

impl PrimaryRef {
    /// The file name without the checksum prefix, for messages: `primary.xml.gz`.
    pub fn file_name(&self) -> &str {
        let name = self.href.rsplit('/').next().unwrap_or(&self.href);
        match name.split_once('-') {
            Some((prefix, rest)) if prefix.bytes().all(|b| b.is_ascii_hexdigit()) => rest,
            _ => name,
        }
    }
}

/// A package of the wanted name and arch in primary.xml (its epoch is left out: `uname -r`
/// shows none, so it is no part of a kernel's identity).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Package {
    pub version: String,
    pub release: String,
    /// Seconds since the epoch.
    pub build_time: Option<i64>,
    pub href: String,
    pub base: Option<String>,
    pub checksum: Option<Checksum>,
}

/// The value of attribute `name`, unescaped; `None` when absent.
fn attr(e: &BytesStart<'_>, name: &str) -> Result<Option<String>, String> {
    match e.try_get_attribute(name) {
        Ok(Some(a)) => a
            .normalized_value(XmlVersion::Implicit1_0)
            .map(|v| Some(v.into_owned()))
            .map_err(|e| e.to_string()),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

fn local(name: QName<'_>) -> Vec<u8> {
    name.local_name().as_ref().to_vec()
}

/// Finds the primary metadata in repomd.xml.
pub fn parse_repomd(bytes: &[u8]) -> Result<PrimaryRef, String> {
    let mut reader = Reader::from_reader(bytes);
    let mut buf = Vec::new();
    let mut in_primary = false;
    let mut text_of: Option<Vec<u8>> = None;
    let mut text = String::new();
    let (mut href, mut base, mut checksum, mut kind, mut open_size) =
        (None, None, None, String::new(), None);
    let xml_error = |reader: &Reader<&[u8]>, e: &dyn fmt::Display| {
        format!("XML error at byte {}: {e}", reader.error_position())
    };
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|e| xml_error(&reader, &e))?;
        match event {
            Event::Start(e) | Event::Empty(e) if local(e.name()) == b"data" => {
                in_primary = attr(&e, "type")?.as_deref() == Some("primary");
            }
            Event::Start(e) if in_primary => {
                let name = local(e.name());
                if name == b"checksum" {
                    kind = attr(&e, "type")?.unwrap_or_default();
                }
                text.clear();
                text_of = Some(name);
            }
            Event::Empty(e) if in_primary && local(e.name()) == b"location" => {
                href = attr(&e, "href")?;
                base = attr(&e, "xml:base")?;
            }
            Event::Text(t) if text_of.is_some() => {
                text.push_str(&t.decode().map_err(|e| xml_error(&reader, &e))?);
            }
            Event::End(e) => {
                let name = local(e.name());
                if name == b"data" && in_primary {
                    break;
                }
                if text_of.as_deref() == Some(&name[..]) {
                    match &name[..] {
                        b"checksum" => checksum = Some(Checksum::parse(&kind, &text)?),
                        b"open-size" => open_size = text.trim().parse().ok(),
                        _ => {}
                    }
                }
                text_of = None;
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if !in_primary {
        return Err("no primary metadata listed".to_string());
    }
    match (href.filter(|h| !h.is_empty()), checksum) {
        (Some(href), Some(checksum)) => Ok(PrimaryRef {
            href,
            base,
            checksum,
            open_size,
        }),
        (None, _) => Err("the primary metadata has no location".to_string()),
        (Some(_), None) => Err("the primary metadata has no checksum".to_string()),
    }
}

/// How primary metadata is compressed, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Xz,
    Zstd,
    None,
}

impl Compression {
    pub fn of(file_name: &str) -> Option<Compression> {
        let name = file_name.to_ascii_lowercase();
        if name.ends_with(".gz") {
            Some(Compression::Gzip)
        } else if name.ends_with(".xz") {
            Some(Compression::Xz)
        } else if name.ends_with(".zst") {
            Some(Compression::Zstd)
        } else if name.ends_with(".xml") {
            Some(Compression::None)
        } else {
            None
        }
    }

    /// A reader of the decompressed bytes, failing once more than `limit` bytes come out.
    pub fn reader<'a>(self, bytes: &'a [u8], limit: u64) -> std::io::Result<Box<dyn BufRead + 'a>> {
        let inner: Box<dyn Read + 'a> = match self {
            Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(bytes)),
            Compression::Xz => Box::new(xz2::read::XzDecoder::new_multi_decoder(bytes)),
            Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(bytes)?),
            Compression::None => Box::new(bytes),
        };
        Ok(Box::new(BufReader::with_capacity(
            64 * 1024,
            Limited {
                inner,
                left: limit,
                limit,
            },
        )))
    }
}

/// Fails a read past `limit` bytes: a small compressed file may expand without bound.
struct Limited<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Limited<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.left = self.left.checked_sub(n as u64).ok_or_else(|| {
            std::io::Error::other(format!("more than {} bytes decompressed", self.limit))
        })?;
        Ok(n)
    }
}

/// Why primary.xml could not be read: its compressed stream broke, or its XML did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrimaryError {
    Read(String),
    Xml(String),
}

/// The packages named `name` of `arch` in primary.xml, read as a stream; the other packages are
/// skipped as they go by. Counts every package read as the second value.
pub fn parse_primary<R: BufRead>(
    input: R,
    name: &str,
    arch: &str,
) -> Result<(Vec<Package>, usize), PrimaryError> {
    let mut reader = Reader::from_reader(input);
    let mut buf = Vec::new();
    let mut found = Vec::new();
    let mut total = 0usize;
    // Depth below the root: 1 is a <package>, 2 its fields. Nested elements (the <format>
    // section's entries) are deeper and ignored.
    let mut depth = 0usize;
    let mut root_closed = false;
    let mut package = Package::default();
    let (mut pkg_name, mut pkg_arch, mut text) = (String::new(), String::new(), String::new());
    let mut text_of: Option<Vec<u8>> = None;
    let mut checksum_kind = String::new();
    loop {
        let event = match reader.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(quick_xml::Error::Io(e)) => return Err(read_error(&e)),
            Err(e) => {
                return Err(PrimaryError::Xml(format!(
                    "XML error at byte {}: {e}",
                    reader.error_position()
                )))
            }
        };
        let bad = |what: String| {
            PrimaryError::Xml(format!(
                "XML error at byte {}: {what}",
                reader.error_position()
            ))
        };
        match event {
            Event::Start(e) => {
                depth += 1;
                let tag = local(e.name());
                match (depth, &tag[..]) {
                    (1, b"metadata") => {}
                    (1, _) => {
                        return Err(bad(format!(
                            "the root is <{}>, not <metadata>",
                            String::from_utf8_lossy(&tag)
                        )))
                    }
                    (2, b"package") => {
                        package = Package::default();
                        pkg_name.clear();
                        pkg_arch.clear();
                    }
                    (3, b"name" | b"arch" | b"checksum") => {
                        if tag == b"checksum" {
                            checksum_kind = attr(&e, "type").map_err(bad)?.unwrap_or_default();
                        }
                        text.clear();
                        text_of = Some(tag);
                    }
                    _ => {}
                }
            }
            Event::Empty(e) if depth == 2 => match local(e.name()).as_slice() {
                b"version" => {
                    package.version = attr(&e, "ver").map_err(bad)?.unwrap_or_default();
                    package.release = attr(&e, "rel").map_err(bad)?.unwrap_or_default();
                }
                b"time" => {
                    package.build_time = attr(&e, "build")
                        .map_err(bad)?
                        .and_then(|t| t.trim().parse().ok());
                }
                b"location" => {
                    package.href = attr(&e, "href").map_err(bad)?.unwrap_or_default();
                    package.base = attr(&e, "xml:base").map_err(bad)?;
                }
                _ => {}
            },
            Event::Empty(e) if depth == 0 => {
                if local(e.name()) != b"metadata" {
                    return Err(bad("the root is not <metadata>".to_string()));
                }
                root_closed = true;
            }
            Event::Text(t) if text_of.is_some() => {
                text.push_str(&t.decode().map_err(|e| bad(e.to_string()))?);
            }
            Event::GeneralRef(r) if text_of.is_some() => {
                let name = r.decode().map_err(|e| bad(e.to_string()))?;
                match quick_xml::escape::resolve_predefined_entity(&name) {
                    Some(s) => text.push_str(s),
                    None => match r.resolve_char_ref() {
                        Ok(Some(c)) => text.push(c),
                        _ => return Err(bad(format!("unknown entity &{name};"))),
                    },
                }
            }
            Event::End(e) => {
                match (depth, local(e.name()).as_slice()) {
                    (1, _) => root_closed = true,
                    (2, b"package") => {
                        total += 1;
                        if pkg_name == name && pkg_arch == arch {
                            found.push(std::mem::take(&mut package));
                        }
                    }
                    (3, b"name") => pkg_name = std::mem::take(&mut text),
                    (3, b"arch") => pkg_arch = std::mem::take(&mut text),
                    (3, b"checksum") => {
                        package.checksum = Some(
                            Checksum::parse(&checksum_kind, &text)
                                .map_err(|e| bad(format!("package checksum: {e}")))?,
                        );
                    }
                    _ => {}
                }
                text_of = None;
                depth = depth.saturating_sub(1);
            }
            Event::Eof if root_closed => return Ok((found, total)),
            Event::Eof => return Err(PrimaryError::Read("unexpected end of file".to_string())),
            _ => {}
        }
        buf.clear();
    }
}

/// A decompression or read failure in one line ("unexpected end of file", "corrupt deflate
/// stream"...).
fn read_error(e: &std::io::Error) -> PrimaryError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        return PrimaryError::Read("unexpected end of file".to_string());
    }
    PrimaryError::Read(e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// The shape of `createrepo_c` 0.17 output for a repository of kernel packages.
    const REPOMD: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<repomd xmlns="http://linux.duke.edu/metadata/repo" xmlns:rpm="http://linux.duke.edu/metadata/rpm">
  <revision>1796020692</revision>
  <data type="filelists">
    <checksum type="sha256">8aeeaabcdb7717fb6f45980aeadbd35b65470bff0088956a203ec30ce07f4b79</checksum>
    <open-checksum type="sha256">b6cd4c514f5024dc622270e8fd40e169134e2c26b2c10f87c183456cde7ca8a1</open-checksum>
    <location href="repodata/8aeeaabcdb7717fb6f45980aeadbd35b65470bff0088956a203ec30ce07f4b79-filelists.xml.gz"/>
    <timestamp>1796020692</timestamp>
    <size>400</size>
    <open-size>885</open-size>
  </data>
  <data type="primary">
    <checksum type="sha256">A3F177304E711212abfa8781beb69e9e6109ebf4e705adcfda8f2196b1a699c5</checksum>
    <open-checksum type="sha256">cc425ec410dfc22405f7b289950802b9a9391c531bf8ddcd52a12da79b2e6366</open-checksum>
    <location href="repodata/a3f177304e711212abfa8781beb69e9e6109ebf4e705adcfda8f2196b1a699c5-primary.xml.gz"/>
    <timestamp>1796020692</timestamp>
    <size>894</size>
    <open-size>3847</open-size>
  </data>
</repomd>
"#;

    fn package(name: &str, arch: &str, ver: &str, rel: &str) -> String {
        format!(
            r#"<package type="rpm">
  <name>{name}</name>
  <arch>{arch}</arch>
  <version epoch="0" ver="{ver}" rel="{rel}"/>
  <checksum type="sha256" pkgid="YES">67eced9af8c1b3146452f5a4b8f6c1f557bd9b7e67a925024ce668924e7e515b</checksum>
  <summary>Development package for building kernel modules to match the kernel</summary>
  <description>This package provides kernel headers &amp; makefiles sufficient to build modules against the kernel package.</description>
  <packager>AlmaLinux Packaging Team &lt;packager@almalinux.org&gt;</packager>
  <url>http://www.kernel.org/</url>
  <time file="1700000000" build="1699900000"/>
  <size package="20583228" installed="66036389" archive="67232740"/>
  <location href="Packages/{name}-{ver}-{rel}.{arch}.rpm"/>
  <format>
    <rpm:license>GPLv2 and Redistributable, no modification permitted</rpm:license>
    <rpm:sourcerpm>kernel-{ver}-{rel}.src.rpm</rpm:sourcerpm>
    <rpm:header-range start="4504" end="1234567"/>
    <rpm:provides>
      <rpm:entry name="{name}" flags="EQ" epoch="0" ver="{ver}" rel="{rel}"/>
      <rpm:entry name="kernel-devel-uname-r" flags="EQ" epoch="0" ver="{ver}-{rel}.{arch}"/>
    </rpm:provides>
    <file>/usr/src/kernels/{ver}-{rel}.{arch}/Makefile</file>
  </format>
</package>
"#
        )
    }

    fn primary(packages: &[String]) -> String {
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<metadata xmlns=\"http://linux.duke.edu/metadata/common\" xmlns:rpm=\"http://linux.duke.edu/metadata/rpm\" packages=\"{}\">\n{}</metadata>\n",
            packages.len(),
            packages.concat()
        )
    }

    fn sample() -> String {
        primary(&[
            package("kernel-devel", "x86_64", "4.18.0", "513.5.1.el8_9"),
            package("kernel", "x86_64", "4.18.0", "513.5.1.el8_9"),
            package("kernel-devel", "aarch64", "4.18.0", "513.5.1.el8_9"),
            package("kernel-devel", "x86_64", "4.18.0", "553.el8_10"),
            package("kernel-rt-devel", "x86_64", "4.18.0", "513.rt7.302.el8"),
        ])
    }

    #[test]
    fn repomd_names_the_primary_metadata() {
        let p = parse_repomd(REPOMD.as_bytes()).unwrap();
        assert_eq!(
            p.href,
            "repodata/a3f177304e711212abfa8781beb69e9e6109ebf4e705adcfda8f2196b1a699c5-primary.xml.gz"
        );
        assert_eq!(p.base, None);
        assert_eq!(
            p.checksum.to_string(),
            "sha256:a3f177304e711212abfa8781beb69e9e6109ebf4e705adcfda8f2196b1a699c5"
        );
        assert_eq!(p.open_size, Some(3847));
        assert_eq!(p.file_name(), "primary.xml.gz");
        assert_eq!(Compression::of(p.file_name()), Some(Compression::Gzip));
    }

    #[test]
    fn repomd_without_primary_or_broken_is_refused() {
        let no_primary = REPOMD.replace("type=\"primary\"", "type=\"primary_db\"");
        assert_eq!(
            parse_repomd(no_primary.as_bytes()).unwrap_err(),
            "no primary metadata listed"
        );
        let old_sha = REPOMD.replace(
            "<checksum type=\"sha256\">A3F",
            "<checksum type=\"md5\">A3F",
        );
        assert!(parse_repomd(old_sha.as_bytes())
            .unwrap_err()
            .contains("unsupported checksum type \"md5\""));
        let broken = REPOMD.replace("</data>\n</repomd>", "</dat>\n</repomd>");
        let err = parse_repomd(broken.as_bytes()).unwrap_err();
        assert!(err.starts_with("XML error at byte "), "{err}");
    }

    #[test]
    fn primary_keeps_only_the_wanted_name_and_arch() {
        let (found, total) = parse_primary(sample().as_bytes(), "kernel-devel", "x86_64").unwrap();
        assert_eq!(total, 5);
        let versions: Vec<_> = found.iter().map(|p| p.release.as_str()).collect();
        assert_eq!(versions, ["513.5.1.el8_9", "553.el8_10"]);
        let first = &found[0];
        assert_eq!(first.version, "4.18.0");
        assert_eq!(first.build_time, Some(1699900000));
        assert_eq!(
            first.href,
            "Packages/kernel-devel-4.18.0-513.5.1.el8_9.x86_64.rpm"
        );
        assert_eq!(
            first.checksum.as_ref().unwrap().to_string(),
            "sha256:67eced9af8c1b3146452f5a4b8f6c1f557bd9b7e67a925024ce668924e7e515b"
        );
        let (rt, _) = parse_primary(sample().as_bytes(), "kernel-rt-devel", "x86_64").unwrap();
        assert_eq!(rt[0].release, "513.rt7.302.el8");
    }

    #[test]
    fn every_compression_reads_the_same_packages() {
        let xml = sample();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(xml.as_bytes()).unwrap();
        let gz = gz.finish().unwrap();
        let xz = {
            let mut w = xz2::write::XzEncoder::new(Vec::new(), 6);
            w.write_all(xml.as_bytes()).unwrap();
            w.finish().unwrap()
        };
        let zst = zstd::stream::encode_all(xml.as_bytes(), 3).unwrap();
        for (name, bytes) in [
            ("x-primary.xml.gz", &gz[..]),
            ("x-primary.xml.xz", &xz[..]),
            ("x-primary.xml.zst", &zst[..]),
            ("x-primary.xml", xml.as_bytes()),
        ] {
            let c = Compression::of(name).unwrap();
            let (found, _) =
                parse_primary(c.reader(bytes, 1 << 20).unwrap(), "kernel-devel", "x86_64").unwrap();
            assert_eq!(found.len(), 2, "{name}");
        }
        assert_eq!(Compression::of("primary.sqlite.bz2"), None);

        // Truncated compressed streams and plain files end early; too much output is refused.
        let cut = &gz[..gz.len() / 2];
        let err = parse_primary(
            Compression::Gzip.reader(cut, 1 << 20).unwrap(),
            "kernel-devel",
            "x86_64",
        )
        .unwrap_err();
        assert_eq!(err, PrimaryError::Read("unexpected end of file".into()));
        for (c, bytes) in [
            (Compression::Xz, &xz[..xz.len() / 2]),
            (Compression::Zstd, &zst[..zst.len() / 2]),
            (Compression::None, &xml.as_bytes()[..xml.len() / 2]),
        ] {
            let err = parse_primary(c.reader(bytes, 1 << 20).unwrap(), "kernel-devel", "x86_64");
            assert!(err.is_err(), "{c:?}");
        }
        let cut_between_packages = &xml[..xml.find("<package").unwrap()];
        let err = parse_primary(cut_between_packages.as_bytes(), "kernel-devel", "x86_64");
        assert_eq!(
            err.unwrap_err(),
            PrimaryError::Read("unexpected end of file".into())
        );
        let err = parse_primary(
            Compression::Gzip.reader(&gz, 1000).unwrap(),
            "kernel-devel",
            "x86_64",
        )
        .unwrap_err();
        assert_eq!(
            err,
            PrimaryError::Read("more than 1000 bytes decompressed".into())
        );
    }

    #[test]
    fn broken_xml_says_where() {
        let xml = sample().replace("<arch>aarch64</arch>", "<arch>aarch64</arc>");
        let Err(PrimaryError::Xml(msg)) = parse_primary(xml.as_bytes(), "kernel-devel", "x86_64")
        else {
            panic!("broken XML was read");
        };
        let at = xml.find("</arc>").unwrap();
        assert!(
            msg.starts_with(&format!("XML error at byte {at}: ")),
            "{msg}"
        );
        let other_root = "<?xml version=\"1.0\"?><repomd></repomd>";
        assert!(matches!(
            parse_primary(other_root.as_bytes(), "kernel-devel", "x86_64"),
            Err(PrimaryError::Xml(_))
        ));
    }

    #[test]
    fn checksums_of_each_kind() {
        let c = Checksum::parse("sha", "00").unwrap();
        assert_eq!(
            c.of(b"abc").to_string(),
            "sha1:a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let c = Checksum::parse("sha256", "00").unwrap();
        assert_eq!(
            c.of(b"abc").hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let c = Checksum::parse("sha512", "00").unwrap();
        assert!(c.of(b"abc").hex.starts_with("ddaf35a193617aba"));
        assert!(Checksum::parse("sha256", "not hex").is_err());
    }
}

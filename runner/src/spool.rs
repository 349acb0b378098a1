//! The report outbox: each report is written to disk before it is sent and deleted once the
//! server has it, so no result is lost to a crash or an outage; re-sending keeps its run_id, so
//! none is stored twice.

use crate::api::{Api, ApiError, Posted};
use crate::out;
use anyhow::{Context, Result};
use std::collections::HashSet;
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How a report fared.
#[derive(Debug)]
pub enum Delivery {
    Posted(Posted),
    /// Not delivered now; kept in the outbox (when there is one) to be sent again.
    Kept(String),
    /// The server refused it for good; moved to rejected/ (when spooled).
    Rejected {
        status: u16,
        message: String,
    },
}

pub struct Spool {
    outbox: PathBuf,
    rejected: PathBuf,
    /// Files being sent right now, so a re-send pass does not send them a second time.
    busy: Mutex<HashSet<PathBuf>>,
}

/// A file name for a run_id: characters other than letters, digits, `-` and `_` are escaped,
/// so distinct run_ids never share a file.
fn file_name(run_id: &str) -> String {
    let mut name = String::new();
    for b in run_id.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            name.push(b as char);
        } else {
            name.push_str(&format!("%{b:02X}"));
        }
    }
    if name.len() > 200 {
        // Too long for a file name: a prefix plus a hash keeps it unique enough in one outbox.
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        run_id.hash(&mut h);
        name = format!("{}~{:016x}", &name[..180], h.finish());
    }
    name + ".json"
}

fn fsync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

impl Spool {
    pub fn open(dir: &Path) -> Result<Spool> {
        let outbox = dir.join("outbox");
        let rejected = dir.join("rejected");
        for d in [&outbox, &rejected] {
            fs::create_dir_all(d).with_context(|| format!("cannot create {}", d.display()))?;
        }
        // A temp file was never renamed into place, so its report was never sent: it is a
        // partial write from a crash.
        for entry in fs::read_dir(&outbox)?.flatten() {
            if entry.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(Spool {
            outbox,
            rejected,
            busy: Mutex::new(HashSet::new()),
        })
    }

    /// Writes a report durably: temp file, fsync, rename, fsync of the directory.
    pub fn write(&self, run_id: &str, body: &[u8]) -> Result<PathBuf> {
        let name = file_name(run_id);
        let path = self.outbox.join(&name);
        let tmp = self.outbox.join(format!(".tmp-{name}"));
        let mut f =
            File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        f.write_all(body)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &path)?;
        fsync_dir(&self.outbox)?;
        Ok(path)
    }

    /// The spooled reports, oldest first.
    pub fn pending(&self) -> Vec<PathBuf> {
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(&self.outbox)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| {
                let n = e.file_name().to_string_lossy().into_owned();
                n.ends_with(".json") && !n.starts_with('.')
            })
            .map(|e| {
                let t = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .unwrap_or(std::time::UNIX_EPOCH);
                (t, e.path())
            })
            .collect();
        files.sort();
        files.into_iter().map(|(_, p)| p).collect()
    }

    fn claim(&self, path: &Path) -> bool {
        self.busy
            .lock()
            .map(|mut b| b.insert(path.to_path_buf()))
            .unwrap_or(false)
    }

    fn unclaim(&self, path: &Path) {
        if let Ok(mut b) = self.busy.lock() {
            b.remove(path);
        }
    }

    /// Sends one spooled report; deletes it once delivered, moves it to rejected/ when refused
    /// for good. None when another task is sending it.
    pub async fn send_file(&self, api: &Api, path: &Path) -> Result<Option<Delivery>> {
        if !self.claim(path) {
            return Ok(None);
        }
        let result = self.send_claimed(api, path).await;
        self.unclaim(path);
        result
    }

    async fn send_claimed(&self, api: &Api, path: &Path) -> Result<Option<Delivery>> {
        let body = match fs::read(path) {
            Ok(b) => b,
            // Delivered and deleted by another task meanwhile.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        self.send_body(api, path, &body).await.map(Some)
    }

    async fn send_body(&self, api: &Api, path: &Path, body: &[u8]) -> Result<Delivery> {
        match api.post_report(body).await {
            Ok(posted) => {
                fs::remove_file(path)
                    .with_context(|| format!("delivered, but cannot delete {}", path.display()))?;
                fsync_dir(&self.outbox)?;
                Ok(Delivery::Posted(posted))
            }
            Err(ApiError::Transient { reason, .. }) => Ok(Delivery::Kept(reason)),
            Err(ApiError::Permanent { status, message }) => {
                let name = path.file_name().unwrap_or_default();
                let dest = self.rejected.join(name);
                fs::rename(path, &dest)
                    .with_context(|| format!("cannot move {} to rejected/", path.display()))?;
                let mut why = dest.clone().into_os_string();
                why.push(".reason");
                fs::write(&why, format!("{status}: {message}\n"))?;
                fsync_dir(&self.rejected)?;
                fsync_dir(&self.outbox)?;
                out::line(format_args!(
                    "report rejected ({status}: {message}): moved to {}",
                    dest.display()
                ));
                Ok(Delivery::Rejected { status, message })
            }
        }
    }

    /// Re-sends every spooled report, oldest first, stopping at the first one the server
    /// cannot take now (it is down or busy: the rest would fare the same). Answers how many
    /// are still waiting.
    pub async fn resend(&self, api: &Api) -> usize {
        let pending = self.pending();
        let mut left = pending.len();
        for path in pending {
            match self.send_file(api, &path).await {
                Ok(Some(Delivery::Posted(p))) => {
                    left -= 1;
                    out::line(format_args!(
                        "re-sent spooled report {}{}",
                        describe_posted(&p),
                        path.file_name()
                            .map(|n| format!(" from {}", n.to_string_lossy()))
                            .unwrap_or_default()
                    ));
                }
                Ok(Some(Delivery::Rejected { .. })) => left -= 1,
                Ok(Some(Delivery::Kept(reason))) => {
                    out::line(format_args!(
                        "server unreachable, {left} report(s) stay spooled: {reason}"
                    ));
                    break;
                }
                Ok(None) => {}
                Err(e) => out::line(format_args!("spool: {e:#}")),
            }
        }
        left
    }
}

/// "123 (201)", or "(200)" when the answer carried no id.
pub fn describe_posted(p: &Posted) -> String {
    match p.id {
        Some(id) => format!("{id} ({})", p.status),
        None => format!("({})", p.status),
    }
}

/// Delivers one report: spooled first when there is a spool, so it survives a failed send.
pub async fn deliver(
    api: &Api,
    spool: Option<&Spool>,
    run_id: &str,
    body: &[u8],
) -> Result<Delivery> {
    if let Some(spool) = spool {
        match spool.write(run_id, body) {
            Ok(path) => {
                return Ok(spool
                    .send_file(api, &path)
                    .await?
                    .unwrap_or(Delivery::Kept("being sent by a re-send pass".into())))
            }
            // Sending unspooled beats not sending at all.
            Err(e) => out::line(format_args!("cannot spool report {run_id}: {e:#}")),
        }
    }
    Ok(match api.post_report(body).await {
        Ok(p) => Delivery::Posted(p),
        Err(ApiError::Transient { reason, .. }) => Delivery::Kept(reason),
        Err(ApiError::Permanent { status, message }) => Delivery::Rejected { status, message },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Connection;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A one-route HTTP server answering every request with `status` and recording the bodies
    /// it was sent.
    async fn server(status: u16) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut sock, _)) = listener.accept().await else {
                    return;
                };
                let mut buf = Vec::new();
                let body = loop {
                    let mut chunk = [0u8; 4096];
                    let n = sock.read(&mut chunk).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len: usize = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break text[end + 4..end + 4 + len].to_string();
                        }
                    }
                };
                record.lock().unwrap().push(body);
                let answer = if status == 422 {
                    r#"{"error":"invalid_fields","message":"status: unknown value"}"#
                } else {
                    r#"{"id":7,"url":"/x"}"#
                };
                let resp = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                sock.write_all(resp.as_bytes()).await.unwrap();
            }
        });
        (url, seen)
    }

    fn api(server: &str) -> Api {
        Api::new(&Connection {
            server: server.to_string(),
            token: "t".into(),
            project: "demo".into(),
        })
        .unwrap()
    }

    /// A port nothing listens on: bound, then closed.
    fn closed_port() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    }

    #[tokio::test]
    async fn spooled_while_unreachable_then_resent_with_the_same_run_id() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let body = br#"{"run_id":"el8-1-12-abcd","status":"pass"}"#;

        let d = deliver(&api(&closed_port()), Some(&spool), "el8-1-12-abcd", body)
            .await
            .unwrap();
        assert!(matches!(d, Delivery::Kept(_)), "{d:?}");
        let pending = spool.pending();
        assert_eq!(pending.len(), 1);
        assert_eq!(fs::read(&pending[0]).unwrap(), body);

        let (url, seen) = server(201).await;
        assert_eq!(spool.resend(&api(&url)).await, 0);
        assert!(spool.pending().is_empty());
        assert_eq!(
            *seen.lock().unwrap(),
            vec![String::from_utf8(body.to_vec()).unwrap()]
        );
        assert_eq!(
            fs::read_dir(dir.path().join("rejected")).unwrap().count(),
            0
        );
    }

    #[tokio::test]
    async fn a_422_moves_the_report_to_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let spool = Spool::open(dir.path()).unwrap();
        let body = br#"{"run_id":"r/1","status":"maybe"}"#;
        spool.write("r/1", body).unwrap();

        let (url, seen) = server(422).await;
        assert_eq!(spool.resend(&api(&url)).await, 0);
        assert!(spool.pending().is_empty());
        let moved = dir.path().join("rejected").join("r%2F1.json");
        assert_eq!(fs::read(&moved).unwrap(), body);
        let reason = fs::read_to_string(dir.path().join("rejected/r%2F1.json.reason")).unwrap();
        assert!(reason.starts_with("422: invalid_fields"), "{reason}");
        assert_eq!(seen.lock().unwrap().len(), 1);
    }

    #[test]
    fn run_ids_map_to_distinct_file_names() {
        assert_eq!(file_name("a-1_b"), "a-1_b.json");
        assert_ne!(file_name("a/b"), file_name("a_b"));
        assert_eq!(file_name(".."), "%2E%2E.json");
        assert!(file_name(&"é".repeat(100)).len() < 255);
    }
}

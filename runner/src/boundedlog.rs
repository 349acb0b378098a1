//! A job log held in bounded memory: the head and the tail are kept, the middle is dropped and
//! counted, since a compiler's first error and the build's last lines are what people read.

use std::collections::VecDeque;

pub struct BoundedLog {
    head: Vec<u8>,
    head_cap: usize,
    tail: VecDeque<u8>,
    tail_cap: usize,
    cut: u64,
}

impl BoundedLog {
    /// A log whose text stays within about `max` bytes (the marker line comes on top).
    pub fn new(max: usize) -> Self {
        let head_cap = max / 2;
        BoundedLog {
            head: Vec::new(),
            head_cap,
            tail: VecDeque::new(),
            tail_cap: max - head_cap,
            cut: 0,
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        let room = self.head_cap - self.head.len();
        if room > 0 {
            let n = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
        }
        if bytes.len() >= self.tail_cap {
            self.cut += (self.tail.len() + bytes.len() - self.tail_cap) as u64;
            self.tail.clear();
            self.tail.extend(&bytes[bytes.len() - self.tail_cap..]);
            return;
        }
        let over = (self.tail.len() + bytes.len()).saturating_sub(self.tail_cap);
        self.tail.drain(..over);
        self.cut += over as u64;
        self.tail.extend(bytes);
    }

    /// A line of the runner's own, marked so it is not mistaken for the build's output.
    pub fn note(&mut self, line: &str) {
        self.push(format!("[trellis-runner] {line}\n").as_bytes());
    }

    /// The text: head, a marker line saying how much was cut (when anything was), tail. Bytes
    /// that are not UTF-8 (and a character split by the cut) become U+FFFD.
    pub fn finish(self) -> String {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        let tail: Vec<u8> = self.tail.into_iter().collect();
        if self.cut > 0 {
            if !out.ends_with('\n') {
                out.push('\n');
            }
            out.push_str(&format!("[... {} bytes cut ...]\n", self.cut));
        }
        out.push_str(&String::from_utf8_lossy(&tail));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_logs_are_kept_whole() {
        let mut log = BoundedLog::new(100);
        log.push(b"hello\n");
        log.note("done");
        assert_eq!(log.finish(), "hello\n[trellis-runner] done\n");
    }

    #[test]
    fn keeps_head_and_tail_and_says_how_much_it_cut() {
        let mut log = BoundedLog::new(20);
        log.push(b"HEAD-0123\n");
        for _ in 0..100 {
            log.push(b"middle\n");
        }
        log.push(b"TAIL-4567\n");
        let total = 10 + 700 + 10;
        let text = log.finish();
        assert!(text.starts_with("HEAD-0123\n"), "{text}");
        assert!(text.ends_with("TAIL-4567\n"), "{text}");
        let marker = format!("[... {} bytes cut ...]\n", total - 20);
        assert!(text.contains(&marker), "{text}");
        assert_eq!(text.len(), 20 + marker.len());
    }

    #[test]
    fn one_huge_write_is_bounded_too() {
        let mut log = BoundedLog::new(10);
        let big: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
        log.push(&big);
        let text = log.finish();
        assert!(
            text.starts_with("abcde\n[... 990 bytes cut ...]\n"),
            "{text}"
        );
        assert!(text.ends_with(std::str::from_utf8(&big[995..]).unwrap()));
    }
}

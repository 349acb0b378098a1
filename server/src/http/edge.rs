//! The connection edge: accepts TCP connections up to a cap that fits the open-file limit, serves
//! them with hyper, and closes the ones that stall, so idle and slow clients cannot hold the
//! server's sockets (a request body may still arrive slowly, if it never pauses longer than the
//! body timeout).
//!
//! A new connection has `header_timeout` to send a whole request head; a kept-alive one may wait
//! `idle_timeout` for its next request, then has `header_timeout` from the head's first byte; a
//! request body may pause at most `body_timeout`. At the cap, connections that are not moving
//! (idle, or a head stalled) are closed to make room, so a flood of silent or slow sockets cannot
//! lock out health checks. A close waits for the exchange in flight, for `idle_timeout` at most.

use crate::config::Config;
use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{sleep_until, Instant};
use tower::ServiceExt;
use tower_http::timeout::RequestBodyTimeout;

/// What hyper buffers of a request head. The real limits (`middleware`) are far lower, so an
/// oversized head nearly always reaches the router and gets a typed answer, not hyper's bare one.
const MAX_HEAD_BUFFER: usize = 128 * 1024;
const MAX_HEADERS: usize = 256;
/// File descriptors kept for everything but client sockets: the database, static files, logs.
const FD_RESERVE: u64 = 256;
/// At the cap, a connection that has not moved for this long is closed for a waiting one.
const SHED_AFTER: Duration = Duration::from_millis(200);
/// While connections are refused, one warning per this period.
const WARN_EVERY: Duration = Duration::from_secs(60);

pub struct Limits {
    pub header_timeout: Duration,
    pub body_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The configured limits, with the connection cap lowered to fit the open-file limit.
    pub fn new(config: &Config) -> Limits {
        let fd_room = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
            Ok((soft, _)) => soft.saturating_sub(FD_RESERVE.min(soft / 4)),
            Err(_) => u64::MAX,
        };
        let max_connections = config
            .max_connections
            .min(usize::try_from(fd_room).unwrap_or(usize::MAX))
            .clamp(1, u32::MAX as usize);
        Limits {
            header_timeout: Duration::from_secs(config.header_timeout_secs),
            body_timeout: Duration::from_secs(config.body_timeout_secs),
            idle_timeout: Duration::from_secs(config.idle_timeout_secs),
            max_connections,
        }
    }
}

/// Raises the soft open-file limit to the hard one, so the connection cap is not held down by a
/// low default (often 1,024).
pub fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!("open-file limit: {limit}"),
        Err(e) => tracing::warn!("could not raise the open-file limit: {e}"),
    }
}

type App = RequestBodyTimeout<Router>;

/// Serves `router` on `listener` until `shutdown` completes, then lets in-flight requests finish
/// (each connection gets `idle_timeout` more) and returns.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let limits = Arc::new(limits);
    let app = RequestBodyTimeout::new(router, limits.body_timeout);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let crowded = Arc::new(Notify::new());
    let (stop, stopped) = watch::channel(());
    let mut warned: Option<Instant> = None;
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = free_slot(&slots, &limits, &crowded, &mut warned) => permit,
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = accept(&listener) => accepted,
            () = &mut shutdown => break,
        };
        tokio::spawn(connection(
            stream,
            peer,
            permit,
            app.clone(),
            limits.clone(),
            crowded.clone(),
            stopped.clone(),
        ));
    }
    drop(listener);
    tracing::info!("shutting down: finishing the requests in flight");
    stop.send_replace(());
    // Every connection holds a slot until it is closed.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// A connection slot; at the cap, asks idle connections to close until one is free.
async fn free_slot(
    slots: &Arc<Semaphore>,
    limits: &Limits,
    crowded: &Notify,
    warned: &mut Option<Instant>,
) -> OwnedSemaphorePermit {
    if let Ok(permit) = slots.clone().try_acquire_owned() {
        return permit;
    }
    if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
        tracing::warn!(
            "{} connections open, the most allowed (TRELLIS_MAX_CONNECTIONS and the open-file \
             limit): closing idle connections, new ones wait to be accepted",
            limits.max_connections
        );
        *warned = Some(Instant::now());
    }
    loop {
        crowded.notify_waiters();
        tokio::select! {
            permit = slots.clone().acquire_owned() => {
                return permit.expect("the connection semaphore is never closed");
            }
            () = tokio::time::sleep(SHED_AFTER) => {}
        }
    }
}

async fn accept(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            // The client gave up before being accepted: its own business.
            Err(e) if is_connection_error(&e) => {}
            // Out of file descriptors or memory: wait for some to be released rather than spin.
            Err(e) => {
                tracing::error!("accepting a connection failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves one connection, closing it when it stalls, then frees its slot.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    permit: OwnedSemaphorePermit,
    app: App,
    limits: Arc<Limits>,
    crowded: Arc<Notify>,
    stopped: watch::Receiver<()>,
) {
    metrics::gauge!("http_connections_open").increment(1.0);
    watch_connection(stream, peer, app, &limits, &crowded, stopped).await;
    metrics::gauge!("http_connections_open").decrement(1.0);
    drop(permit);
}

async fn watch_connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: App,
    limits: &Limits,
    crowded: &Notify,
    mut stopped: watch::Receiver<()>,
) {
    // Small answers go out at once rather than waiting for more to send.
    let _ = stream.set_nodelay(true);
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        stream,
        activity: activity.clone(),
    });
    let service = hyper::service::service_fn({
        let activity = activity.clone();
        move |mut req: hyper::Request<Incoming>| {
            activity.begin_request();
            // Handlers that limit clients (the subscribe form) read who is asking.
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            let activity = activity.clone();
            let response = app.clone().oneshot(req);
            async move {
                let response = response.await;
                activity.end_request();
                response
            }
        }
    });
    let conn = http1::Builder::new()
        .max_buf_size(MAX_HEAD_BUFFER)
        .max_headers(MAX_HEADERS)
        // The watch below times heads: hyper's timer would also cut idle kept-alive connections.
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    // Once a close is asked for, the exchange in flight gets `idle_timeout` to finish.
    let mut closing: Option<Instant> = None;
    loop {
        let deadline = match closing {
            Some(since) => Some(since + limits.idle_timeout),
            None => activity.deadline(limits),
        };
        let close = tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            () = activity.changed.notified() => None,
            () = sleep_until_some(deadline) => {
                if closing.is_some() {
                    return;
                }
                // Judged afresh: the connection may have moved on since the deadline was set.
                let due = activity.deadline(limits).is_some_and(|at| at <= Instant::now());
                due.then_some(Cause::Timeout)
            }
            () = crowded.notified(), if closing.is_none() => {
                let stalled = activity.waiting().is_some_and(|w| w.since().elapsed() >= SHED_AFTER);
                stalled.then_some(Cause::Crowded)
            }
            _ = stopped.changed(), if closing.is_none() => Some(Cause::Shutdown),
        };
        let Some(cause) = close else { continue };
        let mid_head = matches!(activity.waiting(), Some(Waiting::Head(_)));
        let reason = match cause {
            Cause::Timeout if mid_head => Some("head_timeout"),
            Cause::Timeout => Some("idle"),
            Cause::Crowded => Some("crowded"),
            Cause::Shutdown => None,
        };
        if let Some(reason) = reason {
            metrics::counter!("http_connections_closed_total", "reason" => reason).increment(1);
        }
        // A head still arriving has handed nothing to the app: there is nothing to finish.
        if mid_head {
            return;
        }
        conn.as_mut().graceful_shutdown();
        closing = Some(Instant::now());
    }
}

async fn sleep_until_some(deadline: Option<Instant>) {
    match deadline {
        Some(at) => sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Why the server closes a connection.
enum Cause {
    Timeout,
    /// The connection cap is reached and this connection is not moving.
    Crowded,
    Shutdown,
}

/// What a connection waits for from its client, since when.
enum Waiting {
    /// A request: nothing of one has arrived since the connection opened or last answered.
    Request(Instant),
    /// The rest of a request head whose first byte arrived then.
    Head(Instant),
}

impl Waiting {
    fn since(&self) -> Instant {
        match self {
            Waiting::Request(since) | Waiting::Head(since) => *since,
        }
    }
}

/// What a connection is doing, shared by its socket reads, its service and its watch. Times are
/// milliseconds since the connection was accepted.
struct Activity {
    start: Instant,
    /// When the connection began waiting for a request: accepted, or its last response ready.
    waiting_since: AtomicU64,
    /// When the first byte of the request head being received arrived (`NONE` when none is).
    head_since: AtomicU64,
    in_request: AtomicBool,
    served: AtomicBool,
    /// Wakes the watch when a deadline moves earlier (a head starts) or returns (a request ends).
    changed: Notify,
}

const NONE: u64 = u64::MAX;

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            waiting_since: AtomicU64::new(0),
            head_since: AtomicU64::new(NONE),
            in_request: AtomicBool::new(false),
            served: AtomicBool::new(false),
            changed: Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    fn at(&self, ms: u64) -> Instant {
        self.start + Duration::from_millis(ms)
    }

    /// Bytes arrived: outside a request they begin the next request's head.
    fn on_read(&self) {
        if !self.in_request.load(Relaxed) && self.head_since.load(Relaxed) == NONE {
            self.head_since.store(self.now(), Relaxed);
            self.changed.notify_one();
        }
    }

    fn begin_request(&self) {
        self.in_request.store(true, Relaxed);
        self.head_since.store(NONE, Relaxed);
    }

    fn end_request(&self) {
        self.waiting_since.store(self.now(), Relaxed);
        self.served.store(true, Relaxed);
        self.in_request.store(false, Relaxed);
        self.changed.notify_one();
    }

    /// `None` while a request is being handled (its body has its own timeout).
    fn waiting(&self) -> Option<Waiting> {
        if self.in_request.load(Relaxed) {
            return None;
        }
        Some(match self.head_since.load(Relaxed) {
            NONE => Waiting::Request(self.at(self.waiting_since.load(Relaxed))),
            head => Waiting::Head(self.at(head)),
        })
    }

    /// When the connection is closed if its client sends nothing more.
    fn deadline(&self, limits: &Limits) -> Option<Instant> {
        let waiting = self.waiting()?;
        Some(match waiting {
            // The first head is timed from the connection's start, so silence earns no time.
            _ if !self.served.load(Relaxed) => self.start + limits.header_timeout,
            Waiting::Request(since) => since + limits.idle_timeout,
            Waiting::Head(since) => since + limits.header_timeout,
        })
    }
}

/// The client socket, telling its connection's `Activity` when bytes arrive.
struct Watched {
    stream: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.activity.on_read();
        }
        result
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

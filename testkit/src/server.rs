//! Real `redis-server` processes on loopback, for the integration tests.
//!
//! [`RedisServer::start`] runs `redis-server` (or the binary named by
//! [`ServerOptions::binary`] or the `REDPOLL_REDIS_SERVER` environment
//! variable) bound to `127.0.0.1` (optionally also `::1`, never anything
//! else), on a free port, and returns once the server answers `PING` over
//! the transport tests will use (plain TCP, TLS or the unix socket) and
//! reports the process id of the child that was spawned, so that another
//! server which happens to hold the port is never mistaken for it.
//!
//! Every server gets its own temporary directory (`--dir`) with its log
//! (`redis.log`), its stderr (`stderr.log`), the TLS files and the unix
//! socket. It always runs with `--save "" --appendonly no --daemonize no`:
//! nothing is persisted and the process is the child the testkit spawned.
//!
//! # Ports
//!
//! A port is found by binding a listener on port 0 and dropping it before
//! the server starts. Another process can take the port in between: the
//! server then fails with "Address already in use" in its log and the
//! start is retried on a new port. Within one test process, ports handed
//! out are remembered until their server is dropped, so parallel tests
//! never pick each other's ports (not even during a [`RedisServer::restart`]).
//!
//! # Cleanup
//!
//! A server is killed (`SIGKILL` to the child's pid, then reaped) when it is
//! dropped, also while a failing test unwinds; its directory is removed
//! then, except after a failure: a start that fails returns an error with
//! the tail of the log, and a server dropped during a panic prints the tail
//! of its log to stderr and keeps its directory. On Linux the servers also
//! die with the test process when it is killed outright (a parent-death
//! signal, see the `spawn` module); elsewhere a killed test binary leaves
//! them running.

mod conn;
mod spawn;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use redpoll_core::resp::Frame;

use crate::certs::Pki;
use conn::Target;

/// How long a start (or restart) may take before it fails.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);
/// The connect, read and write timeout of [`RedisServer::cmd`].
const CMD_TIMEOUT: Duration = Duration::from_secs(10);
/// Starts on a port another process took before the server could bind it.
const MAX_ATTEMPTS: u32 = 8;
/// Lines of log quoted in errors.
const TAIL_LINES: usize = 40;
/// The name of the testkit's admin connections (`CLIENT SETNAME`), so that
/// client counts leave them out (the cluster's admin connections too).
pub(crate) const ADMIN_NAME: &str = "redpoll-testkit-admin";
/// `sun_path` holds 108 bytes on Linux; stay clear of it.
const MAX_UNIX_PATH: usize = 100;

/// The number of file descriptors this process has open (the entries of
/// `/proc/self/fd`, without the one used to list them). Linux only.
///
/// Other tests of the same binary running in parallel open and close
/// descriptors too: compare counts in a test binary of its own, or in
/// tests that do not run concurrently with others.
///
/// # Panics
///
/// When `/proc/self/fd` cannot be read.
#[must_use]
pub fn count_open_fds() -> usize {
    fs::read_dir("/proc/self/fd")
        .expect("read /proc/self/fd (Linux only)")
        .count()
        .saturating_sub(1)
}

/// What to start: a builder for [`RedisServer::start`].
///
/// The default is a plain TCP server on `127.0.0.1` and a free port.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    binary: Option<PathBuf>,
    tls: Option<Pki>,
    client_auth: bool,
    unix_socket: bool,
    tcp: bool,
    password: Option<String>,
    debug_command: bool,
    args: Vec<String>,
    bind: Vec<IpAddr>,
    port: Option<u16>,
    startup_timeout: Duration,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl ServerOptions {
    /// A plain TCP server on `127.0.0.1` and a free port.
    #[must_use]
    pub fn new() -> Self {
        Self {
            binary: None,
            tls: None,
            client_auth: false,
            unix_socket: false,
            tcp: true,
            password: None,
            debug_command: false,
            args: Vec::new(),
            bind: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            port: None,
            startup_timeout: STARTUP_TIMEOUT,
        }
    }

    /// The server binary. The default is `$REDPOLL_REDIS_SERVER`, else
    /// `redis-server` from `PATH`.
    #[must_use]
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// TLS only, with this PKI's server certificate: the server listens on
    /// a TLS port and on no plain port (`--port 0 --tls-port P`).
    #[must_use]
    pub fn tls(mut self, pki: Pki) -> Self {
        self.tls = Some(pki);
        self
    }

    /// With [`tls`](Self::tls): whether clients must present a certificate
    /// signed by the CA (`--tls-auth-clients yes`, mutual TLS). Off by
    /// default.
    #[must_use]
    pub const fn client_auth(mut self, required: bool) -> Self {
        self.client_auth = required;
        self
    }

    /// Also listen on a unix socket in the server's directory
    /// (`--unixsocket PATH --unixsocketperm 700`).
    #[must_use]
    pub const fn unix_socket(mut self) -> Self {
        self.unix_socket = true;
        self
    }

    /// No plain TCP port (`--port 0`): with [`unix_socket`](Self::unix_socket),
    /// a server reachable through its socket only.
    #[must_use]
    pub const fn no_tcp(mut self) -> Self {
        self.tcp = false;
        self
    }

    /// `--requirepass`. [`RedisServer::cmd`] authenticates with it.
    #[must_use]
    pub fn password(mut self, password: impl Into<String>) -> Self {
        self.password = Some(password.into());
        self
    }

    /// `--enable-debug-command yes` (`DEBUG SLEEP`, `DEBUG SEGFAULT`, ...).
    #[must_use]
    pub const fn debug_command(mut self) -> Self {
        self.debug_command = true;
        self
    }

    /// One configuration directive: `--NAME VALUE`, the value passed as one
    /// argument (it may be empty). For a directive of several arguments,
    /// use [`args`](Self::args): `.args(["--save", "900", "1"])`.
    #[must_use]
    pub fn config(mut self, name: &str, value: &str) -> Self {
        self.args.push(format!("--{name}"));
        self.args.push(value.to_owned());
        self
    }

    /// Raw command-line arguments, appended after everything else.
    #[must_use]
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Also bind `::1`: the server listens on `127.0.0.1` and `::1`, on the
    /// same port.
    #[must_use]
    pub fn ipv6(mut self) -> Self {
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        if !self.bind.contains(&v6) {
            self.bind.push(v6);
        }
        self
    }

    /// The addresses to bind. Only `127.0.0.1` and `::1` are accepted
    /// ([`RedisServer::start`] fails on anything else); the first one is
    /// the one [`RedisServer::addr`] names.
    #[must_use]
    pub fn bind(mut self, addrs: &[IpAddr]) -> Self {
        self.bind = addrs.to_vec();
        self
    }

    /// A fixed port (the TLS port for a TLS server) instead of a free one.
    /// The start waits up to the startup timeout for the port to be free.
    #[must_use]
    pub const fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// How long a start may take (10 s by default).
    #[must_use]
    pub const fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Whether the server listens on a TCP port (plain or TLS).
    const fn listens_tcp(&self) -> bool {
        self.tcp || self.tls.is_some()
    }

    fn validate(&self) -> io::Result<()> {
        let invalid = |msg: String| Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
        if self.bind.is_empty() {
            return invalid("no bind address".into());
        }
        for ip in &self.bind {
            if *ip != IpAddr::V4(Ipv4Addr::LOCALHOST) && *ip != IpAddr::V6(Ipv6Addr::LOCALHOST) {
                return invalid(format!(
                    "test servers bind 127.0.0.1 and ::1 only, not {ip}"
                ));
            }
        }
        if !self.listens_tcp() && !self.unix_socket {
            return invalid("no_tcp() without unix_socket(): the server would not listen".into());
        }
        if self.client_auth && self.tls.is_none() {
            return invalid("client_auth() without tls()".into());
        }
        if self.port == Some(0) {
            return invalid("port(0): leave the port out to get a free one".into());
        }
        Ok(())
    }
}

/// Ports handed out to the servers of this process and not dropped yet.
fn reserved() -> MutexGuard<'static, BTreeSet<u16>> {
    static RESERVED: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    RESERVED.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Binds `port` on every address (the way the server will), then frees it.
fn port_is_free(bind: &[IpAddr], port: u16) -> bool {
    let listeners: io::Result<Vec<TcpListener>> = bind
        .iter()
        .map(|ip| TcpListener::bind(SocketAddr::new(*ip, port)))
        .collect();
    listeners.is_ok()
}

/// A port free on every bind address and not reserved by another server of
/// this process; it is reserved on return.
fn pick_port(bind: &[IpAddr]) -> io::Result<u16> {
    let mut last = None;
    for _ in 0..100 {
        let port = TcpListener::bind(SocketAddr::new(bind[0], 0))?
            .local_addr()?
            .port();
        if !port_is_free(bind, port) {
            last = Some(port);
            continue;
        }
        if reserved().insert(port) {
            return Ok(port);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::AddrInUse,
        format!("no free port found (last tried {last:?})"),
    ))
}

/// Waits until `port` can be bound on every address.
fn wait_port_free(bind: &[IpAddr], port: u16, deadline: Instant) -> io::Result<()> {
    while !port_is_free(bind, port) {
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("port {port} still in use"),
            ));
        }
        thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// A new, empty directory of its own under the system temporary directory.
fn make_dir() -> io::Result<PathBuf> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = std::env::temp_dir();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = base.join(format!("redpoll-redis-{}-{n}", std::process::id()));
        match fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
    }
}

fn file_len(path: &Path) -> u64 {
    fs::metadata(path).map_or(0, |m| m.len())
}

/// The text of `path` from byte `from` on (lossy).
fn read_from(path: &Path, from: u64) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let from = usize::try_from(from).unwrap_or(usize::MAX).min(bytes.len());
    String::from_utf8_lossy(&bytes[from..]).into_owned()
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// `path` for a URL: bytes other than letters, digits, `/-._~` as `%XX`.
fn percent_encode_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The process id `INFO server` reports.
fn info_pid(info: &str) -> Option<u32> {
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// Why a start attempt failed.
enum Failure {
    /// The port was taken before the server bound it.
    AddrInUse,
    /// The server exited on its own.
    Exited(ExitStatus),
    /// The deadline passed; the last probe's outcome.
    TimedOut(String),
    /// Spawning or waiting for the process failed.
    Io(io::Error),
}

/// A running `redis-server` child process; killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    options: ServerOptions,
    child: Option<Child>,
    pid: u32,
    /// The TCP port (plain or TLS); 0 for a unix-socket-only server.
    port: u16,
    dir: PathBuf,
    unix_path: Option<PathBuf>,
    tls_config: Option<Arc<rustls::ClientConfig>>,
    /// Keep the directory when dropped (a failure to look into).
    keep_dir: bool,
}

impl RedisServer {
    /// Starts a server and waits until it answers.
    ///
    /// # Errors
    ///
    /// Invalid options (`InvalidInput`), a binary that cannot be run, or a
    /// server that exits or does not answer `PING` within the startup
    /// timeout; the message then quotes the tail of its log and names its
    /// directory, which is kept.
    pub fn start(options: ServerOptions) -> io::Result<Self> {
        options.validate()?;
        let dir = make_dir()?;
        let unix_path = options.unix_socket.then(|| {
            let path = dir.join("redis.sock");
            if path.as_os_str().len() <= MAX_UNIX_PATH {
                path
            } else {
                // A long TMPDIR: the socket goes to /tmp under the same name.
                Path::new("/tmp").join(format!(
                    "{}.sock",
                    dir.file_name().unwrap_or_default().to_string_lossy()
                ))
            }
        });
        let tls_config = options
            .tls
            .as_ref()
            .map(|pki| pki.client_config(options.client_auth));
        if let Some(pki) = &options.tls {
            fs::write(dir.join("ca.crt"), &pki.ca_pem)?;
            fs::write(dir.join("server.crt"), &pki.server_cert_pem)?;
            fs::write(dir.join("server.key"), &pki.server_key_pem)?;
        }
        let fixed = options.port;
        if let Some(port) = fixed {
            reserved().insert(port);
        }
        let mut server = Self {
            options,
            child: None,
            pid: 0,
            port: fixed.unwrap_or(0),
            dir,
            unix_path,
            tls_config,
            keep_dir: false,
        };
        server.launch(fixed)?;
        Ok(server)
    }

    /// Starts the server process until one attempt is ready; on failure
    /// the directory is kept and the error quotes the log.
    fn launch(&mut self, fixed: Option<u16>) -> io::Result<()> {
        let deadline = Instant::now() + self.options.startup_timeout;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = if !self.options.listens_tcp() {
                0
            } else if let Some(port) = fixed {
                // Nothing ran yet: no log worth keeping.
                wait_port_free(&self.options.bind, port, deadline)?;
                port
            } else {
                pick_port(&self.options.bind)?
            };
            self.port = port;
            let log_from = file_len(&self.log_path());
            let stderr_from = file_len(&self.dir.join("stderr.log"));
            let failure = match self.spawn_child() {
                Ok(()) => match self.wait_ready(deadline, log_from) {
                    Ok(()) => return Ok(()),
                    Err(failure) => failure,
                },
                Err(e) => Failure::Io(e),
            };
            self.kill_child();
            let retry = matches!(failure, Failure::AddrInUse)
                && Instant::now() < deadline
                && (fixed.is_some() || attempt < MAX_ATTEMPTS);
            let error =
                (!retry).then(|| self.failure_error(&failure, attempt, log_from, stderr_from));
            if fixed.is_none() && port != 0 {
                // A picked port is given back (a fixed one stays reserved
                // until the server is dropped).
                reserved().remove(&port);
                self.port = 0;
            }
            if let Some(error) = error {
                // A server ran: its log and files are worth a look.
                self.keep_dir = !matches!(failure, Failure::Io(_));
                return Err(error);
            }
            if fixed.is_some() {
                thread::sleep(Duration::from_millis(50));
            }
        }
    }

    fn spawn_child(&mut self) -> io::Result<()> {
        let binary = self
            .options
            .binary
            .clone()
            .or_else(|| std::env::var_os("REDPOLL_REDIS_SERVER").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("redis-server"));
        let mut command = Command::new(&binary);
        let plain_port = if self.options.tcp && self.options.tls.is_none() {
            self.port
        } else {
            0
        };
        command
            .arg("--port")
            .arg(plain_port.to_string())
            .arg("--bind")
            .args(self.options.bind.iter().map(ToString::to_string))
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.log_path())
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"]);
        if self.options.tls.is_some() {
            let auth = if self.options.client_auth {
                "yes"
            } else {
                "no"
            };
            command
                .arg("--tls-port")
                .arg(self.port.to_string())
                .arg("--tls-cert-file")
                .arg(self.dir.join("server.crt"))
                .arg("--tls-key-file")
                .arg(self.dir.join("server.key"))
                .arg("--tls-ca-cert-file")
                .arg(self.dir.join("ca.crt"))
                .args(["--tls-auth-clients", auth]);
        }
        if let Some(path) = &self.unix_path {
            command
                .arg("--unixsocket")
                .arg(path)
                .args(["--unixsocketperm", "700"]);
        }
        if let Some(password) = &self.options.password {
            command.args(["--requirepass", password]);
        }
        if self.options.debug_command {
            command.args(["--enable-debug-command", "yes"]);
        }
        command.args(&self.options.args);
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stderr.log"))?;
        command
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = spawn::spawn(command).map_err(|e| {
            io::Error::new(e.kind(), format!("cannot run {}: {e}", binary.display()))
        })?;
        self.pid = child.id();
        self.child = Some(child);
        Ok(())
    }

    /// Waits until the server answers `PING` and is the child we spawned.
    fn wait_ready(&mut self, deadline: Instant, log_from: u64) -> Result<(), Failure> {
        let mut last = String::from("no answer yet");
        loop {
            let child = self.child.as_mut().expect("a child");
            if let Some(status) = child.try_wait().map_err(Failure::Io)? {
                let log = read_from(&self.log_path(), log_from);
                return Err(if log.contains("Address already in use") {
                    Failure::AddrInUse
                } else {
                    Failure::Exited(status)
                });
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Failure::TimedOut(last));
            }
            let timeout = (deadline - now).clamp(Duration::from_millis(10), Duration::from_secs(1));
            match self.probe(timeout) {
                Ok(pid) if pid == self.pid => return Ok(()),
                Ok(pid) => {
                    last = format!("the port answered for another redis-server (pid {pid})");
                }
                Err(e) => last = e.to_string(),
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// `PING` and `INFO server` over one connection: the process id.
    fn probe(&self, timeout: Duration) -> io::Result<u32> {
        let replies = self.request(
            self.options.password.as_deref(),
            &[&["PING"], &["INFO", "server"]],
            timeout,
        )?;
        if replies[0] != Frame::Simple("PONG".into()) {
            return Err(io::Error::other(format!("PING answered {:?}", replies[0])));
        }
        let info = conn::text(&replies[1])?;
        info_pid(&info).ok_or_else(|| io::Error::other("no process_id in INFO server"))
    }

    fn failure_error(
        &self,
        failure: &Failure,
        attempts: u32,
        log_from: u64,
        stderr_from: u64,
    ) -> io::Error {
        let (kind, what) = match failure {
            Failure::AddrInUse => (
                io::ErrorKind::AddrInUse,
                format!("could not bind port {}", self.port),
            ),
            Failure::Exited(status) => (io::ErrorKind::Other, format!("exited ({status})")),
            Failure::TimedOut(last) => (
                io::ErrorKind::TimedOut,
                format!(
                    "not ready after {:?} (last probe: {last})",
                    self.options.startup_timeout
                ),
            ),
            Failure::Io(e) => (e.kind(), e.to_string()),
        };
        let mut msg = format!(
            "redis-server on port {} (attempt {attempts}): {what}\ndirectory kept: {}",
            self.port,
            self.dir.display()
        );
        let log = last_lines(&read_from(&self.log_path(), log_from), TAIL_LINES);
        let _ = write!(msg, "\n--- redis.log (tail) ---\n{log}");
        let stderr = last_lines(
            &read_from(&self.dir.join("stderr.log"), stderr_from),
            TAIL_LINES,
        );
        if !stderr.is_empty() {
            let _ = write!(msg, "\n--- stderr ---\n{stderr}");
        }
        io::Error::new(kind, msg)
    }

    /// Sends `SIGKILL` to the child (by its pid) and reaps it.
    fn kill_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server (`SIGKILL`, by pid) and waits for it to be gone.
    /// Does nothing if it is already stopped. The port stays reserved for
    /// [`restart`](Self::restart).
    pub fn stop(&mut self) {
        self.kill_child();
    }

    /// Whether the server process is running (not stopped, not exited).
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Stops the server if it is running and starts it again with the same
    /// options, on the same port and unix socket (the data is gone: nothing
    /// is persisted). Waits until the port is free again.
    ///
    /// # Errors
    ///
    /// As [`start`](Self::start).
    pub fn restart(&mut self) -> io::Result<()> {
        self.kill_child();
        let fixed = (self.port != 0).then_some(self.port);
        self.launch(fixed)
    }

    /// Suspends the server (`SIGSTOP`): connections are still accepted by
    /// the kernel, but nothing is answered, until [`resume`](Self::resume).
    /// A suspended server is still killed when dropped.
    ///
    /// # Errors
    ///
    /// When the server is not running or `kill` fails.
    pub fn suspend(&mut self) -> io::Result<()> {
        self.signal("-STOP")
    }

    /// Resumes a server suspended by [`suspend`](Self::suspend) (`SIGCONT`).
    ///
    /// # Errors
    ///
    /// When the server is not running or `kill` fails.
    pub fn resume(&mut self) -> io::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&mut self, signal: &str) -> io::Result<()> {
        // Only while the child is not reaped is the pid surely ours.
        if !self.is_running() {
            return Err(io::Error::other("the server is not running"));
        }
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.pid.to_string())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "kill {signal} {}: {status}",
                self.pid
            )))
        }
    }

    /// The process id of the server (of its latest start).
    #[must_use]
    pub const fn pid(&self) -> u32 {
        self.pid
    }

    /// The TCP port clients connect to: the plain port, or the TLS port of
    /// a TLS server.
    ///
    /// # Panics
    ///
    /// For a server without TCP port ([`ServerOptions::no_tcp`]).
    #[must_use]
    pub fn port(&self) -> u16 {
        assert!(self.port != 0, "this server listens on a unix socket only");
        self.port
    }

    /// The TLS port, for a TLS server.
    #[must_use]
    pub fn tls_port(&self) -> Option<u16> {
        self.options.tls.as_ref().map(|_| self.port)
    }

    /// The unix socket, if the server has one.
    #[must_use]
    pub fn unix_path(&self) -> Option<&Path> {
        self.unix_path.as_deref()
    }

    /// `127.0.0.1:PORT` (the first bind address and [`port`](Self::port)).
    #[must_use]
    pub fn addr(&self) -> String {
        self.socket_addr().to_string()
    }

    /// The address of [`addr`](Self::addr).
    #[must_use]
    pub fn socket_addr(&self) -> SocketAddr {
        SocketAddr::new(self.options.bind[0], self.port())
    }

    /// `redis://127.0.0.1:PORT`, `rediss://127.0.0.1:PORT` for TLS, or
    /// `unix:///PATH` for a server on a unix socket only. No password in it.
    #[must_use]
    pub fn url(&self) -> String {
        if self.port == 0 {
            let path = self.unix_path.as_deref().unwrap_or(Path::new(""));
            format!("unix://{}", percent_encode_path(path))
        } else if self.options.tls.is_some() {
            format!("rediss://{}", self.addr())
        } else {
            format!("redis://{}", self.addr())
        }
    }

    /// The PKI of a TLS server.
    #[must_use]
    pub const fn pki(&self) -> Option<&Pki> {
        self.options.tls.as_ref()
    }

    /// The password the server was started with.
    #[must_use]
    pub fn password(&self) -> Option<&str> {
        self.options.password.as_deref()
    }

    /// The options the server was started with.
    #[must_use]
    pub const fn options(&self) -> &ServerOptions {
        &self.options
    }

    /// The server's own directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's log file.
    #[must_use]
    pub fn log_path(&self) -> PathBuf {
        self.dir.join("redis.log")
    }

    /// The last `lines` lines of the log.
    #[must_use]
    pub fn log_tail(&self, lines: usize) -> String {
        last_lines(&read_from(&self.log_path(), 0), lines)
    }

    /// The admin connection's target: plain TCP if the server has a plain
    /// port, else TLS, else the unix socket.
    fn target(&self) -> Target<'_> {
        match (&self.tls_config, &self.unix_path) {
            (Some(config), _) => Target::Tls(self.socket_addr(), config),
            (None, Some(path)) if self.port == 0 => Target::Unix(path),
            _ => Target::Tcp(self.socket_addr()),
        }
    }

    /// `AUTH` (if a password is given) and `CLIENT SETNAME`, then
    /// `commands`, pipelined over one fresh connection; the replies to
    /// `commands`.
    fn request(
        &self,
        password: Option<&str>,
        commands: &[&[&str]],
        timeout: Duration,
    ) -> io::Result<Vec<Frame>> {
        let auth;
        let mut all: Vec<&[&str]> = Vec::with_capacity(commands.len() + 2);
        if let Some(password) = password {
            auth = ["AUTH", password];
            all.push(&auth);
        }
        // Named, so that helpers counting clients can leave admin
        // connections out, also those the server has not seen close yet.
        // (Without a valid password this fails, like the commands after.)
        all.push(&["CLIENT", "SETNAME", ADMIN_NAME]);
        all.extend_from_slice(commands);
        let mut replies = conn::request(self.target(), &all, timeout)?;
        if password.is_some() {
            let reply = replies.remove(0);
            if reply.is_error() {
                let msg = conn::text(&reply).err().map(|e| e.to_string());
                return Err(io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    format!("AUTH failed: {}", msg.unwrap_or_default()),
                ));
            }
        }
        replies.remove(0);
        Ok(replies)
    }

    /// Sends one command over a fresh connection (plain TCP, else TLS with
    /// the test CA and the client certificate, else the unix socket),
    /// authenticated with the server's password, and returns the reply.
    /// An error reply is returned as a frame, not as an error.
    ///
    /// # Errors
    ///
    /// Connection and protocol failures, a failed `AUTH`.
    pub fn cmd(&self, args: &[&str]) -> io::Result<Frame> {
        self.cmd_as(self.options.password.as_deref(), args)
    }

    /// [`cmd`](Self::cmd) authenticated with `password` instead (`None`:
    /// no `AUTH`), for a password changed with `CONFIG SET requirepass`.
    ///
    /// # Errors
    ///
    /// As [`cmd`](Self::cmd).
    pub fn cmd_as(&self, password: Option<&str>, args: &[&str]) -> io::Result<Frame> {
        let mut replies = self.request(password, &[args], CMD_TIMEOUT)?;
        Ok(replies.remove(0))
    }

    /// [`cmd`](Self::cmd) for a string or integer reply, as text (`INFO`,
    /// `CLIENT LIST`, `CONFIG SET` ...).
    ///
    /// # Errors
    ///
    /// As [`cmd`](Self::cmd); also an error reply, or a reply that is not
    /// a string or an integer.
    pub fn cmd_text(&self, args: &[&str]) -> io::Result<String> {
        conn::text(&self.cmd(args)?)
    }

    /// The lines of `CLIENT LIST` (normal and pub/sub clients), without
    /// the testkit's own admin connections (named `redpoll-testkit-admin`).
    ///
    /// # Errors
    ///
    /// As [`cmd_text`](Self::cmd_text).
    pub fn client_list(&self) -> io::Result<Vec<String>> {
        let admin = format!(" name={ADMIN_NAME} ");
        Ok(self
            .cmd_text(&["CLIENT", "LIST"])?
            .lines()
            .filter(|line| !line.is_empty() && !line.contains(&admin))
            .map(str::to_owned)
            .collect())
    }

    /// The number of client connections (normal and pub/sub), without the
    /// testkit's own: [`client_list`](Self::client_list)`.len()`.
    ///
    /// # Errors
    ///
    /// As [`cmd_text`](Self::cmd_text).
    pub fn client_count(&self) -> io::Result<usize> {
        Ok(self.client_list()?.len())
    }

    /// Closes every client connection of [`client_list`](Self::client_list)
    /// from the server side (`CLIENT KILL ID`); the number closed.
    ///
    /// # Errors
    ///
    /// As [`cmd_text`](Self::cmd_text).
    pub fn kill_clients(&self) -> io::Result<usize> {
        let ids: Vec<String> = self
            .client_list()?
            .iter()
            .filter_map(|line| line.strip_prefix("id="))
            .filter_map(|rest| rest.split(' ').next())
            .map(str::to_owned)
            .collect();
        let kills: Vec<[&str; 4]> = ids
            .iter()
            .map(|id| ["CLIENT", "KILL", "ID", id.as_str()])
            .collect();
        let commands: Vec<&[&str]> = kills.iter().map(|k| &k[..]).collect();
        let replies = self.request(self.options.password.as_deref(), &commands, CMD_TIMEOUT)?;
        // The number each closed: 0 for a client that left meanwhile.
        Ok(replies
            .iter()
            .map(|reply| match reply {
                Frame::Integer(n) => usize::try_from(*n).unwrap_or(0),
                _ => 0,
            })
            .sum())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill_child();
        if self.port != 0 {
            reserved().remove(&self.port);
        }
        if thread::panicking() {
            self.keep_dir = true;
            eprintln!(
                "redis-server pid {} port {} (killed), directory kept: {}\n--- redis.log (tail) ---\n{}",
                self.pid,
                self.port,
                self.dir.display(),
                self.log_tail(TAIL_LINES)
            );
        }
        if !self.keep_dir {
            let _ = fs::remove_dir_all(&self.dir);
        }
        if let Some(path) = &self.unix_path
            && !path.starts_with(&self.dir)
        {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        assert_eq!(
            info_pid("# Server\r\nredis_version:7.0.15\r\nprocess_id:4242\r\n"),
            Some(4242)
        );
        assert_eq!(info_pid("# Server\r\n"), None);
        assert_eq!(last_lines("a\nb\nc\n", 2), "b\nc");
        assert_eq!(last_lines("a", 5), "a");
        assert_eq!(
            percent_encode_path(Path::new("/tmp/a b%#?/r.sock")),
            "/tmp/a%20b%25%23%3F/r.sock"
        );
    }

    #[test]
    fn options_are_checked() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(ServerOptions::new().validate().is_ok());
        assert_eq!(ServerOptions::new().ipv6().ipv6().bind, vec![v4, v6]);
        assert!(ServerOptions::new().bind(&[v6]).validate().is_ok());
        assert!(ServerOptions::new().bind(&[]).validate().is_err());
        assert!(ServerOptions::new().port(0).validate().is_err());
        assert!(ServerOptions::new().client_auth(true).validate().is_err());
        assert!(
            ServerOptions::new()
                .unix_socket()
                .no_tcp()
                .validate()
                .is_ok()
        );
    }
}

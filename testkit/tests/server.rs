//! The real-server support: plain, TLS, unix socket, password, restart on
//! the same port, cleanup by drop and when the test process is killed.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use redpoll_core::resp::Frame;
use redpoll_testkit::certs::Pki;
use redpoll_testkit::server::{RedisServer, ServerOptions, count_open_fds};

const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

fn simple(s: &'static str) -> Frame {
    Frame::Simple(s.into())
}

/// Sends `PING` and reads one line of reply.
fn ping<S: Read + Write>(stream: &mut S) -> io::Result<String> {
    stream.write_all(PING)?;
    stream.flush()?;
    let mut reply = Vec::new();
    let mut byte = [0; 1];
    while !reply.ends_with(b"\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        reply.push(byte[0]);
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
}

/// Whether process `pid` is gone (or a zombie nobody reaped yet).
fn process_gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
    }
}

fn wait_gone(pid: u32, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if process_gone(pid) {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    false
}

#[test]
fn plain_server_answers() {
    let server = RedisServer::start(ServerOptions::new()).expect("start");
    assert_eq!(server.addr(), format!("127.0.0.1:{}", server.port()));
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert_eq!(server.tls_port(), None);
    assert!(server.unix_path().is_none());
    assert_eq!(ping(&mut tcp(server.socket_addr())).unwrap(), "+PONG\r\n");
    assert_eq!(server.cmd(&["SET", "k", "v"]).unwrap(), simple("OK"));
    assert_eq!(server.cmd(&["GET", "k"]).unwrap(), Frame::Bulk("v".into()));
    let info = server.cmd_text(&["INFO", "server"]).unwrap();
    assert!(info.contains(&format!("process_id:{}", server.pid())));
    assert!(info.contains(&format!("tcp_port:{}", server.port())));
    // An error reply is a frame, not an error.
    assert!(server.cmd(&["NOSUCHCOMMAND"]).unwrap().is_error());
    assert!(server.cmd_text(&["NOSUCHCOMMAND"]).is_err());
    // Always: nothing persisted.
    let save = server.cmd(&["CONFIG", "GET", "save"]).unwrap();
    assert_eq!(
        save,
        Frame::Array(vec![Frame::Bulk("save".into()), Frame::Bulk("".into())])
    );
}

#[test]
fn client_count_and_kill_clients() {
    let server = RedisServer::start(ServerOptions::new()).expect("start");
    assert_eq!(server.client_count().unwrap(), 0);
    let mut a = tcp(server.socket_addr());
    let mut b = tcp(server.socket_addr());
    assert_eq!(ping(&mut a).unwrap(), "+PONG\r\n");
    assert_eq!(ping(&mut b).unwrap(), "+PONG\r\n");
    assert_eq!(server.client_count().unwrap(), 2);
    assert!(server.client_list().unwrap()[0].contains("cmd=ping"));
    assert_eq!(server.kill_clients().unwrap(), 2);
    assert!(ping(&mut a).is_err());
    assert_eq!(server.client_count().unwrap(), 0);
}

#[test]
fn extra_config_and_debug_command() {
    let server = RedisServer::start(
        ServerOptions::new()
            .config("timeout", "1")
            .args(["--databases", "4"])
            .debug_command(),
    )
    .expect("start");
    let timeout = server.cmd(&["CONFIG", "GET", "timeout"]).unwrap();
    assert_eq!(
        timeout,
        Frame::Array(vec![Frame::Bulk("timeout".into()), Frame::Bulk("1".into())])
    );
    assert!(server.cmd(&["SELECT", "4"]).unwrap().is_error());
    assert_eq!(server.cmd(&["DEBUG", "SLEEP", "0"]).unwrap(), simple("OK"));
}

#[test]
fn tls_server_answers_over_tls_only() {
    let pki = Pki::generate();
    let server = RedisServer::start(ServerOptions::new().tls(pki.clone())).expect("start");
    let port = server.tls_port().expect("a TLS port");
    assert_eq!(server.port(), port);
    assert_eq!(server.url(), format!("rediss://127.0.0.1:{port}"));
    assert!(server.pki().is_some());
    // PING over TLS, verified against the test CA, by name and by address.
    for name in ["localhost", "127.0.0.1"] {
        let conn = rustls::ClientConnection::new(
            pki.client_config(false),
            name.to_owned().try_into().unwrap(),
        )
        .unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp(server.socket_addr()));
        assert_eq!(ping(&mut tls).unwrap(), "+PONG\r\n");
    }
    // The admin helper goes over TLS too.
    assert_eq!(server.cmd(&["PING"]).unwrap(), simple("PONG"));
    assert_eq!(
        server.cmd_text(&["CONFIG", "GET", "port"]).ok(),
        None,
        "an array is not text"
    );
    // Plain text on the TLS port gets no PONG.
    let mut plain = tcp(server.socket_addr());
    plain
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    assert!(ping(&mut plain).map_or(true, |reply| reply != "+PONG\r\n"));
    // A CA of its own is not trusted.
    let other = Pki::generate();
    let conn =
        rustls::ClientConnection::new(other.client_config(false), "localhost".try_into().unwrap())
            .unwrap();
    let mut untrusted = rustls::StreamOwned::new(conn, tcp(server.socket_addr()));
    assert!(ping(&mut untrusted).is_err());
}

#[test]
fn mutual_tls_requires_the_client_certificate() {
    let pki = Pki::generate();
    let server =
        RedisServer::start(ServerOptions::new().tls(pki.clone()).client_auth(true)).expect("start");
    let connect = |config: Arc<rustls::ClientConfig>| {
        let conn = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp(server.socket_addr()));
        ping(&mut tls)
    };
    assert_eq!(connect(pki.client_config(true)).unwrap(), "+PONG\r\n");
    assert!(connect(pki.client_config(false)).is_err());
    assert_eq!(server.cmd(&["PING"]).unwrap(), simple("PONG"));
}

#[test]
fn unix_socket_servers() {
    // Socket only.
    let server = RedisServer::start(ServerOptions::new().unix_socket().no_tcp()).expect("start");
    let path = server.unix_path().expect("a socket").to_owned();
    assert_eq!(server.url(), format!("unix://{}", path.display()));
    let mut stream = UnixStream::connect(&path).unwrap();
    assert_eq!(ping(&mut stream).unwrap(), "+PONG\r\n");
    assert_eq!(server.cmd(&["PING"]).unwrap(), simple("PONG"));
    assert_eq!(
        server.cmd_text(&["CONFIG", "GET", "port"]).ok(),
        None,
        "an array is not text"
    );
    assert_eq!(
        server.cmd(&["CONFIG", "GET", "port"]).unwrap(),
        Frame::Array(vec![Frame::Bulk("port".into()), Frame::Bulk("0".into())])
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(&path.metadata().unwrap().permissions());
    assert_eq!(mode & 0o777, 0o700);
    // Socket and TCP port.
    let both = RedisServer::start(ServerOptions::new().unix_socket()).expect("start");
    let mut stream = UnixStream::connect(both.unix_path().unwrap()).unwrap();
    assert_eq!(ping(&mut stream).unwrap(), "+PONG\r\n");
    assert_eq!(ping(&mut tcp(both.socket_addr())).unwrap(), "+PONG\r\n");
    assert!(both.url().starts_with("redis://127.0.0.1:"));
    drop(server);
    assert!(!path.exists());
}

#[test]
fn password_required() {
    let server = RedisServer::start(ServerOptions::new().password("s3cret")).expect("start");
    assert_eq!(server.password(), Some("s3cret"));
    let denied = server.cmd_as(None, &["PING"]).unwrap();
    assert!(
        matches!(&denied, Frame::Error(e) if e.starts_with(b"NOAUTH")),
        "{denied:?}"
    );
    assert_eq!(server.cmd(&["PING"]).unwrap(), simple("PONG"));
    let wrong = server.cmd_as(Some("wrong"), &["PING"]).unwrap_err();
    assert_eq!(wrong.kind(), io::ErrorKind::PermissionDenied);
    // A password changed at run time.
    assert_eq!(
        server
            .cmd(&["CONFIG", "SET", "requirepass", "n3w"])
            .unwrap(),
        simple("OK")
    );
    assert_eq!(
        server.cmd_as(Some("n3w"), &["PING"]).unwrap(),
        simple("PONG")
    );
    assert!(server.cmd(&["PING"]).is_err());
}

#[test]
fn restart_on_the_same_port() {
    let mut server = RedisServer::start(ServerOptions::new().unix_socket()).expect("start");
    let (port, pid) = (server.port(), server.pid());
    let mut before = tcp(server.socket_addr());
    assert_eq!(ping(&mut before).unwrap(), "+PONG\r\n");
    assert_eq!(server.cmd(&["SET", "k", "v"]).unwrap(), simple("OK"));
    server.restart().expect("restart");
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), pid);
    assert!(wait_gone(pid, Duration::from_secs(2)));
    // The old connection is dead, a new one works, the data is gone.
    assert!(ping(&mut before).is_err());
    assert_eq!(ping(&mut tcp(server.socket_addr())).unwrap(), "+PONG\r\n");
    assert_eq!(server.cmd(&["GET", "k"]).unwrap(), Frame::NullBulk);
    let mut unix = UnixStream::connect(server.unix_path().unwrap()).unwrap();
    assert_eq!(ping(&mut unix).unwrap(), "+PONG\r\n");
    // Stopped, nothing listens; restarted, it answers again.
    server.stop();
    assert!(!server.is_running());
    assert!(TcpStream::connect(server.socket_addr()).is_err());
    server.restart().expect("restart");
    assert!(server.is_running());
    assert_eq!(server.port(), port);
    assert_eq!(server.cmd(&["PING"]).unwrap(), simple("PONG"));
}

#[test]
fn restart_tls_on_the_same_port() {
    let mut server = RedisServer::start(ServerOptions::new().tls(Pki::generate())).expect("start");
    let port = server.port();
    server.restart().expect("restart");
    assert_eq!(server.tls_port(), Some(port));
    assert_eq!(server.cmd(&["PING"]).unwrap(), simple("PONG"));
}

#[test]
fn fixed_port() {
    let first = RedisServer::start(ServerOptions::new()).expect("start");
    let port = first.port();
    // Taken: the start waits for the port, then gives up.
    let taken = RedisServer::start(
        ServerOptions::new()
            .port(port)
            .startup_timeout(Duration::from_millis(300)),
    )
    .unwrap_err();
    assert_eq!(taken.kind(), io::ErrorKind::AddrInUse, "{taken}");
    drop(first);
    let second = RedisServer::start(ServerOptions::new().port(port)).expect("start");
    assert_eq!(second.port(), port);
    assert_eq!(second.cmd(&["PING"]).unwrap(), simple("PONG"));
}

#[test]
fn ipv6_loopback_too() {
    let server = RedisServer::start(ServerOptions::new().ipv6()).expect("start");
    let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), server.port());
    assert_eq!(ping(&mut tcp(v6)).unwrap(), "+PONG\r\n");
    assert_eq!(ping(&mut tcp(server.socket_addr())).unwrap(), "+PONG\r\n");
}

#[test]
fn only_loopback_addresses() {
    for ip in [
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    ] {
        let err = RedisServer::start(ServerOptions::new().bind(&[ip])).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
    let err = RedisServer::start(ServerOptions::new().no_tcp()).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

#[test]
fn failed_start_quotes_the_log() {
    let err =
        RedisServer::start(ServerOptions::new().config("no-such-directive", "1")).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("exited"), "{msg}");
    assert!(msg.contains("no-such-directive"), "{msg}");
    let dir = msg
        .lines()
        .find_map(|l| l.strip_prefix("directory kept: "))
        .expect("the directory");
    assert!(Path::new(dir).join("stderr.log").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn drop_kills_the_process() {
    let server = RedisServer::start(ServerOptions::new()).expect("start");
    let (pid, addr, dir) = (server.pid(), server.socket_addr(), server.dir().to_owned());
    assert!(!process_gone(pid));
    drop(server);
    assert!(process_gone(pid), "pid {pid} still there");
    let alive = Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(!alive.success());
    assert!(TcpStream::connect(addr).is_err());
    assert!(!dir.exists());
}

#[test]
fn drop_during_a_panic_kills_the_process() {
    let (tx, rx) = std::sync::mpsc::channel();
    let result = thread::spawn(move || {
        let server = RedisServer::start(ServerOptions::new()).expect("start");
        tx.send((server.pid(), server.dir().to_owned())).unwrap();
        panic!("a failing test");
    })
    .join();
    assert!(result.is_err());
    let (pid, dir) = rx.recv().unwrap();
    assert!(process_gone(pid));
    // Kept for diagnosis.
    assert!(dir.join("redis.log").exists());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn suspend_and_resume() {
    let mut server = RedisServer::start(ServerOptions::new()).expect("start");
    let mut stream = tcp(server.socket_addr());
    server.suspend().unwrap();
    // Accepted by the kernel, answered by no one.
    let mut stalled = tcp(server.socket_addr());
    stalled
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let err = ping(&mut stalled).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
        ),
        "{err}"
    );
    server.resume().unwrap();
    assert_eq!(ping(&mut stream).unwrap(), "+PONG\r\n");
    let mut buf = [0; 7];
    stalled
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stalled.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"+PONG\r\n");
}

#[test]
fn parallel_servers_get_different_ports() {
    let servers: Vec<RedisServer> = (0..4)
        .map(|_| thread::spawn(|| RedisServer::start(ServerOptions::new()).expect("start")))
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let mut ports: Vec<u16> = servers.iter().map(RedisServer::port).collect();
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), servers.len());
    for server in &servers {
        assert_eq!(server.cmd(&["PING"]).unwrap(), simple("PONG"));
    }
}

#[test]
fn counts_open_fds() {
    // Other tests open and close descriptors meanwhile: one quiet round
    // out of a few is enough.
    let quiet = (0..50).any(|_| {
        let before = count_open_fds();
        let files: Vec<_> = (0..5)
            .map(|_| std::fs::File::open("/proc/self/stat").unwrap())
            .collect();
        let during = count_open_fds();
        drop(files);
        let after = count_open_fds();
        during == before + 5 && after == before
    });
    assert!(quiet);
}

const CHILD_ENV: &str = "REDPOLL_TESTKIT_SERVER_CHILD";

/// Run by `killed_test_process_takes_its_servers_along` in a process of
/// its own; does nothing otherwise.
#[test]
fn child_process_holding_a_server() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let server = RedisServer::start(ServerOptions::new()).expect("start");
    println!("REDIS {} {}", server.pid(), server.dir().display());
    thread::sleep(Duration::from_secs(30));
}

#[test]
fn killed_test_process_takes_its_servers_along() {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_holding_a_server",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map_while(Result::ok)
        .find_map(|line| Some(line.split_once("REDIS ")?.1.to_owned()))
        .expect("the child's server");
    let (pid, dir) = line.split_once(' ').unwrap();
    let pid: u32 = pid.parse().unwrap();
    assert!(!process_gone(pid));
    // SIGKILL: no destructor runs.
    child.kill().unwrap();
    child.wait().unwrap();
    let gone = wait_gone(pid, Duration::from_secs(3));
    if !gone {
        // Do not leave it behind, then fail.
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    let _ = std::fs::remove_dir_all(dir);
    assert!(gone, "redis-server {pid} outlived its test process");
}

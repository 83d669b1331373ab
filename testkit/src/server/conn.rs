//! The admin connection: one fresh blocking connection per request, over
//! plain TCP, TLS or a unix socket, speaking RESP with the project's codec.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use redpoll_core::resp::{Decoder, Frame, encode_command};
use rustls::pki_types::ServerName;

/// Where the admin connection goes.
#[derive(Debug, Clone, Copy)]
pub(super) enum Target<'a> {
    /// Plain TCP.
    Tcp(SocketAddr),
    /// TLS over TCP, verified against the test CA.
    Tls(SocketAddr, &'a Arc<rustls::ClientConfig>),
    /// A unix socket.
    Unix(&'a Path),
}

enum Stream {
    Tcp(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>),
    Unix(UnixStream),
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.read(buf),
            Self::Tls(s) => s.read(buf),
            Self::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Self::Tcp(s) => s.write(buf),
            Self::Tls(s) => s.write(buf),
            Self::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Self::Tcp(s) => s.flush(),
            Self::Tls(s) => s.flush(),
            Self::Unix(s) => s.flush(),
        }
    }
}

fn tcp(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn connect(target: Target<'_>, timeout: Duration) -> io::Result<Stream> {
    Ok(match target {
        Target::Tcp(addr) => Stream::Tcp(tcp(addr, timeout)?),
        Target::Tls(addr, config) => {
            let name = ServerName::from(addr.ip());
            let conn = rustls::ClientConnection::new(Arc::clone(config), name)
                .map_err(io::Error::other)?;
            Stream::Tls(Box::new(rustls::StreamOwned::new(
                conn,
                tcp(addr, timeout)?,
            )))
        }
        Target::Unix(path) => {
            let stream = UnixStream::connect(path)?;
            stream.set_read_timeout(Some(timeout))?;
            stream.set_write_timeout(Some(timeout))?;
            Stream::Unix(stream)
        }
    })
}

/// Sends `commands` pipelined over one fresh connection and returns their
/// replies in order. `timeout` bounds the connect and every read and write.
pub(super) fn request(
    target: Target<'_>,
    commands: &[&[&str]],
    timeout: Duration,
) -> io::Result<Vec<Frame>> {
    let mut stream = connect(target, timeout)?;
    let mut out = BytesMut::new();
    for command in commands {
        encode_command(&mut out, command);
    }
    stream.write_all(&out)?;
    stream.flush()?;
    let mut decoder = Decoder::new();
    let mut inbox = BytesMut::new();
    let mut replies = Vec::with_capacity(commands.len());
    let mut chunk = vec![0; 16 * 1024];
    while replies.len() < commands.len() {
        match decoder.decode(&mut inbox) {
            Ok(Some(frame)) => {
                replies.push(frame);
                continue;
            }
            Ok(None) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the server closed the connection after {} of {} replies",
                    replies.len(),
                    commands.len()
                ),
            ));
        }
        inbox.extend_from_slice(&chunk[..n]);
    }
    Ok(replies)
}

/// The text of a string-like or integer reply; an error reply is an error.
pub(super) fn text(frame: &Frame) -> io::Result<String> {
    match frame.without_attributes() {
        Frame::Simple(b)
        | Frame::Bulk(b)
        | Frame::BigNumber(b)
        | Frame::Verbatim { text: b, .. } => Ok(String::from_utf8_lossy(b).into_owned()),
        Frame::Integer(i) => Ok(i.to_string()),
        Frame::Error(b) | Frame::BulkError(b) => Err(io::Error::other(format!(
            "the server replied with an error: {}",
            String::from_utf8_lossy(b)
        ))),
        other => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not a text reply: {other:?}"),
        )),
    }
}

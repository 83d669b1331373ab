#!/usr/bin/env python3
"""Capture a corpus of real RESP2 and RESP3 replies from a real redis-server.

How to run (from the workspace root; needs `redis-server` 7.x on PATH or in
$REDIS_SERVER, Python 3 standard library only):

    python3 tests/corpus/capture.py

The script starts its own throwaway redis-server (loopback only, a free port,
no persistence, DEBUG enabled, in a temporary directory), runs the capture once
over a plain RESP2 connection and once over a connection switched to RESP3 with
`HELLO 3`, stops the server by its pid (also when something fails) and only
then replaces the corpus. It is safe to re-run: the previous `.bin` files are
removed and rewritten together with the manifest.

Output, under tests/data/corpus/:

    resp2/<name>.bin   the exact bytes the server sent for one command
    resp3/<name>.bin
    manifest.tsv       one row per capture, tab separated, with a header row
                       (lines starting with `#` are comments):

        protocol  `resp2` or `resp3`
        name      capture name (unique per protocol)
        file      path of the .bin file relative to tests/data/corpus/
        command   the command sent, printable (long or binary arguments are
                  abbreviated / escaped); a command in parentheses describes
                  an event caused from another connection (pub/sub message,
                  MONITOR line, tracking invalidation)
        frames    the number of top-level frames in the file (usually 1; e.g.
                  `DEBUG PROTOCOL push` in RESP3 sends a push frame and then a
                  normal reply, `SUBSCRIBE a b` sends one frame per channel)
        types     one token per top-level frame, separated by spaces: the
                  frame's type byte (`+ - : $ * _ , # ( = % ~ > !`), and for a
                  frame preceded by an attribute `|` followed by the type byte
                  of the frame the attribute is attached to (e.g. `|$`).

Each file holds exactly the bytes of the reply frames of its command: the
script contains a small RESP2/RESP3 parser that finds where a reply ends, and
after the expected number of frames it waits briefly to make sure the server
sent nothing else. Replies that depend on time, ports or memory (INFO, CLIENT
LIST, MONITOR lines, ...) differ between runs; that is fine, the committed
bytes are simply what was captured.
"""

import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "data", "corpus"))
REDIS_SERVER = os.environ.get("REDIS_SERVER", "redis-server")

# How long to wait after the last expected frame for unexpected extra bytes.
QUIET_SECONDS = 0.05
IO_TIMEOUT = 10.0


# --------------------------------------------------------------------------
# Minimal RESP2/RESP3 reader: only used to find where a reply ends.
# --------------------------------------------------------------------------

class Incomplete(Exception):
    pass


class ProtocolError(Exception):
    pass


def _line(buf, pos):
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise Incomplete()
    return bytes(buf[pos:end]), end + 2


def parse_frame(buf, pos):
    """Parse one frame at `pos`. Returns (end, token, value) or raises Incomplete.

    `token` is the type byte, or `|` + the type byte of the attributed frame.
    `value` is a rough Python value (for sanity checks only).
    """
    if pos >= len(buf):
        raise Incomplete()
    t = chr(buf[pos])
    if t in "+-:_,#(":
        line, end = _line(buf, pos + 1)
        return end, t, line
    if t in "$!=":
        line, end = _line(buf, pos + 1)
        if line == b"?":
            raise ProtocolError("streamed strings are not expected from redis-server")
        n = int(line)
        if n < 0:
            if t != "$" or n != -1:
                raise ProtocolError("bad length %r" % line)
            return end, t, None
        if len(buf) < end + n + 2:
            raise Incomplete()
        if bytes(buf[end + n:end + n + 2]) != b"\r\n":
            raise ProtocolError("missing CRLF after string at %d" % pos)
        return end + n + 2, t, bytes(buf[end:end + n])
    if t in "*~>%|":
        line, end = _line(buf, pos + 1)
        if line == b"?":
            raise ProtocolError("streamed aggregates are not expected from redis-server")
        n = int(line)
        if n < 0:
            if t != "*" or n != -1:
                raise ProtocolError("bad count %r" % line)
            return end, t, None
        items = []
        for _ in range(n * (2 if t in "%|" else 1)):
            end, _tok, v = parse_frame(buf, end)
            items.append(v)
        if t == "|":
            end, inner, v = parse_frame(buf, end)
            return end, "|" + inner, v
        return end, t, items
    raise ProtocolError("unknown type byte %r at %d" % (t, pos))


# --------------------------------------------------------------------------
# Connections
# --------------------------------------------------------------------------

def _arg(a):
    if isinstance(a, bytes):
        return a
    if isinstance(a, (int, float)):
        return str(a).encode()
    return a.encode()


def encode_command(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = _arg(a)
        out.append(b"$%d\r\n" % len(a))
        out.append(a)
        out.append(b"\r\n")
    return b"".join(out)


def display(args):
    parts = []
    for a in args:
        a = _arg(a)
        if len(a) > 64:
            parts.append("<%d bytes>" % len(a))
        elif a and all(0x21 <= c < 0x7F and c != 0x22 and c != 0x5C for c in a):
            parts.append(a.decode())
        else:
            s = "".join(
                chr(c) if 0x20 <= c < 0x7F and c not in (0x22, 0x5C) else "\\x%02x" % c
                for c in a
            )
            parts.append('"%s"' % s)
    return " ".join(parts)


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT)
        self.buf = bytearray()

    def close(self):
        self.sock.close()

    def send(self, args):
        self.sock.sendall(encode_command(args))

    def _fill(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buf += chunk

    def read_frames(self, n):
        """Read exactly n top-level frames; return (raw bytes, tokens, values)."""
        pos = 0
        tokens, values = [], []
        deadline = time.monotonic() + IO_TIMEOUT
        while len(tokens) < n:
            try:
                end, tok, val = parse_frame(self.buf, pos)
            except Incomplete:
                if time.monotonic() > deadline:
                    raise TimeoutError("timed out after %d of %d frames" % (len(tokens), n))
                self._fill()
                continue
            tokens.append(tok)
            values.append(val)
            pos = end
        raw = bytes(self.buf[:pos])
        del self.buf[:pos]
        # Nothing else may follow: the file must hold exactly this command's reply.
        r, _, _ = select.select([self.sock], [], [], QUIET_SECONDS)
        if r:
            self._fill()
        if self.buf:
            raise ProtocolError(
                "unexpected extra bytes after %d frame(s): %r" % (n, bytes(self.buf[:200]))
            )
        return raw, tokens, values

    def call(self, *args):
        """Send a command and return the rough value of its one reply frame."""
        self.send(list(args))
        _raw, _tokens, values = self.read_frames(1)
        return values[0]


# --------------------------------------------------------------------------
# Server
# --------------------------------------------------------------------------

def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Server:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="redpoll-corpus-")
        self.port = free_port()
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--enable-debug-command", "yes",
                "--dir", self.dir,
                "--logfile", os.path.join(self.dir, "redis.log"),
                "--daemonize", "no",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("redis-server exited with %s; log in %s" % (self.proc.returncode, self.dir))
            try:
                c = Conn(self.port)
                if c.call("PING") == b"PONG":
                    c.close()
                    break
                c.close()
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("redis-server did not come up on port %d" % self.port)
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to this pid only
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------
# The capture itself
# --------------------------------------------------------------------------

class Capture:
    def __init__(self, server, proto):
        self.server = server
        self.proto = proto  # 2 or 3
        self.rows = []  # (name, command display, frames, tokens, raw)
        self.conns = []

    def connect(self):
        c = Conn(self.server.port)
        self.conns.append(c)
        if self.proto == 3:
            c.call("HELLO", "3")
        return c

    def close(self):
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass

    def record(self, name, cmd, frames, tokens, raw):
        if any(r[0] == name for r in self.rows):
            raise ValueError("duplicate capture name %s" % name)
        self.rows.append((name, cmd, frames, tokens, raw))

    def cap(self, conn, name, args, frames=1):
        conn.send(list(args))
        raw, tokens, _ = conn.read_frames(frames)
        self.record(name, display(args), frames, tokens, raw)

    def cap_event(self, conn, name, description, frames=1):
        """Capture frames that arrive on `conn` because of another connection."""
        raw, tokens, _ = conn.read_frames(frames)
        self.record(name, "(%s)" % description, frames, tokens, raw)


def run(server, proto):
    cap = Capture(server, proto)
    p3 = proto == 3
    try:
        c = Conn(server.port)
        cap.conns.append(c)
        # The HELLO replies themselves (array in RESP2, map in RESP3).
        cap.cap(c, "hello", ["HELLO", str(proto)])
        other = cap.connect()

        # ---------------------------------------------------------- set-up
        c.call("FLUSHALL")
        c.call("SET", "str", "hello")
        c.call("SET", "empty", "")
        c.call("SET", "bin", b"a\r\nb\x00c$3\r\n*1\r\n")
        big = bytes((ord("a") + i % 26) for i in range(100 * 1024))
        c.call("SET", "big", big)
        c.call("SET", "counter", "41")
        c.call("SET", "i64max", "9223372036854775807")
        c.call("SET", "i64min", "-9223372036854775808")
        c.call("SET", "float", "3")
        c.call("RPUSH", "list", "a", "b", "c")
        c.call("RPUSH", "list1000", *["element-%04d" % i for i in range(1000)])
        c.call("HSET", "hash", "f1", "v1", "f2", "v2", "f3", "")
        c.call("SADD", "set", "a", "b", "c")
        c.call("ZADD", "zset", "1", "one", "2.5", "two", "3", "three", "0.1", "tenth",
               "1e-300", "tiny", "-0", "negzero")
        c.call("ZADD", "zinf", "+inf", "pos", "-inf", "neg")
        c.call("XADD", "stream", "1-1", "field", "value")
        c.call("XADD", "stream", "2-1", "a", "1", "b", "2")
        c.call("XADD", "stream", "3-1", "empty", "")
        c.call("XGROUP", "CREATE", "stream", "grp", "0")
        c.call("XREADGROUP", "GROUP", "grp", "alice", "COUNT", "2", "STREAMS", "stream", ">")
        c.call("GEOADD", "geo", "13.361389", "38.115556", "Palermo", "15.087269", "37.502669", "Catania")
        c.call("PFADD", "hll", "a", "b", "c")
        for i in range(10):
            c.call("SET", "scan:%d" % i, str(i))

        # ---------------------------------------------------------- simple strings
        cap.cap(c, "ping", ["PING"])
        cap.cap(c, "set_ok", ["SET", "k", "v"])
        cap.cap(c, "type_string", ["TYPE", "str"])
        cap.cap(c, "type_none", ["TYPE", "missing"])
        cap.cap(c, "object_help", ["OBJECT", "HELP"])  # array of simple strings

        # ---------------------------------------------------------- errors
        cap.cap(c, "err_wrongtype", ["GET", "list"])
        cap.cap(c, "err_unknown_command", ["NOSUCHCOMMAND", "arg"])
        cap.cap(c, "err_wrong_arity", ["GET"])
        cap.cap(c, "err_syntax", ["SET", "k", "v", "NX", "XX"])
        cap.cap(c, "err_not_integer", ["INCR", "str"])
        cap.cap(c, "err_overflow", ["INCR", "i64max"])
        cap.cap(c, "err_noscript", ["EVALSHA", "ffffffffffffffffffffffffffffffffffffffff", "0"])
        cap.cap(c, "err_lua", ["EVAL", "return redis.error_reply('MYERR custom error')", "0"])

        # ---------------------------------------------------------- integers
        cap.cap(c, "incr", ["INCR", "counter"])
        cap.cap(c, "del_zero", ["DEL", "missing"])
        cap.cap(c, "ttl_negative", ["TTL", "missing"])
        cap.cap(c, "strlen_big", ["STRLEN", "big"])
        cap.cap(c, "incrby_i64min", ["INCRBY", "i64min", "0"])
        cap.cap(c, "decrby_i64max", ["DECRBY", "i64max", "0"])
        cap.cap(c, "exists_many", ["EXISTS", "str", "list", "missing"])

        # ---------------------------------------------------------- bulk strings
        cap.cap(c, "get", ["GET", "str"])
        cap.cap(c, "get_empty", ["GET", "empty"])
        cap.cap(c, "get_binary", ["GET", "bin"])
        cap.cap(c, "get_big_100k", ["GET", "big"])
        cap.cap(c, "echo", ["ECHO", "hello world"])
        cap.cap(c, "ping_arg", ["PING", "with arg"])
        cap.cap(c, "incrbyfloat", ["INCRBYFLOAT", "float", "0.5"])
        cap.cap(c, "object_encoding", ["OBJECT", "ENCODING", "list1000"])
        cap.cap(c, "client_getname_null", ["CLIENT", "GETNAME"])
        cap.cap(c, "client_setname", ["CLIENT", "SETNAME", "corpus"])
        cap.cap(c, "client_getname", ["CLIENT", "GETNAME"])

        # ---------------------------------------------------------- nulls
        cap.cap(c, "get_missing", ["GET", "missing"])
        cap.cap(c, "hget_missing", ["HGET", "hash", "missing"])
        cap.cap(c, "blpop_timeout", ["BLPOP", "emptylist", "0.01"])  # *-1 / _
        cap.cap(c, "brpop_timeout", ["BRPOP", "emptylist", "0.01"])

        # ---------------------------------------------------------- arrays
        cap.cap(c, "lrange", ["LRANGE", "list", "0", "-1"])
        cap.cap(c, "lrange_empty", ["LRANGE", "missing", "0", "-1"])
        cap.cap(c, "lrange_1000", ["LRANGE", "list1000", "0", "-1"])
        cap.cap(c, "mget_with_null", ["MGET", "str", "missing", "empty", "bin"])
        cap.cap(c, "keys_pattern", ["KEYS", "scan:*"])
        cap.cap(c, "scan", ["SCAN", "0", "MATCH", "scan:*", "COUNT", "1000"])
        cap.cap(c, "scan_type", ["SCAN", "0", "TYPE", "list", "COUNT", "1000"])
        cap.cap(c, "sscan", ["SSCAN", "set", "0"])
        cap.cap(c, "hscan", ["HSCAN", "hash", "0"])
        cap.cap(c, "zscan", ["ZSCAN", "zset", "0"])
        cap.cap(c, "blpop", ["BLPOP", "list", "0.01"])
        cap.cap(c, "lpos_multi", ["LPOS", "list1000", "element-0007", "COUNT", "0"])

        # ---------------------------------------------------------- maps / sets
        cap.cap(c, "hgetall", ["HGETALL", "hash"])
        cap.cap(c, "hgetall_empty", ["HGETALL", "missing"])
        cap.cap(c, "smembers", ["SMEMBERS", "set"])
        cap.cap(c, "smembers_empty", ["SMEMBERS", "missing"])
        cap.cap(c, "sinter", ["SINTER", "set", "set"])
        cap.cap(c, "config_get", ["CONFIG", "GET", "maxmemory*"])
        cap.cap(c, "config_get_all", ["CONFIG", "GET", "*"])
        cap.cap(c, "config_get_none", ["CONFIG", "GET", "no-such-parameter"])

        # ---------------------------------------------------------- doubles
        cap.cap(c, "zscore", ["ZSCORE", "zset", "two"])
        cap.cap(c, "zscore_fraction", ["ZSCORE", "zset", "tenth"])
        cap.cap(c, "zscore_exponent", ["ZSCORE", "zset", "tiny"])
        cap.cap(c, "zscore_negzero", ["ZSCORE", "zset", "negzero"])
        cap.cap(c, "zscore_inf", ["ZSCORE", "zinf", "pos"])
        cap.cap(c, "zscore_neg_inf", ["ZSCORE", "zinf", "neg"])
        cap.cap(c, "zscore_missing", ["ZSCORE", "zset", "missing"])
        cap.cap(c, "zincrby", ["ZINCRBY", "zset", "0.25", "one"])
        cap.cap(c, "zmscore", ["ZMSCORE", "zset", "one", "missing", "two"])
        cap.cap(c, "zrange_withscores", ["ZRANGE", "zset", "0", "-1", "WITHSCORES"])
        cap.cap(c, "zrange_inf_withscores", ["ZRANGE", "zinf", "0", "-1", "WITHSCORES"])
        cap.cap(c, "zpopmin", ["ZPOPMIN", "zinf"])
        cap.cap(c, "bzpopmin_timeout", ["BZPOPMIN", "emptyzset", "0.01"])

        # ---------------------------------------------------------- streams / nested
        cap.cap(c, "xrange", ["XRANGE", "stream", "-", "+"])
        cap.cap(c, "xrevrange_count", ["XREVRANGE", "stream", "+", "-", "COUNT", "1"])
        cap.cap(c, "xrange_empty", ["XRANGE", "missing", "-", "+"])
        cap.cap(c, "xread", ["XREAD", "COUNT", "10", "STREAMS", "stream", "0"])
        cap.cap(c, "xread_timeout", ["XREAD", "BLOCK", "10", "STREAMS", "stream", "$"])
        cap.cap(c, "xinfo_stream", ["XINFO", "STREAM", "stream"])
        cap.cap(c, "xinfo_stream_full", ["XINFO", "STREAM", "stream", "FULL"])
        cap.cap(c, "xinfo_groups", ["XINFO", "GROUPS", "stream"])
        cap.cap(c, "xinfo_consumers", ["XINFO", "CONSUMERS", "stream", "grp"])
        cap.cap(c, "xpending_summary", ["XPENDING", "stream", "grp"])
        cap.cap(c, "xpending_range", ["XPENDING", "stream", "grp", "-", "+", "10"])
        cap.cap(c, "xautoclaim", ["XAUTOCLAIM", "stream", "grp", "bob", "0", "0-0"])
        cap.cap(c, "geopos", ["GEOPOS", "geo", "Palermo", "Nowhere", "Catania"])
        cap.cap(c, "geosearch", ["GEOSEARCH", "geo", "FROMLONLAT", "15", "37", "BYRADIUS", "200",
                                 "km", "ASC", "WITHCOORD", "WITHDIST", "WITHHASH"])
        cap.cap(c, "geodist", ["GEODIST", "geo", "Palermo", "Catania", "km"])
        cap.cap(c, "command_info", ["COMMAND", "INFO", "get", "set", "nosuchcommand"])
        cap.cap(c, "command_docs", ["COMMAND", "DOCS", "get", "zadd"])
        cap.cap(c, "command_getkeys", ["COMMAND", "GETKEYS", "MSET", "a", "1", "b", "2"])
        cap.cap(c, "memory_stats", ["MEMORY", "STATS"])
        cap.cap(c, "slowlog_get", ["SLOWLOG", "GET", "2"])
        cap.cap(c, "latency_latest", ["LATENCY", "LATEST"])
        cap.cap(c, "acl_getuser", ["ACL", "GETUSER", "default"])
        cap.cap(c, "function_list_empty", ["FUNCTION", "LIST"])

        # ---------------------------------------------------------- scripts
        cap.cap(c, "eval_nested", ["EVAL", "return {1, 'two', {3, {'four', {err='ERR nested error'}}}, {}}", "0"])
        cap.cap(c, "eval_true", ["EVAL", "return true", "0"])
        cap.cap(c, "eval_false", ["EVAL", "return false", "0"])
        cap.cap(c, "eval_status", ["EVAL", "return {ok='FINE'}", "0"])
        cap.cap(c, "eval_double", ["EVAL", "return {double=3.5}", "0"])
        cap.cap(c, "eval_double_inf", ["EVAL", "return {double=1/0}", "0"])
        # glibc prints NaN from 0/0 as "-nan": a real reply a client must cope with.
        cap.cap(c, "eval_double_nan", ["EVAL", "return {double=0/0}", "0"])
        cap.cap(c, "eval_big_number", ["EVAL", "return {big_number='-123456789012345678901234567890'}", "0"])
        cap.cap(c, "eval_verbatim", ["EVAL", "return {verbatim_string={format='txt', string='a\\r\\nb'}}", "0"])
        cap.cap(c, "eval_map", ["EVAL", "return {map={a=1}}", "0"])
        cap.cap(c, "eval_set", ["EVAL", "return {set={x=true}}", "0"])
        cap.cap(c, "eval_resp3_passthrough",
                ["EVAL", "redis.setresp(3); return redis.call('HGETALL', KEYS[1])", "1", "hash"])

        # ---------------------------------------------------------- text blobs
        cap.cap(c, "info", ["INFO"])
        cap.cap(c, "info_server", ["INFO", "server"])
        cap.cap(c, "client_info", ["CLIENT", "INFO"])
        cap.cap(c, "client_list", ["CLIENT", "LIST"])
        cap.cap(c, "lolwut", ["LOLWUT"])
        cap.cap(c, "memory_doctor", ["MEMORY", "DOCTOR"])

        # ---------------------------------------------------------- DEBUG PROTOCOL
        for kind in ["string", "integer", "double", "bignum", "null", "array", "set", "map",
                     "attrib", "push", "verbatim", "true", "false"]:
            # RESP3 push: a push frame, then a normal reply; RESP2 gets an error.
            frames = 2 if (kind == "push" and p3) else 1
            cap.cap(c, "debug_protocol_" + kind, ["DEBUG", "PROTOCOL", kind], frames)

        # ---------------------------------------------------------- transactions
        cap.cap(c, "multi", ["MULTI"])
        cap.cap(c, "queued", ["INCR", "counter"])
        c.call("GET", "str")
        c.call("LPUSH", "str", "x")  # fails at EXEC time: an error inside the array
        c.call("HGETALL", "hash")
        c.call("ZSCORE", "zset", "two")
        c.call("LRANGE", "missing", "0", "-1")
        cap.cap(c, "exec_mixed", ["EXEC"])
        c.call("MULTI")
        cap.cap(c, "err_in_multi", ["NOSUCHCOMMAND"])
        cap.cap(c, "exec_abort", ["EXEC"])
        cap.cap(c, "watch", ["WATCH", "watched"])
        other.call("SET", "watched", "changed")
        c.call("MULTI")
        c.call("SET", "watched", "mine")
        cap.cap(c, "exec_watch_failed", ["EXEC"])  # *-1 / _
        cap.cap(c, "exec_without_multi", ["EXEC"])

        # ---------------------------------------------------------- pub/sub
        sub = cap.connect()
        cap.cap(sub, "subscribe", ["SUBSCRIBE", "ch1"])
        cap.cap(sub, "subscribe_two", ["SUBSCRIBE", "ch2", "ch3"], 2)
        cap.cap(sub, "psubscribe", ["PSUBSCRIBE", "ch*"])
        cap.cap(sub, "ssubscribe", ["SSUBSCRIBE", "sch"])
        cap.cap(sub, "ping_subscribed", ["PING"])
        cap.cap(c, "publish", ["PUBLISH", "ch1", "hello"])
        cap.cap_event(sub, "pubsub_message", "PUBLISH ch1 hello from another connection", 2)
        c.call("SPUBLISH", "sch", "sharded")
        cap.cap_event(sub, "pubsub_smessage", "SPUBLISH sch sharded from another connection")
        cap.cap(c, "pubsub_channels", ["PUBSUB", "CHANNELS", "ch*"])
        cap.cap(c, "pubsub_numsub", ["PUBSUB", "NUMSUB", "ch1", "nochannel"])
        cap.cap(sub, "unsubscribe_all", ["UNSUBSCRIBE"], 3)
        cap.cap(sub, "punsubscribe", ["PUNSUBSCRIBE", "ch*"])
        cap.cap(sub, "sunsubscribe", ["SUNSUBSCRIBE"])
        cap.cap(sub, "unsubscribe_none", ["UNSUBSCRIBE"])  # channel is a null

        # ---------------------------------------------------------- client tracking (RESP3)
        if p3:
            cap.cap(c, "client_tracking_on", ["CLIENT", "TRACKING", "ON"])
            c.call("GET", "tracked")
            other.call("SET", "tracked", "changed")
            cap.cap_event(c, "tracking_invalidate", "SET tracked from another connection")
            c.call("GET", "tracked")
            cap.cap(c, "tracking_own_write", ["SET", "tracked", "mine"], 2)
            c.call("CLIENT", "TRACKING", "OFF")

        # ---------------------------------------------------------- MONITOR
        mon = cap.connect()
        cap.cap(mon, "monitor", ["MONITOR"])
        other.call("ECHO", "seen by monitor")
        cap.cap_event(mon, "monitor_line", "ECHO from another connection")

        # ---------------------------------------------------------- RESET
        cap.cap(other, "reset", ["RESET"])
    finally:
        cap.close()
    return cap.rows


def write(all_rows, version):
    for proto in ("resp2", "resp3"):
        d = os.path.join(OUT, proto)
        if os.path.isdir(d):
            for f in os.listdir(d):
                if f.endswith(".bin"):
                    os.remove(os.path.join(d, f))
        os.makedirs(d, exist_ok=True)
    lines = [
        "# Real replies captured from redis-server %s by tests/corpus/capture.py; see its docstring." % version,
        "protocol\tname\tfile\tcommand\tframes\ttypes",
    ]
    total = 0
    for proto, rows in all_rows:
        for name, cmd, frames, tokens, raw in rows:
            rel = "%s/%s.bin" % (proto, name)
            with open(os.path.join(OUT, rel), "wb") as f:
                f.write(raw)
            total += len(raw)
            assert "\t" not in cmd and "\n" not in cmd
            assert len(tokens) == frames
            lines.append("\t".join([proto, name, rel, cmd, str(frames), " ".join(tokens)]))
    with open(os.path.join(OUT, "manifest.tsv"), "w") as f:
        f.write("\n".join(lines) + "\n")
    return total


def main():
    server = Server()
    try:
        info = Conn(server.port)
        text = info.call("INFO", "server").decode()
        info.close()
        version = next(l.split(":", 1)[1].strip() for l in text.splitlines()
                       if l.startswith("redis_version:"))
        rows2 = run(server, 2)
        rows3 = run(server, 3)
    finally:
        server.stop()
    total = write([("resp2", rows2), ("resp3", rows3)], version)
    for proto, rows in (("resp2", rows2), ("resp3", rows3)):
        types = sorted({t for r in rows for tok in r[3] for t in tok})
        print("%s: %d captures, top-level type bytes: %s" % (proto, len(rows), " ".join(types)))
    print("wrote %d bytes of replies to %s" % (total, OUT))


if __name__ == "__main__":
    sys.exit(main())

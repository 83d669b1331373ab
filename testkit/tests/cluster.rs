//! The real-cluster support: start and readiness, slot coverage, a slot
//! migration that really answers `-ASK` (and is counted by the server),
//! `redis-cli` resharding, a manual failover, a node restart, and cleanup.
//!
//! Also the capture of `core/tests/data/keyslot.txt`, the server's
//! `CLUSTER KEYSLOT` table (ignored; re-run with
//! `cargo test -p redpoll-testkit --test cluster -- --ignored capture_keyslot`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use redpoll_core::resp::Frame;
use redpoll_testkit::certs::Pki;
use redpoll_testkit::cluster::{
    Cluster, ClusterOptions, RawConn, Role, SLOTS, hash_tag_for_slot, key_slot,
};
use redpoll_testkit::server::{RedisServer, ServerOptions};

fn bulk(s: &str) -> Frame {
    Frame::Bulk(s.as_bytes().to_vec().into())
}

fn ok() -> Frame {
    Frame::Simple("OK".into())
}

/// The text of an error reply, or `None`.
fn error_text(frame: &Frame) -> Option<String> {
    match frame {
        Frame::Error(b) | Frame::BulkError(b) => Some(String::from_utf8_lossy(b).into_owned()),
        _ => None,
    }
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

fn keyslot_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../core/tests/data/keyslot.txt")
}

/// One 3×1 cluster for every check, to keep the run short.
#[test]
fn cluster_support() {
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions::new()).expect("start the cluster");
    eprintln!(
        "cluster start (3 primaries × 1 replica): {:?}",
        started.elapsed()
    );

    // --- shape and coverage
    let nodes = cluster.nodes();
    assert_eq!(nodes.len(), 6);
    assert_eq!(cluster.seed_addrs().len(), 6);
    let primaries = cluster.primaries();
    assert_eq!(primaries.len(), 3);
    for primary in &primaries {
        let replicas = cluster.replicas_of(&primary.id);
        assert_eq!(replicas.len(), 1, "{primary:?}");
        assert_eq!(replicas[0].role, Role::Replica);
        assert!(replicas[0].slots.is_empty());
        assert_eq!(cluster.node_by_id(&primary.id).as_ref(), Some(primary));
    }
    let mut owners = vec![0u8; usize::from(SLOTS)];
    for primary in &primaries {
        for range in &primary.slots {
            for slot in range.clone() {
                owners[usize::from(slot)] += 1;
            }
        }
    }
    assert!(owners.iter().all(|&n| n == 1), "every slot served once");
    for port in cluster.ports() {
        let info = cluster.cmd_text(port, &["CLUSTER", "INFO"]).unwrap();
        assert!(info.contains("cluster_state:ok"), "{info}");
        assert!(info.contains("cluster_known_nodes:6"), "{info}");
    }
    if cluster.ipv6() {
        let port = cluster.ports()[0];
        let addr = format!("[::1]:{port}").parse().unwrap();
        let mut conn = RawConn::connect(addr, None).expect("::1");
        assert_eq!(conn.cmd(&["PING"]).unwrap(), Frame::Simple("PONG".into()));
    }

    // --- slots: the testkit's function agrees with the server's
    let port = cluster.ports()[0];
    for key in [
        "",
        "a",
        "foo",
        "{user1000}.following",
        "foo{}{bar}",
        "a{b}c",
    ] {
        let slot = cluster.cmd(port, &["CLUSTER", "KEYSLOT", key]).unwrap();
        assert_eq!(
            slot,
            Frame::Integer(key_slot(key.as_bytes()).into()),
            "{key:?}"
        );
    }
    for slot in [0, 5460, 5461, 10922, 10923, 16383] {
        let owner = cluster.node_for_slot(slot);
        assert!(owner.serves(slot));
        let key = format!("{{{}}}", hash_tag_for_slot(slot));
        assert_eq!(cluster.node_for_key(key.as_bytes()), owner);
    }

    // --- a manual migration, seen from a raw connection in the middle
    let slot = 1234;
    let tag = hash_tag_for_slot(slot);
    let source = cluster.node_for_slot(slot);
    let target = primaries
        .iter()
        .find(|p| p.id != source.id)
        .unwrap()
        .clone();
    let keys: Vec<String> = (0..100).map(|i| format!("{{{tag}}}:{i}")).collect();
    let mut at_source = cluster.connect(source.port).unwrap();
    let mut at_target = cluster.connect(target.port).unwrap();
    for key in &keys {
        assert_eq!(at_source.cmd(&["SET", key, key]).unwrap(), ok());
    }
    cluster.reset_stats().unwrap();
    let t = Instant::now();
    let mut migration = cluster
        .begin_migration(slot, source.port, target.port)
        .unwrap();
    assert_eq!(migration.move_keys(50).unwrap(), 50);
    assert_eq!(migration.keys_left().unwrap(), 50);
    let ask = format!("ASK {slot} 127.0.0.1:{}", target.port);
    let mut asked = Vec::new();
    for key in &keys {
        let reply = at_source.cmd(&["GET", key]).unwrap();
        if reply == bulk(key) {
            continue;
        }
        assert_eq!(error_text(&reply).as_deref(), Some(ask.as_str()), "{key}");
        asked.push(key);
    }
    assert_eq!(asked.len(), 50, "half the keys moved");
    // A new key goes to the target too.
    let new_key = format!("{{{tag}}}:new");
    let reply = at_source.cmd(&["SET", &new_key, "1"]).unwrap();
    assert_eq!(error_text(&reply).as_deref(), Some(ask.as_str()));
    // The target answers only after ASKING, and only that once.
    let moved_back = format!("MOVED {slot} 127.0.0.1:{}", source.port);
    let reply = at_target.cmd(&["GET", asked[0]]).unwrap();
    assert_eq!(error_text(&reply).as_deref(), Some(moved_back.as_str()));
    let replies = at_target
        .pipeline(&[&["ASKING"][..], &["GET", asked[0].as_str()][..]])
        .unwrap();
    assert_eq!(replies, vec![ok(), bulk(asked[0])]);
    let stats = cluster.errorstats(source.port).unwrap();
    assert_eq!(stats.ask, 51, "{stats:?}");
    assert_eq!(cluster.errorstats(target.port).unwrap().moved, 1);
    assert_eq!(migration.finish().unwrap(), 100);
    eprintln!("migrate one slot of 100 keys (stepwise): {:?}", t.elapsed());
    assert_eq!(cluster.node_for_slot(slot).id, target.id);
    let moved = format!("MOVED {slot} 127.0.0.1:{}", target.port);
    let reply = at_source.cmd(&["GET", &keys[0]]).unwrap();
    assert_eq!(error_text(&reply).as_deref(), Some(moved.as_str()));
    for key in &keys {
        assert_eq!(at_target.cmd(&["GET", key]).unwrap(), bulk(key));
    }
    assert_eq!(cluster.total_redirects().unwrap().moved, 2);

    // And back in one call.
    let t = Instant::now();
    assert_eq!(
        cluster
            .migrate_slot(slot, target.port, source.port)
            .unwrap(),
        100
    );
    eprintln!("migrate one slot of 100 keys back: {:?}", t.elapsed());
    assert_eq!(cluster.node_for_slot(slot).id, source.id);

    // --- redis-cli resharding
    let (from, to) = (&primaries[1], &primaries[2]);
    let t = Instant::now();
    cluster.reshard(100, from.port, to.port).unwrap();
    eprintln!("reshard 100 slots with redis-cli: {:?}", t.elapsed());
    assert_eq!(
        cluster.node(from.port).slot_count(),
        from.slot_count() - 100
    );
    assert_eq!(cluster.node(to.port).slot_count(), to.slot_count() + 100);

    // --- a manual failover swaps the roles and keeps the data
    let primary = cluster.node_for_slot(slot);
    let replica = cluster.replicas_of(&primary.id)[0].clone();
    let mut conn = cluster.connect(primary.port).unwrap();
    assert_eq!(conn.cmd(&["WAIT", "1", "5000"]).unwrap(), Frame::Integer(1));
    let t = Instant::now();
    cluster.failover(replica.port).unwrap();
    eprintln!("failover: {:?}", t.elapsed());
    assert_eq!(cluster.node(replica.port).role, Role::Primary);
    let demoted = cluster.node(primary.port);
    assert_eq!(demoted.role, Role::Replica);
    assert_eq!(demoted.primary_id.as_deref(), Some(replica.id.as_str()));
    assert_eq!(cluster.node_for_slot(slot).port, replica.port);
    let mut conn = cluster.connect(replica.port).unwrap();
    assert_eq!(conn.cmd(&["GET", &keys[7]]).unwrap(), bulk(&keys[7]));
    assert!(cluster.failover(replica.port).is_err(), "not a replica");

    // --- a replica restarts and rejoins with its id
    let pid = cluster.server(primary.port).pid();
    let t = Instant::now();
    cluster.restart_node(primary.port).unwrap();
    eprintln!("restart a replica: {:?}", t.elapsed());
    assert_ne!(cluster.server(primary.port).pid(), pid);
    assert_eq!(cluster.node(primary.port), demoted);

    // --- every process dies with the cluster
    let pids: Vec<u32> = cluster
        .ports()
        .into_iter()
        .map(|port| cluster.server(port).pid())
        .collect();
    drop(cluster);
    assert!(pids.iter().all(|&pid| process_gone(pid)), "{pids:?}");
    eprintln!("whole test: {:?}", started.elapsed());
}

/// A TLS-only cluster: clients, bus and replication over TLS.
#[test]
fn tls_cluster() {
    let started = Instant::now();
    let cluster = Cluster::start(ClusterOptions::new().replicas(0).tls(Pki::generate()))
        .expect("start the TLS cluster");
    eprintln!("TLS cluster start (3 primaries): {:?}", started.elapsed());
    assert!(cluster.seed_urls()[0].starts_with("rediss://127.0.0.1:"));
    let key = "{tls}:k";
    let owner = cluster.node_for_key(key.as_bytes());
    let mut conn = cluster.connect(owner.port).unwrap();
    assert_eq!(conn.cmd(&["SET", key, "v"]).unwrap(), ok());
    let other = cluster
        .primaries()
        .into_iter()
        .find(|p| p.id != owner.id)
        .unwrap();
    let reply = cluster
        .connect(other.port)
        .unwrap()
        .cmd(&["GET", key])
        .unwrap();
    let moved = format!(
        "MOVED {} 127.0.0.1:{}",
        key_slot(key.as_bytes()),
        owner.port
    );
    assert_eq!(error_text(&reply).as_deref(), Some(moved.as_str()));
    let shards = cluster.cmd(owner.port, &["CLUSTER", "SHARDS"]).unwrap();
    assert!(format!("{shards:?}").contains("tls-port"), "{shards:?}");
    assert_eq!(cluster.errorstats(other.port).unwrap().moved, 1);
}

/// The captured table, where present, agrees with the testkit's own slot
/// function (which the core's is checked against too).
#[test]
fn keyslot_table_agrees_with_the_testkit() {
    let path = keyslot_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run capture_keyslot)", path.display()));
    let mut count = 0;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (hex, slot) = line.split_once('\t').expect("<hex>\\t<slot>");
        let key: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        assert_eq!(key_slot(&key), slot.parse::<u16>().unwrap(), "{hex}");
        count += 1;
    }
    assert!(count >= 300, "{count} keys");
}

/// The keys of the table: every hash-tag edge case, binary and UTF-8
/// keys, long keys, and pseudo-random ones from a fixed seed.
fn keyslot_keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut add = |key: &[u8]| {
        if !keys.iter().any(|k| k == key) {
            keys.push(key.to_vec());
        }
    };
    // Plain keys.
    for key in [
        "",
        "a",
        "b",
        "A",
        "foo",
        "bar",
        "foobar",
        "hello",
        "key",
        "123456789",
        "user:1000",
        "user:1001",
        "session:abc",
        "0",
        "1",
        " ",
        "  ",
        "\t",
        "a b",
        "a\r\nb",
    ] {
        add(key.as_bytes());
    }
    for i in 0..40 {
        add(format!("key:{i}").as_bytes());
    }
    // Hash tags, every edge the spec names and then some.
    for key in [
        "{}",
        "{}{a}",
        "{{a}}",
        "a{b}c",
        "{a",
        "a}",
        "}{a}",
        "{a}{b}",
        "{a}",
        "{b}",
        "{ab}",
        "a{}",
        "{}a",
        "a{}b",
        "{{}}",
        "{{",
        "}}",
        "}{",
        "}{}",
        "{}}",
        "{{}",
        "{ }",
        "{a}}",
        "{{a}",
        "a{b",
        "a}b{c}",
        "a{b{c}d}e",
        "{a{b}c}",
        "{}{}",
        "{}{}{a}",
        "{a}{}",
        "{user1000}.following",
        "{user1000}.followers",
        "user1000",
        "foo{}{bar}",
        "foo{{bar}}zap",
        "foo{bar}{zap}",
        "{bar",
        "bar",
        "{foo}bar",
        "{foo}",
        "foo",
        "x{foo}y",
        "{foo}{foo}",
        "{foo}:1",
        "{foo}:2",
        "}foo{",
        "{\u{0}}",
        "{a\u{0}b}",
        "{{{a}}}",
        "{}{}{}",
        "{ {a} }",
        "{}x{y}",
        "{x}{}",
        "prefix{tag}suffix",
        "{tag}",
        "tag",
        "{TAG}",
        "TAG",
    ] {
        add(key.as_bytes());
    }
    // UTF-8.
    for key in [
        "é",
        "日本語",
        "{日本}語",
        "日本",
        "🦀",
        "{🦀}",
        "🦀{}",
        "Ünïcödé",
        "ключ",
        "{ключ}:1",
        "ключ",
        "مفتاح",
        "{é}",
        "é{é}",
        "\u{feff}bom",
    ] {
        add(key.as_bytes());
    }
    // Binary: every byte value alone would be 256 keys; take the
    // interesting ones, then braces around binary tags.
    for b in [
        0x00u8, 0x01, 0x09, 0x0a, 0x0d, 0x20, 0x7a, 0x7b, 0x7c, 0x7d, 0x7e, 0x7f, 0x80, 0xc0, 0xc3,
        0xfe, 0xff,
    ] {
        add(&[b]);
        add(&[b'{', b, b'}']);
        add(&[b, b'{', b'x', b'}']);
    }
    add(b"\x00\x00\x00\x00");
    add(b"\xff\xff\xff\xff");
    add(b"\x00{a}\x00");
    add(b"{\xff\xfe}\x00");
    add(b"\xc3\x28");
    add(b"{\xc3\x28}");
    // Long keys, with the tag early, late, or unclosed.
    add(&[b'a'; 1024]);
    add(&[b'z'; 4096]);
    let mut long = vec![b'x'; 1000];
    long.extend_from_slice(b"{tag}");
    add(&long);
    let mut long = b"{tag}".to_vec();
    long.extend_from_slice(&[b'x'; 1000]);
    add(&long);
    let mut long = b"{".to_vec();
    long.extend_from_slice(&[b'y'; 2000]);
    add(&long);
    let mut long = b"{".to_vec();
    long.extend_from_slice(&[b'y'; 2000]);
    long.push(b'}');
    add(&long);
    let long: Vec<u8> = (0..=255u8).cycle().take(8192).collect();
    add(&long);
    // Pseudo-random binary keys from a fixed seed (xorshift64*), a third
    // of them with braces spliced in.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    while keys.len() < 320 {
        let len = usize::try_from(next() % 48).unwrap() + 1;
        let mut key: Vec<u8> = (0..len).map(|_| next().to_le_bytes()[3]).collect();
        if next() % 3 == 0 {
            let at = usize::try_from(next()).unwrap() % len;
            key.insert(at, b'{');
            let close = at + 1 + usize::try_from(next()).unwrap() % (len - at);
            key.insert(close, b'}');
        }
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

/// Writes `core/tests/data/keyslot.txt` from a real server's answers.
#[test]
#[ignore = "regenerates core/tests/data/keyslot.txt"]
fn capture_keyslot() {
    // One node with cluster mode on answers CLUSTER KEYSLOT, slots or not.
    let server = RedisServer::start(
        ServerOptions::new()
            .config("cluster-enabled", "yes")
            .config("cluster-config-file", "nodes.conf"),
    )
    .expect("start");
    let info = server.cmd_text(&["INFO", "server"]).unwrap();
    let version = info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let keys = keyslot_keys();
    let mut conn = RawConn::connect(server.socket_addr(), None).unwrap();
    let commands: Vec<Vec<&[u8]>> = keys
        .iter()
        .map(|key| vec![&b"CLUSTER"[..], &b"KEYSLOT"[..], key.as_slice()])
        .collect();
    let replies = conn.pipeline(&commands).unwrap();
    let mut out = format!(
        "# CLUSTER KEYSLOT of redis-server {version}, one key a line: <key as lowercase hex>\\t<slot>\n\
         # (an empty hex field is the empty key). Generated by\n\
         # cargo test -p redpoll-testkit --test cluster -- --ignored capture_keyslot\n\
         # (testkit/tests/cluster.rs, keys deterministic: fixed lists and a fixed-seed xorshift).\n"
    );
    for (key, reply) in keys.iter().zip(&replies) {
        let Frame::Integer(slot) = reply else {
            panic!("CLUSTER KEYSLOT {key:?} answered {reply:?}");
        };
        let slot = u16::try_from(*slot).unwrap();
        assert_eq!(key_slot(key), slot, "the testkit disagrees on {key:?}");
        for b in key {
            let _ = write!(out, "{b:02x}");
        }
        let _ = writeln!(out, "\t{slot}");
    }
    let path = keyslot_path();
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, out).unwrap();
    eprintln!("{} keys written to {}", keys.len(), path.display());
}

//! The world: the client, the network, the server, the virtual clock, the
//! workload and the checks, stepped one input at a time.
//!
//! # The loop
//!
//! 1. Drain the client's effects (carrying each out: the network, a probe
//!    answered at once or later) and events (the model), until both are
//!    empty; then run every check.
//! 2. Jump the clock to the next thing due: a fault's start or heal, a
//!    server timer, a packet, the client's own deadline
//!    (`poll_timeout`), a deferred probe answer, a lease's next step, a
//!    recovery probe, the workload's next action.
//! 3. Do exactly one of them, and go to 1.
//!
//! After the workload's time is up the world keeps running, without new
//! actions, until every request has completed; then the client is shut
//! down, the network drains, and the end checks run (every socket closed,
//! every request completed, every read against the final fates of the
//! writes).

use std::collections::{BTreeMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};

use redpoll_core::client::Status;
use redpoll_core::resp::Frame;
use redpoll_core::{
    Client, CloseReason, Duration, Effect, Error, Event, HandshakeErrorKind, Instant, IoError,
    LeaseId, RequestId, SocketId,
};

use super::check::{Check, Invariant, SocketLife, Sockets, View, Violation, WorldEvent};
use super::fault::{self, Conditions, Fault, FaultKind};
use super::liveness::Liveness;
use super::model::{Broken, Model, Op, Via};
use super::net::{ConnectOutcome, Delivery, Net, ToClient, ToServer};
use super::rng::Rng;
use super::server::{Backend, ServerAction, ServerOut, StandaloneServer};
use super::workload::{Action, Workload};
use super::{Failure, Params, Profile, stream};

/// What a run did, for the statistics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests sent.
    pub requests: u64,
    /// Replies (server error replies excluded).
    pub ok: u64,
    /// Error replies and typed errors.
    pub errors: u64,
    /// Sockets opened.
    pub sockets: u64,
    /// Faults in the schedule.
    pub faults: u64,
    /// Steps taken.
    pub steps: u64,
    /// Virtual time covered, in milliseconds.
    pub virtual_ms: u64,
    /// When the client served again after the last fault healed, in
    /// milliseconds after the heal.
    pub recovered_ms: Option<u64>,
    /// How often each thing of interest happened: close reasons, typed
    /// errors, statuses (what the faults made the client go through).
    pub coverage: BTreeMap<&'static str, u64>,
}

impl std::ops::AddAssign for Stats {
    fn add_assign(&mut self, o: Self) {
        self.requests += o.requests;
        self.ok += o.ok;
        self.errors += o.errors;
        self.sockets += o.sockets;
        self.faults += o.faults;
        self.steps += o.steps;
        self.virtual_ms += o.virtual_ms;
        self.recovered_ms = self.recovered_ms.max(o.recovered_ms);
        for (k, v) in o.coverage {
            *self.coverage.entry(k).or_default() += v;
        }
    }
}

/// A lease and its script.
#[derive(Debug)]
struct LeaseRun {
    lease: LeaseId,
    steps: VecDeque<(Instant, Vec<(Op, bool)>)>,
    reqs: Vec<RequestId>,
    release_at: Option<Instant>,
    txn: Option<usize>,
}

/// The recovery check (I5): probes after the last fault healed.
#[derive(Debug)]
struct Recovery {
    /// When the world became healthy.
    healed: Instant,
    /// By when a probe must have been answered.
    bound: Instant,
    next_probe: Option<Instant>,
    probes: Vec<RequestId>,
    served: Option<Instant>,
}

/// The longest the world waits, once the workload stopped, for every
/// request to complete.
const QUIESCE: Duration = Duration::from_secs(60);
/// The interval of the recovery probes.
const PROBE_GAP: Duration = Duration::from_millis(20);
/// Steps at one instant beyond which time is declared stuck.
const MAX_STEPS_PER_INSTANT: u32 = 50_000;

/// One run of the simulation.
pub struct Sim {
    params: Params,
    faults: Vec<Fault>,
    custom_faults: bool,
    origin: Instant,
    now: Instant,
    client: Client,
    net: Net,
    server: Box<dyn Backend>,
    model: Model,
    sockets: BTreeMap<SocketId, SocketLife>,
    checks: Vec<Box<dyn Check>>,
    workload: Workload,
    adapter: Rng,
    edges: VecDeque<(Instant, usize, bool)>,
    next_action: Option<Instant>,
    leases: Vec<LeaseRun>,
    released: Vec<LeaseId>,
    deferred_probes: Vec<(Instant, SocketId)>,
    recovery: Option<Recovery>,
    shut_down: bool,
    timeout_step: bool,
    same_instant: u32,
    steps: u64,
    trace: Option<VecDeque<String>>,
    trace_lines: usize,
    coverage: BTreeMap<&'static str, u64>,
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("seed", &self.params.seed)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

fn close_kind(reason: &CloseReason) -> &'static str {
    match reason {
        CloseReason::Shutdown => "close: shutdown",
        CloseReason::HandshakeDeadline => "close: handshake deadline",
        CloseReason::ConnectFailed(_) => "close: connect failed",
        CloseReason::Io(_) => "close: io error",
        CloseReason::Eof => "close: eof",
        CloseReason::Tls(_) => "close: tls",
        CloseReason::Handshake(e) => match e.kind {
            HandshakeErrorKind::ProtectedMode => "close: handshake DENIED",
            HandshakeErrorKind::WrongPassword => "close: handshake WRONGPASS",
            HandshakeErrorKind::AuthRequired => "close: handshake NOAUTH",
            HandshakeErrorKind::Loading => "close: handshake LOADING",
            _ => "close: handshake other",
        },
        CloseReason::Protocol(_) => "close: protocol",
        CloseReason::UnexpectedReply => "close: unexpected reply",
        CloseReason::Stalled => "close: stalled",
        CloseReason::Unclean => "close: unclean",
        CloseReason::Surplus => "close: surplus",
        _ => "close: other",
    }
}

fn error_kind(e: &Error) -> &'static str {
    match e {
        Error::Timeout => "error: timeout",
        Error::Connection(_) => "error: connection",
        Error::Shutdown => "error: shutdown",
        Error::PoolExhausted => "error: pool exhausted",
        Error::Unsupported(_) => "error: unsupported",
        _ => "error: other",
    }
}

fn broken(b: Broken) -> Violation {
    match b {
        Broken::ExactlyOnce(m) => Violation::new(Invariant::ExactlyOnce, m),
        Broken::OwnReply(m) => Violation::new(Invariant::OwnReply, m),
        Broken::Linearizable(m) => Violation::new(Invariant::Linearizable, m),
    }
}

impl Sim {
    /// The run of `seed` in `profile`, with its own fault schedule.
    #[must_use]
    pub fn new(seed: u64, profile: Profile) -> Self {
        let faults = Params::draw(seed, profile).faults();
        let mut sim = Self::with_faults(seed, profile, faults);
        sim.custom_faults = false;
        sim
    }

    /// The run of `seed` in `profile` with the fault schedule `faults`.
    #[must_use]
    pub fn with_faults(seed: u64, profile: Profile, mut faults: Vec<Fault>) -> Self {
        let params = Params::draw(seed, profile);
        faults.sort_by_key(|f| f.at);
        let custom_faults = faults != params.faults();
        let root = Rng::new(seed);
        let origin = Instant::from_nanos(1_000_000_000);
        let mut edges: Vec<(Instant, usize, bool)> = Vec::new();
        for (i, f) in faults.iter().enumerate() {
            edges.push((origin + f.at, i, true));
            edges.push((origin + f.heal(), i, false));
        }
        edges.sort_by_key(|&(at, i, start)| (at, !start, i));
        let mut model = Model::new();
        model.resp2 = params.resp2();
        model.incr_weight = if params.retry.writes {
            1 + u64::from(params.retry.attempts)
        } else {
            1
        };
        let server = StandaloneServer::new(params.server.clone(), root.fork(stream::SERVER));
        let healed = origin + fault::healed_at(&faults);
        let bound = healed
            + params.conn.handshake_timeout
            + params.reconnect.cap
            + PROBE_GAP
            + params.conn.handshake_timeout
            + params.net.max_one_way() * 20
            + params.net.eof_lag
            + Duration::from_millis(50);
        Self {
            client: Client::new(params.client_config()),
            net: Net::new(params.net, root.fork(stream::NET)),
            server: Box::new(server),
            model,
            sockets: BTreeMap::new(),
            checks: vec![Box::new(Sockets::default()), Box::new(Liveness::default())],
            workload: Workload::new(
                root.fork(stream::WORKLOAD),
                params.pubsub,
                params.profile == Profile::Full,
                params.max_gap,
            ),
            adapter: root.fork(stream::ADAPTER),
            edges: edges.into(),
            next_action: Some(origin),
            leases: Vec::new(),
            released: Vec::new(),
            deferred_probes: Vec::new(),
            recovery: Some(Recovery {
                healed,
                bound,
                next_probe: Some(healed),
                probes: Vec::new(),
                served: None,
            }),
            shut_down: false,
            timeout_step: false,
            same_instant: 0,
            steps: 0,
            trace: None,
            trace_lines: 0,
            coverage: BTreeMap::new(),
            origin,
            now: origin,
            faults,
            custom_faults,
            params,
        }
    }

    /// Adds a check (the pool's I2, the cluster's I3 and I4).
    #[must_use]
    pub fn with_check(mut self, check: Box<dyn Check>) -> Self {
        self.checks.push(check);
        self
    }

    /// Keeps a trace of the last `lines` inputs and outputs, handed back
    /// with a failure.
    #[must_use]
    pub fn traced(mut self, lines: usize) -> Self {
        self.trace = Some(VecDeque::new());
        self.trace_lines = lines;
        self
    }

    /// The run's parameters.
    #[must_use]
    pub const fn params(&self) -> &Params {
        &self.params
    }

    /// The run's fault schedule.
    #[must_use]
    pub fn faults(&self) -> &[Fault] {
        &self.faults
    }

    /// Runs to the end.
    ///
    /// # Errors
    ///
    /// The first invariant broken, with the seed and the command that
    /// replays it.
    pub fn run(mut self) -> Result<Stats, Failure> {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.run_inner()));
        let violation = match outcome {
            Ok(Ok(())) => return Ok(self.stats()),
            Ok(Err(v)) => v,
            Err(panic) => {
                let message = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                    .unwrap_or_else(|| "a panic without a message".to_owned());
                Violation::new(Invariant::NoPanic, message)
            }
        };
        Err(Failure {
            seed: self.params.seed,
            profile: self.params.profile,
            violation,
            at: self.now.saturating_duration_since(self.origin),
            faults: self.faults.clone(),
            custom_faults: self.custom_faults,
            trace: self.trace.take().map(Vec::from).unwrap_or_default(),
        })
    }

    fn stats(&self) -> Stats {
        Stats {
            requests: self.model.reqs().count() as u64,
            ok: self.model.ok,
            errors: self.model.errors,
            sockets: self.sockets.len() as u64,
            faults: self.faults.len() as u64,
            steps: self.steps,
            virtual_ms: self.now.saturating_duration_since(self.origin).as_millis() as u64,
            recovered_ms: self.recovery.as_ref().and_then(|r| {
                r.served
                    .map(|s| s.saturating_duration_since(r.healed).as_millis() as u64)
            }),
            coverage: self.coverage.clone(),
        }
    }

    fn count(&mut self, what: &'static str) {
        *self.coverage.entry(what).or_default() += 1;
    }

    fn log(&mut self, line: impl FnOnce() -> String) {
        if let Some(trace) = &mut self.trace {
            let t = self.now.saturating_duration_since(self.origin);
            trace.push_back(format!("{:>10.6}s {}", t.as_secs_f64(), line()));
            if trace.len() > self.trace_lines {
                trace.pop_front();
            }
        }
    }

    fn run_inner(&mut self) -> Result<(), Violation> {
        let end = self.origin + self.params.run_for;
        loop {
            self.drain()?;
            let active = self.now < end;
            if !active {
                self.next_action = None;
                if self.quiet() {
                    break;
                }
                if self.now > end + QUIESCE {
                    let (id, req) = self.model.pending().next().map_or_else(
                        || (String::from("nothing"), String::new()),
                        |(id, r)| {
                            (
                                id.to_string(),
                                format!("{:?} via {:?} sent at {:?}", r.op, r.via, r.sent_at),
                            )
                        },
                    );
                    return Err(Violation::new(
                        Invariant::ExactlyOnce,
                        format!(
                            "{} requests still pending {QUIESCE:?} after the workload stopped in a healthy world, {id} first ({req}); leases held: {:?}; recovery served: {:?}",
                            self.model.pending_count(),
                            self.leases,
                            self.recovery.as_ref().map(|r| r.served)
                        ),
                    ));
                }
            }
            let Some(next) = self.next_due() else {
                break;
            };
            let next = next.max(self.now);
            if next == self.now {
                self.same_instant += 1;
                if self.same_instant > MAX_STEPS_PER_INSTANT {
                    return Err(Violation::new(
                        Invariant::TimerProgress,
                        format!(
                            "{MAX_STEPS_PER_INSTANT} steps at one instant: time does not advance (the client asks to be woken at {:?})",
                            self.client.poll_timeout()
                        ),
                    ));
                }
            } else {
                self.same_instant = 0;
            }
            self.now = next;
            self.step()?;
        }
        self.finish()
    }

    /// Whether nothing is left to wait for after the workload stopped.
    fn quiet(&self) -> bool {
        self.model.pending_count() == 0
            && self.leases.is_empty()
            && (self.shut_down || self.recovery.as_ref().is_none_or(|r| r.served.is_some()))
    }

    fn next_due(&self) -> Option<Instant> {
        let lease_times = self.leases.iter().flat_map(|l| {
            l.steps
                .front()
                .map(|(at, _)| *at)
                .into_iter()
                .chain(l.release_at)
        });
        [
            self.edges.front().map(|e| e.0),
            self.server.next_timer(),
            self.net.next_due(),
            self.client.poll_timeout(),
            self.deferred_probes.iter().map(|p| p.0).min(),
            lease_times.min(),
            self.recovery
                .as_ref()
                .and_then(|r| r.next_probe.filter(|_| !self.shut_down)),
            self.next_action,
            self.model
                .next_deadline()
                .map(|(d, _)| d + Duration::from_nanos(1)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Does one thing due now.
    fn step(&mut self) -> Result<(), Violation> {
        self.steps += 1;
        self.timeout_step = false;
        let now = self.now;
        if self.edges.front().is_some_and(|e| e.0 <= now) {
            let (_, i, start) = self.edges.pop_front().expect("edge");
            return self.fault_edge(i, start);
        }
        if self.server.next_timer().is_some_and(|t| t <= now) {
            let mut out = ServerOut::new();
            let result = self.server.on_timer(now, &mut out);
            self.server_out(out)?;
            return result.map_err(|m| Violation::new(Invariant::ClientWire, m));
        }
        if let Some(delivery) = self.net.pop_due(now) {
            return self.deliver(delivery);
        }
        if let Some(i) = self.deferred_probes.iter().position(|p| p.0 <= now) {
            let (_, socket) = self.deferred_probes.remove(i);
            return self.answer_probe(socket);
        }
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.log(|| "handle_timeout".to_owned());
            self.client.handle_timeout(now);
            self.timeout_step = true;
            return Ok(());
        }
        if self.lease_step()? {
            return Ok(());
        }
        if let Some(r) = &mut self.recovery
            && !self.shut_down
            && r.next_probe.is_some_and(|t| t <= now)
        {
            r.next_probe = Some(now + PROBE_GAP);
            let token = self.workload.echo_token();
            let id = self.send(Op::Echo { token }, None)?;
            if let Some(r) = &mut self.recovery {
                r.probes.push(id);
            }
            return Ok(());
        }
        if self.next_action.is_some_and(|t| t <= now) {
            self.next_action = Some(now + self.workload.gap());
            return self.act();
        }
        Ok(())
    }

    // ---- the client's outputs -------------------------------------------

    fn view(&self) -> View<'_> {
        View {
            now: self.now,
            client: &self.client,
            params: &self.params,
            sockets: &self.sockets,
            timeout_step: self.timeout_step,
            net: &self.net,
        }
    }

    /// Tells the checks what the world does to the client's sockets.
    fn notify(&mut self, event: &WorldEvent<'_>) -> Result<(), Violation> {
        let mut checks = std::mem::take(&mut self.checks);
        let checked = checks
            .iter_mut()
            .try_for_each(|c| c.world(&self.view(), event));
        self.checks = checks;
        checked
    }

    /// Drains effects and events, then runs the step checks.
    fn drain(&mut self) -> Result<(), Violation> {
        loop {
            let mut moved = false;
            while let Some(effect) = self.client.poll_effect() {
                moved = true;
                self.effect(effect)?;
            }
            while let Some(event) = self.client.poll_event() {
                moved = true;
                self.event(event)?;
            }
            if !moved && !self.release_done_leases() {
                break;
            }
        }
        self.check_step()
    }

    fn effect(&mut self, effect: Effect) -> Result<(), Violation> {
        self.log(|| match &effect {
            Effect::Send { socket, data } => format!("effect Send {socket} {} bytes", data.len()),
            other => format!("effect {other:?}"),
        });
        let mut checks = std::mem::take(&mut self.checks);
        let checked = checks
            .iter_mut()
            .try_for_each(|c| c.effect(&self.view(), &effect));
        self.checks = checks;
        checked?;
        let now = self.now;
        match effect {
            Effect::Connect { socket, address } => {
                self.sockets.insert(
                    socket,
                    SocketLife {
                        opened: now,
                        ready: None,
                        closed: None,
                    },
                );
                let cond = Conditions::at(&self.faults, now.saturating_duration_since(self.origin));
                let outcome = if !self.server.listens(&address) || cond.refuse {
                    ConnectOutcome::Refuse
                } else if let Some(until) = cond.blackhole_until {
                    ConnectOutcome::Hang {
                        until: self.origin + until,
                    }
                } else {
                    ConnectOutcome::Accept {
                        delay: cond.connect_delay.unwrap_or_default(),
                    }
                };
                self.net.connect(socket, address, now, outcome);
            }
            Effect::Send { socket, data } => self.net.client_send(socket, &data, now),
            Effect::Close { socket, reason } => {
                self.count(close_kind(&reason));
                if let Some(life) = self.sockets.get_mut(&socket) {
                    life.closed = Some((now, reason));
                }
                self.deferred_probes.retain(|p| p.1 != socket);
                self.net.client_close(socket, now);
            }
            Effect::Probe { socket } => {
                self.count("probe");
                if self.adapter.chance(self.params.probe_defer_percent) {
                    let later = self
                        .adapter
                        .duration(Duration::ZERO, Duration::from_millis(5));
                    self.deferred_probes.push((now + later, socket));
                } else {
                    self.answer_probe(socket)?;
                }
            }
        }
        Ok(())
    }

    /// The adapter looks at the socket without blocking: what has arrived
    /// is reported, else "nothing waiting".
    fn answer_probe(&mut self, socket: SocketId) -> Result<(), Violation> {
        let now = self.now;
        if self.sockets.get(&socket).is_none_or(|l| l.closed.is_some()) {
            return Ok(());
        }
        match self.net.pop_due_to_client(socket, now) {
            Some(what) => {
                self.log(|| format!("probe {socket}: {what:?}"));
                if matches!(what, ToClient::Eof | ToClient::Error(_)) {
                    self.count("probe: found dead");
                }
                self.feed_client(socket, what, true)
            }
            None => {
                self.log(|| format!("probe {socket}: nothing"));
                self.notify(&WorldEvent::ProbeNothing { socket })?;
                self.client.handle_probe_done(now, socket);
                Ok(())
            }
        }
    }

    fn event(&mut self, event: Event) -> Result<(), Violation> {
        self.log(|| format!("event {event:?}"));
        let mut checks = std::mem::take(&mut self.checks);
        let checked = checks
            .iter_mut()
            .try_for_each(|c| c.event(&self.view(), &event));
        self.checks = checks;
        checked?;
        match &event {
            Event::Response { result: Err(e), .. } => self.count(error_kind(e)),
            Event::Status(Status::GaveUp { .. }) => self.count("status: gave up"),
            Event::Status(Status::Reconnecting { .. }) => self.count("status: reconnecting"),
            Event::Push { .. } => self.count("push"),
            _ => {}
        }
        match event {
            Event::Response { id, result } => {
                if let Some(r) = &mut self.recovery
                    && r.served.is_none()
                    && r.probes.contains(&id)
                    && matches!(result, Ok(Frame::Bulk(_)))
                {
                    r.served = Some(self.now);
                    r.next_probe = None;
                }
                self.model.response(id, result, self.now).map_err(broken)
            }
            Event::Push { frame, .. } => self.model.push(&frame).map_err(broken),
            Event::Connected { socket, .. } => {
                if let Some(life) = self.sockets.get_mut(&socket) {
                    life.ready = Some(self.now);
                }
                Ok(())
            }
            Event::Status(_) | Event::Disconnected { .. } => Ok(()),
        }
    }

    fn check_step(&mut self) -> Result<(), Violation> {
        let mut checks = std::mem::take(&mut self.checks);
        let checked = checks.iter_mut().try_for_each(|c| c.step(&self.view()));
        self.checks = checks;
        checked?;
        let now = self.now;
        if let Some((deadline, id)) = self.model.next_deadline()
            && (now > deadline || (self.timeout_step && now >= deadline))
        {
            let (op, via) = self
                .model
                .req(id)
                .map(|r| (r.op.clone(), r.via))
                .expect("a pending request");
            return Err(Violation::new(
                Invariant::RequestDeadline,
                format!(
                    "{id} ({op:?} via {via:?}) still pending at {now:?}, past its deadline {deadline:?}"
                ),
            ));
        }
        // All pending requests, not only the shared connection's: cheap, and
        // enough to catch requests kept after they completed or were
        // cancelled.
        let pending = self.model.pending_count();
        if self.client.in_flight() > pending {
            return Err(Violation::new(
                Invariant::Bounded,
                format!(
                    "the shared connection holds {} requests, but only {pending} are pending",
                    self.client.in_flight()
                ),
            ));
        }
        if let Some(r) = &self.recovery
            && r.served.is_none()
            && !self.shut_down
            && now > r.bound
        {
            return Err(Violation::new(
                Invariant::Recovery,
                format!(
                    "the world is healthy since {:?} (the last fault healed), yet no request was served by {:?} (handshake deadline {:?} + backoff cap {:?} + probe interval + a handshake); the client's reconnect phase is {:?}",
                    r.healed,
                    r.bound,
                    self.params.conn.handshake_timeout,
                    self.params.reconnect.cap,
                    self.client.reconnect_phase()
                ),
            ));
        }
        Ok(())
    }

    // ---- the network and the server --------------------------------------

    fn deliver(&mut self, delivery: Delivery) -> Result<(), Violation> {
        let now = self.now;
        match delivery {
            Delivery::Client(socket, what) => {
                self.log(|| match &what {
                    ToClient::Data(d) => format!("deliver to client {socket}: {} bytes", d.len()),
                    other => format!("deliver to client {socket}: {other:?}"),
                });
                self.feed_client(socket, what, false)
            }
            Delivery::Server(socket, what) => {
                self.log(|| match &what {
                    ToServer::Data(d) => format!("deliver to server {socket}: {} bytes", d.len()),
                    other => format!("deliver to server {socket}: {other:?}"),
                });
                let mut out = ServerOut::new();
                let result = match what {
                    ToServer::Accept => {
                        let address = self.net.address(socket).cloned();
                        if let Some(address) = address {
                            self.server.accept(socket, &address, now, &mut out);
                        }
                        Ok(())
                    }
                    ToServer::Data(data) => self.server.data(socket, &data, now, &mut out),
                    ToServer::Eof => {
                        self.server.closed(socket);
                        Ok(())
                    }
                };
                self.server_out(out)?;
                result.map_err(|m| Violation::new(Invariant::ClientWire, format!("{socket}: {m}")))
            }
        }
    }

    /// Reports `what` on `socket` to the client (`probe`: a probe found it).
    fn feed_client(
        &mut self,
        socket: SocketId,
        what: ToClient,
        probe: bool,
    ) -> Result<(), Violation> {
        self.notify(&WorldEvent::Fed {
            socket,
            what: &what,
            probe,
        })?;
        let now = self.now;
        match what {
            ToClient::Connected => self.client.handle_connected(now, socket),
            ToClient::ConnectFailed(e) => self.client.handle_connect_failed(now, socket, e),
            ToClient::Data(data) => self.client.handle_data(now, socket, &data),
            ToClient::Eof => self.client.handle_eof(now, socket),
            ToClient::Error(e) => self.client.handle_io_error(now, socket, e),
        }
        Ok(())
    }

    fn server_out(&mut self, out: ServerOut) -> Result<(), Violation> {
        let now = self.now;
        for (socket, action) in out {
            match action {
                ServerAction::Write(data) => self.net.server_send(socket, &data, now),
                ServerAction::Close => {
                    self.server.closed(socket);
                    self.net.server_close(socket, now);
                }
                ServerAction::CloseIdle => {
                    self.log(|| format!("server closes {socket}: idle"));
                    self.count("server idle close");
                    let lost = self.net.to_server_in_flight(socket);
                    self.notify(&WorldEvent::ServerClosedIdle { socket, lost })?;
                    self.server.closed(socket);
                    self.net.server_close(socket, now);
                }
            }
        }
        Ok(())
    }

    /// The server resets `socket`.
    fn reset(&mut self, socket: SocketId) {
        self.server.closed(socket);
        self.net.reset(socket, self.now, IoError::Reset);
    }

    fn reset_all(&mut self) {
        for socket in self.net.server_sockets() {
            self.reset(socket);
        }
    }

    fn pick(sockets: &[SocketId], pick: u32) -> Option<SocketId> {
        (!sockets.is_empty()).then(|| sockets[pick as usize % sockets.len()])
    }

    fn fault_edge(&mut self, i: usize, start: bool) -> Result<(), Violation> {
        let fault = self.faults[i];
        self.log(|| format!("fault {} {fault}", if start { "starts" } else { "heals" }));
        let t = self.now.saturating_duration_since(self.origin);
        self.server.set_conditions(Conditions::at(&self.faults, t));
        if !start {
            return Ok(());
        }
        let heal = self.origin + fault.heal();
        match fault.kind {
            FaultKind::ResetAll
            | FaultKind::Refuse { .. }
            | FaultKind::Denied { .. }
            | FaultKind::WrongPassword { kill: true, .. } => self.reset_all(),
            FaultKind::Restart { lose, .. } => {
                self.reset_all();
                // Also the links of connections it closed as idle whose
                // replies are still on their way (a stall): the model takes
                // a reply that arrives after a loss for one of a command
                // run after it.
                for socket in self.net.closed_by_server_in_flight() {
                    self.net.reset(socket, self.now, IoError::Reset);
                }
                if lose {
                    self.server.lose_data();
                    self.model.lost();
                }
            }
            FaultKind::ResetOne { pick } => {
                if let Some(s) = Self::pick(&self.net.open_sockets(), pick) {
                    self.reset(s);
                }
            }
            FaultKind::IoError { pick } => {
                if let Some(s) = Self::pick(&self.net.client_sockets(), pick) {
                    self.net.client_error(s, self.now, IoError::Other);
                }
            }
            FaultKind::Garbage { pick } => {
                if let Some(s) = Self::pick(&self.net.open_sockets(), pick) {
                    let mut out = ServerOut::new();
                    self.server.garbage(s, &mut out);
                    self.server_out(out)?;
                }
            }
            FaultKind::Stall { .. } | FaultKind::Blackhole { .. } => self.net.freeze_all(heal),
            FaultKind::SlowConnect { .. }
            | FaultKind::Loading { .. }
            | FaultKind::WrongPassword { kill: false, .. } => {}
        }
        Ok(())
    }

    // ---- the workload ------------------------------------------------------

    fn deadline(&self, op: &Op) -> Option<Instant> {
        let timeout = self.params.response_timeout?;
        let block = match op {
            Op::BLPop { millis, .. } => Duration::from_millis(*millis),
            _ => Duration::ZERO,
        };
        Some(self.now.saturating_add(timeout.saturating_add(block)))
    }

    fn send(&mut self, op: Op, txn: Option<usize>) -> Result<RequestId, Violation> {
        let cmd = op.command();
        let id = self.client.send(self.now, &cmd);
        self.log(|| format!("send {id} {op:?}"));
        let deadline = self.deadline(&op);
        self.model
            .sent(id, op, Via::Shared, txn, self.now, deadline)
            .map_err(broken)?;
        Ok(id)
    }

    fn send_leased(
        &mut self,
        lease: LeaseId,
        op: Op,
        txn: Option<usize>,
    ) -> Result<RequestId, Violation> {
        let cmd = op.command();
        let id = self.client.send_leased(self.now, lease, &cmd);
        self.log(|| format!("send_leased {lease:?} {id} {op:?}"));
        let deadline = self.deadline(&op);
        self.model
            .sent(id, op, Via::Lease(lease), txn, self.now, deadline)
            .map_err(broken)?;
        Ok(id)
    }

    fn act(&mut self) -> Result<(), Violation> {
        let now = self.now;
        if let Some(at) = self.params.shutdown_at
            && !self.shut_down
            && now >= self.origin + at
        {
            self.log(|| "shutdown".to_owned());
            self.client.shutdown(now);
            self.shut_down = true;
            self.model.shut_down = true;
            return Ok(());
        }
        match self.workload.action() {
            Action::Burst(n) => {
                for _ in 0..n {
                    let op = self.workload.simple_op();
                    self.send(op, None)?;
                }
            }
            Action::SharedTxn => {
                let t = self.model.begin_txn();
                for op in self.workload.transaction() {
                    self.send(op, Some(t))?;
                }
            }
            Action::BlockingPop => {
                let op = self.workload.blocking_pop();
                self.send(op, None)?;
            }
            Action::Subscribe => {
                let op = self.workload.subscribe();
                self.send(op, None)?;
            }
            Action::Lease => self.lease()?,
            Action::Cancel => self.cancel(),
            Action::Connect => {
                self.log(|| "connect".to_owned());
                self.client.connect(now);
            }
            Action::Tick => {
                self.log(|| "spurious handle_timeout".to_owned());
                self.client.handle_timeout(now);
            }
            Action::StaleLease => {
                if !self.released.is_empty() {
                    let i = self.workload.below(self.released.len() as u64) as usize;
                    let lease = self.released[i];
                    let token = self.workload.echo_token();
                    self.send_leased(lease, Op::Echo { token }, None)?;
                }
            }
        }
        Ok(())
    }

    fn lease(&mut self) -> Result<(), Violation> {
        let now = self.now;
        let lease = match self.client.lease(now) {
            Ok(lease) => lease,
            Err(e) => {
                self.log(|| format!("lease refused: {e:?}"));
                return Ok(());
            }
        };
        self.log(|| format!("lease {lease:?}"));
        let script = self.workload.script();
        let mut at = now;
        let steps = script
            .steps
            .into_iter()
            .map(|(delay, ops)| {
                at = at + delay;
                (at, ops)
            })
            .collect();
        self.leases.push(LeaseRun {
            lease,
            steps,
            reqs: Vec::new(),
            release_at: script.release_after.map(|d| now + d),
            txn: None,
        });
        // The first step runs at once.
        self.lease_step().map(|_| ())
    }

    /// Gives back the leases whose scripts are done, as the application
    /// does once its last reply arrived; whether one was.
    fn release_done_leases(&mut self) -> bool {
        let done = self.leases.iter().position(|run| {
            run.release_at.is_none()
                && run.steps.is_empty()
                && run.reqs.iter().all(|id| {
                    self.model
                        .req(*id)
                        .is_none_or(|r| r.state != super::model::State::Pending)
                })
        });
        let Some(i) = done else {
            return false;
        };
        let run = self.leases.remove(i);
        self.log(|| format!("release {:?} (done)", run.lease));
        self.client.release(self.now, run.lease);
        self.released.push(run.lease);
        true
    }

    /// Runs a lease step or release that is due; whether one was.
    fn lease_step(&mut self) -> Result<bool, Violation> {
        let now = self.now;
        for i in 0..self.leases.len() {
            let run = &self.leases[i];
            if run.release_at.is_some_and(|t| t <= now) {
                let run = self.leases.remove(i);
                self.log(|| format!("release {:?}", run.lease));
                self.client.release(now, run.lease);
                self.released.push(run.lease);
                return Ok(true);
            }
            if run.steps.front().is_some_and(|(at, _)| *at <= now) {
                let (_, ops) = self.leases[i].steps.pop_front().expect("step");
                let lease = self.leases[i].lease;
                for (op, in_txn) in ops {
                    let txn = if in_txn {
                        if self.leases[i].txn.is_none() {
                            self.leases[i].txn = Some(self.model.begin_txn());
                        }
                        self.leases[i].txn
                    } else {
                        None
                    };
                    let id = self.send_leased(lease, op, txn)?;
                    self.leases[i].reqs.push(id);
                }
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Cancels a pending request, or a whole transaction (cancelling part
    /// of one would leave the shared connection inside `MULTI`, a misuse,
    /// not a client bug, and make the `EXEC` reply unreadable).
    fn cancel(&mut self) {
        let probes: &[RequestId] = self.recovery.as_ref().map_or(&[], |r| &r.probes);
        let candidates: Vec<RequestId> = self
            .model
            .pending_ids()
            .filter(|id| !probes.contains(id))
            .collect();
        if candidates.is_empty() {
            return;
        }
        let id = candidates[self.workload.below(candidates.len() as u64) as usize];
        let group = match self.model.req(id).and_then(|r| r.txn) {
            Some(t) => self.model.txns[t].all.clone(),
            None => vec![id],
        };
        for id in group {
            self.log(|| format!("cancel {id}"));
            self.client.cancel(id);
            self.model.cancelled(id);
        }
    }

    // ---- the end -------------------------------------------------------------

    fn finish(&mut self) -> Result<(), Violation> {
        if let Some((id, req)) = self.model.pending().next() {
            return Err(Violation::new(
                Invariant::ExactlyOnce,
                format!(
                    "{id} ({:?} via {:?}, sent at {:?}) never completed, and nothing is left to happen",
                    req.op, req.via, req.sent_at
                ),
            ));
        }
        self.log(|| "shutdown (end of run)".to_owned());
        self.client.shutdown(self.now);
        self.shut_down = true;
        self.model.shut_down = true;
        self.drain()?;
        // Let the network settle: the server hears every FIN.
        let mut guard = 0;
        while let Some(t) = self.net.next_due() {
            guard += 1;
            if guard > 100_000 {
                break;
            }
            self.now = self.now.max(t);
            // The client forgot every socket: only the server hears more.
            if let Some(d @ Delivery::Server(..)) = self.net.pop_due(self.now) {
                self.deliver(d)?;
            }
            self.drain()?;
        }
        let mut checks = std::mem::take(&mut self.checks);
        let checked = checks.iter_mut().try_for_each(|c| c.end(&self.view()));
        self.checks = checks;
        checked?;
        self.model.check_end().map_err(broken)
    }
}

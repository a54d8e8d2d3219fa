//! The gate in front of the embedded broker: TLS, log-in and per-topic access control,
//! which rumqttd 0.20 does not have (it has a static password map and no ACL).
//!
//! Each client connection is terminated here (TLS with rustls, when configured), its
//! CONNECT checked against the password file (Mosquitto format), its client id against the
//! user (below) and its will topic against the ACL; then a connection to the broker's
//! internal listener (loopback, reachable only with the gate's own random credentials) is
//! opened with the same CONNECT, the client's log-in replaced by the gate's. From then on
//! packets pass unchanged, each client packet framed and checked first: a PUBLISH to a topic
//! the ACL does not let that user write, or a SUBSCRIBE to a filter it may not read (or a
//! shared group it was not granted, see [`super::acl`]), closes the connection (counted by
//! reason; MQTT 3.1.1 cannot refuse a single publish, and a silent drop would let a
//! misconfigured agent believe its data arrived). Only MQTT 3.1.1 is spoken, as by every
//! Sharp Eyes client.
//!
//! **Client ids are bound to users.** The broker keeps a session per client id, and a new
//! connection with an id takes the session over: its subscriptions, its queued messages, and
//! the right to acknowledge them (which deletes them). So an id must be the logged-in user's
//! own: with a password file, the id must be the user name or `{user}-{suffix}`, and when
//! user names are prefixes of each other the longest wins (`agent-1-x` is `agent-1`'s, not
//! `agent`'s; [`PasswordFile::client_id_owner`]). The edge agent's default id is its agent
//! id, which is its user name. The aggregator's own `broker.client_id` is refused to every
//! client of the gate, whatever its user: the aggregator connects on the internal listener,
//! so nothing legitimate ever sends it here. Without a password file (TLS only: anyone may
//! connect) there are no users to bind to, and only that reserved id is refused. A refused
//! id gets CONNACK "identifier rejected" and is counted as `reason="client_id"`.
//!
//! **Caps before log-in.** At most `broker.max_connections` client connections at once
//! (counted from the TCP accept; one more is closed unread, `reason="connections"`); a
//! CONNECT larger than `broker.max_connect_bytes` is refused from its fixed header, before
//! its body is read (`reason="connect_size"`); a client gets `HANDSHAKE_TIMEOUT` for its
//! TLS handshake and its CONNECT.
//!
//! **In-flight cap.** Per client, at most `broker.max_inflight_messages` QoS 1/2 publishes
//! (and `broker.max_inflight_bytes` of them) may have gone to the broker without its
//! PUBACK/PUBREC having come back to the client. At the cap the gate stops reading that
//! client until acknowledgements return: TCP pushes back on the client, nothing is dropped,
//! and each such pause is counted (`sharpeyes_aggregator_broker_inflight_waits_total`).
//! QoS 0 publishes are never acknowledged; the broker's own TCP back-pressure bounds them.
//!
//! None of this applies without `tls_cert`, `password_file` and `acl_file`: then rumqttd
//! listens itself, lets anyone in, and must stay on loopback (see [`super`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Login, Packet, PubAck, PubRec, Publish, Subscribe,
};
use rumqttc::mqttbytes::{self, FixedHeader, PacketType, Protocol, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info_span, warn};

use super::acl::Acl;
use super::passwd::PasswordFile;
use crate::metrics::{Metrics, inc};

/// How long a client has for the TLS handshake and its CONNECT.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the gate enforces and where it forwards to.
pub struct Gate {
    /// TLS on the public listener, if configured.
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Who may connect; none lets anyone in.
    pub passwords: Option<PasswordFile>,
    /// What each user may publish and read; none allows every topic.
    pub acl: Option<Acl>,
    /// Client ids no client of the gate may use (the aggregator's own).
    pub reserved_ids: Vec<String>,
    /// Caps.
    pub limits: Limits,
    /// The broker's internal listener.
    pub upstream: SocketAddr,
    /// The gate's log-in at the internal listener.
    pub upstream_login: Login,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// The gate's caps (from `broker.*`, see [`crate::config::BrokerConfig`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest packet accepted from a logged-in client, bytes.
    pub max_packet: usize,
    /// Largest CONNECT accepted, bytes.
    pub max_connect: usize,
    /// Client connections held at once.
    pub max_connections: usize,
    /// Unacknowledged QoS 1/2 publishes per client.
    pub max_inflight_messages: usize,
    /// Bytes of unacknowledged QoS 1/2 publishes per client.
    pub max_inflight_bytes: usize,
}

/// Why a client was turned away (the `reason` label of
/// `sharpeyes_aggregator_broker_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The TLS handshake failed (e.g. a plain MQTT client on the TLS port).
    Tls,
    /// Not MQTT 3.1.1, not a CONNECT first, a malformed or oversized packet, or too slow.
    Protocol,
    /// `max_connections` clients were connected already.
    Connections,
    /// The CONNECT was larger than `max_connect_bytes`.
    ConnectSize,
    /// Unknown user or wrong password.
    BadCredentials,
    /// The client id is not the user's (or is the aggregator's).
    ClientId,
    /// The last-will topic is not the user's to publish.
    AclWill,
    /// A publish to a topic the user may not write.
    AclPublish,
    /// A subscription to a filter the user may not read.
    AclSubscribe,
    /// A shared subscription (`$share/{group}/...`) the user was not granted.
    AclShare,
    /// The internal broker could not be reached.
    Upstream,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Tls => "tls",
            Refusal::Protocol => "protocol",
            Refusal::Connections => "connections",
            Refusal::ConnectSize => "connect_size",
            Refusal::BadCredentials => "bad_credentials",
            Refusal::ClientId => "client_id",
            Refusal::AclWill => "acl_will",
            Refusal::AclPublish => "acl_publish",
            Refusal::AclSubscribe => "acl_subscribe",
            Refusal::AclShare => "acl_share",
            Refusal::Upstream => "upstream",
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Accepts clients on `listener` until `shutdown`.
pub async fn serve(gate: Arc<Gate>, listener: TcpListener, shutdown: CancellationToken) {
    let slots = Arc::new(Semaphore::new(gate.limits.max_connections));
    let last_full_warning = AtomicU64::new(0);
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    warn!(error = %e, "broker gate: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            // Closed unread: nothing of it is parsed or decrypted.
            drop(tcp);
            gate.metrics.refused.inc(Refusal::Connections.as_str());
            // Once a minute at most: a flood must not flood the log.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() / 60);
            if last_full_warning.swap(now, Ordering::Relaxed) != now {
                warn!(
                    %peer,
                    max = gate.limits.max_connections,
                    "broker gate full: connection closed; raise broker.max_connections if these are legitimate clients"
                );
            }
            continue;
        };
        let _ = tcp.set_nodelay(true);
        let gate = gate.clone();
        let stop = shutdown.clone();
        tokio::spawn(
            async move {
                let _slot = Slot::new(slot, gate.metrics.clone());
                tokio::select! {
                    _ = stop.cancelled() => {}
                    r = gate.handle(tcp) => if let Err(refusal) = r {
                        gate.metrics.refused.inc(refusal.as_str());
                        debug!(reason = refusal.as_str(), "client refused");
                    }
                }
            }
            .instrument(info_span!("gate", %peer)),
        );
    }
}

/// One of the `max_connections` places, held while a client's connection lasts.
struct Slot {
    permit: Option<OwnedSemaphorePermit>,
    metrics: Arc<Metrics>,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, metrics: Arc<Metrics>) -> Self {
        metrics.gate_open.fetch_add(1, Ordering::Relaxed);
        Self {
            permit: Some(permit),
            metrics,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        // The place first, then the gauge: a gauge below the cap means a place is free.
        drop(self.permit.take());
        self.metrics.gate_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Gate {
    async fn handle(&self, tcp: TcpStream) -> Result<(), Refusal> {
        let mut client: Box<dyn Stream> = match &self.tls {
            Some(acceptor) => {
                let tls = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp))
                    .await
                    .map_err(|_| Refusal::Tls)?
                    .map_err(|_| Refusal::Tls)?;
                Box::new(tls)
            }
            None => Box::new(tcp),
        };
        let mut buf = BytesMut::with_capacity(4096);
        let (header, frame) = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            read_frame(&mut client, &mut buf, self.limits.max_connect),
        )
        .await
        .map_err(|_| Refusal::Protocol)?
        .map_err(|e| match e {
            FrameError::TooLarge => Refusal::ConnectSize,
            FrameError::Malformed | FrameError::Closed => Refusal::Protocol,
        })?;
        if !matches!(header.packet_type(), Ok(PacketType::Connect)) {
            return Err(Refusal::Protocol);
        }
        let mut connect = Connect::read(header, frame).map_err(|_| Refusal::Protocol)?;
        if connect.protocol != Protocol::V4 {
            connack(&mut client, ConnectReturnCode::RefusedProtocolVersion).await;
            return Err(Refusal::Protocol);
        }
        let user = connect.login.as_ref().map(|l| l.username.clone());
        if let Some(passwords) = &self.passwords {
            let ok = connect
                .login
                .as_ref()
                .is_some_and(|l| passwords.verify(&l.username, &l.password));
            if !ok {
                connack(&mut client, ConnectReturnCode::BadUserNamePassword).await;
                return Err(Refusal::BadCredentials);
            }
        }
        let client_id = connect.client_id.clone();
        if !self.client_id_allowed(user.as_deref(), &client_id) {
            warn!(
                user = user.as_deref(),
                client_id = %client_id,
                "client id refused: a client must use its user name or \"{{user}}-{{suffix}}\" as client id (edge-agent: leave broker.client_id empty), never the aggregator's"
            );
            connack(&mut client, ConnectReturnCode::BadClientId).await;
            return Err(Refusal::ClientId);
        }
        if let (Some(acl), Some(will)) = (&self.acl, &connect.last_will)
            && !acl.may_publish(user.as_deref(), &client_id, &will.topic)
        {
            connack(&mut client, ConnectReturnCode::NotAuthorized).await;
            return Err(Refusal::AclWill);
        }
        let mut upstream = match TcpStream::connect(self.upstream).await {
            Ok(s) => s,
            Err(_) => {
                connack(&mut client, ConnectReturnCode::ServiceUnavailable).await;
                return Err(Refusal::Upstream);
            }
        };
        let _ = upstream.set_nodelay(true);
        connect.login = Some(self.upstream_login.clone());
        let mut out = BytesMut::new();
        Packet::Connect(connect)
            .write(&mut out, usize::MAX)
            .map_err(|_| Refusal::Protocol)?;
        upstream
            .write_all(&out)
            .await
            .map_err(|_| Refusal::Upstream)?;
        inc(&self.metrics.gate_connections);
        let inflight = Inflight::new(
            self.limits.max_inflight_messages,
            self.limits.max_inflight_bytes,
        );
        let (mut from_broker, mut to_broker) = upstream.into_split();
        let (mut from_client, mut to_client) = tokio::io::split(client);
        let downstream = async {
            // Whole packets, in the chunks they arrive in; a PUBACK/PUBREC frees room for
            // the client's next publishes once it is on its way to the client.
            let mut buf = BytesMut::with_capacity(8192);
            let mut acked = Vec::new();
            loop {
                match from_broker.read_buf(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                let mut at = 0;
                loop {
                    match mqttbytes::check(buf[at..].iter(), self.limits.max_packet) {
                        Ok(h) => {
                            let len = h.frame_length();
                            let f = || Bytes::copy_from_slice(&buf[at..at + len]);
                            match h.packet_type() {
                                Ok(PacketType::PubAck) => {
                                    acked.extend(PubAck::read(h, f()).ok().map(|a| a.pkid))
                                }
                                Ok(PacketType::PubRec) => {
                                    acked.extend(PubRec::read(h, f()).ok().map(|a| a.pkid))
                                }
                                _ => {}
                            }
                            at += len;
                        }
                        Err(mqttbytes::Error::InsufficientBytes(_)) => break,
                        Err(_) => return,
                    }
                }
                if at == 0 {
                    continue;
                }
                let chunk = buf.split_to(at);
                if to_client.write_all(&chunk).await.is_err() || to_client.flush().await.is_err() {
                    return;
                }
                for pkid in acked.drain(..) {
                    inflight.release(pkid);
                }
            }
        };
        let checked = async {
            loop {
                let (header, frame) =
                    match read_frame(&mut from_client, &mut buf, self.limits.max_packet).await {
                        Ok(f) => f,
                        // The client went away (or sent garbage): the session ends.
                        Err(_) => return Ok(()),
                    };
                if let Some((pkid, len)) =
                    self.check(user.as_deref(), &client_id, header, &frame)?
                    && !inflight.admit(pkid, len).await
                {
                    inc(&self.metrics.gate_inflight_waits);
                }
                if to_broker.write_all(&frame).await.is_err() {
                    return Ok(());
                }
            }
        };
        tokio::select! {
            _ = downstream => Ok(()),
            r = checked => r,
        }
    }

    /// Whether `user` may connect as `client_id` (module docs).
    fn client_id_allowed(&self, user: Option<&str>, client_id: &str) -> bool {
        if self.reserved_ids.iter().any(|r| r == client_id) {
            return false;
        }
        match &self.passwords {
            None => true,
            Some(p) => user.is_some_and(|u| p.client_id_owner(client_id) == Some(u)),
        }
    }

    /// Whether a client packet may pass; for a QoS 1/2 publish, its packet id and size.
    fn check(
        &self,
        user: Option<&str>,
        client_id: &str,
        header: FixedHeader,
        frame: &Bytes,
    ) -> Result<Option<(u16, usize)>, Refusal> {
        match header.packet_type().map_err(|_| Refusal::Protocol)? {
            PacketType::Publish => {
                let p = Publish::read(header, frame.clone()).map_err(|_| Refusal::Protocol)?;
                if let Some(acl) = &self.acl
                    && !acl.may_publish(user, client_id, &p.topic)
                {
                    warn!(user, topic = %p.topic, "publish refused by the ACL");
                    return Err(Refusal::AclPublish);
                }
                if p.qos != QoS::AtMostOnce {
                    return Ok(Some((p.pkid, frame.len())));
                }
            }
            PacketType::Subscribe => {
                let Some(acl) = &self.acl else {
                    return Ok(None);
                };
                let s = Subscribe::read(header, frame.clone()).map_err(|_| Refusal::Protocol)?;
                if let Some(f) = s
                    .filters
                    .iter()
                    .find(|f| !acl.may_subscribe(user, client_id, &f.path))
                {
                    if f.path.starts_with("$share/") {
                        warn!(user, filter = %f.path, "shared subscription refused by the ACL: joining a $share group needs a `topic read $share/...` line for the user");
                        return Err(Refusal::AclShare);
                    }
                    warn!(user, filter = %f.path, "subscription refused by the ACL");
                    return Err(Refusal::AclSubscribe);
                }
            }
            PacketType::Connect => return Err(Refusal::Protocol),
            _ => {}
        }
        Ok(None)
    }
}

/// The QoS 1/2 publishes of one client that the broker has not acknowledged yet, bounded in
/// number and bytes (module docs).
struct Inflight {
    messages: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_bytes: usize,
    /// Room held per packet id, given back when its acknowledgement passes.
    held: Mutex<HashMap<u16, (OwnedSemaphorePermit, OwnedSemaphorePermit)>>,
}

impl Inflight {
    fn new(max_messages: usize, max_bytes: usize) -> Self {
        Self {
            messages: Arc::new(Semaphore::new(max_messages)),
            bytes: Arc::new(Semaphore::new(max_bytes)),
            max_bytes,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Takes room for publish `pkid` of `len` bytes (a publish larger than the whole byte cap
    /// takes all of it), waiting for acknowledgements when there is none; false when it
    /// waited. A packet id still held (a client reusing it early) gives its room back first.
    async fn admit(&self, pkid: u16, len: usize) -> bool {
        drop(self.take(pkid));
        let cost = u32::try_from(len.min(self.max_bytes)).unwrap_or(u32::MAX);
        let mut waited = false;
        let message = match self.messages.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                waited = true;
                self.messages
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("never closed")
            }
        };
        let bytes = match self.bytes.clone().try_acquire_many_owned(cost) {
            Ok(p) => p,
            Err(_) => {
                waited = true;
                self.bytes
                    .clone()
                    .acquire_many_owned(cost)
                    .await
                    .expect("never closed")
            }
        };
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pkid, (message, bytes));
        !waited
    }

    /// The room held for `pkid`, taken out.
    fn take(&self, pkid: u16) -> Option<(OwnedSemaphorePermit, OwnedSemaphorePermit)> {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pkid)
    }

    /// Publish `pkid` was acknowledged: its room is free again.
    fn release(&self, pkid: u16) {
        drop(self.take(pkid));
    }
}

/// Why a packet could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameError {
    /// Its fixed header announces more than the limit.
    TooLarge,
    /// Not an MQTT packet.
    Malformed,
    /// The connection ended first.
    Closed,
}

/// Reads one whole MQTT packet (fixed header included) from `r`, buffering in `buf`; a
/// packet over `max` bytes is refused from its fixed header, unread.
async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<(FixedHeader, Bytes), FrameError> {
    loop {
        match mqttbytes::check(buf.iter(), max) {
            Ok(header) => return Ok((header, buf.split_to(header.frame_length()).freeze())),
            Err(mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(mqttbytes::Error::PayloadSizeLimitExceeded(_)) => {
                return Err(FrameError::TooLarge);
            }
            Err(_) => return Err(FrameError::Malformed),
        }
        buf.reserve(4096);
        match r.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(FrameError::Closed),
            Ok(_) => {}
        }
    }
}

/// Sends a CONNACK with `code` (best effort: the connection is closed next).
async fn connack<W: AsyncWrite + Unpin>(w: &mut W, code: ConnectReturnCode) {
    let mut out = BytesMut::new();
    if ConnAck::new(code, false).write(&mut out).is_ok() {
        let _ = w.write_all(&out).await;
        let _ = w.flush().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn inflight_room_is_bounded_and_given_back_by_acknowledgements() {
        let f = Inflight::new(2, 1000);
        assert!(f.admit(1, 400).await);
        assert!(f.admit(2, 400).await);
        // A third message has no room until one of the two is acknowledged.
        let third = f.admit(3, 100);
        tokio::pin!(third);
        assert!(futures_poll_once(third.as_mut()).await.is_none());
        f.release(1);
        assert!(!third.await, "it waited");
        f.release(2);
        f.release(3);
        assert_eq!(f.messages.available_permits(), 2);
        assert_eq!(f.bytes.available_permits(), 1000);

        // Bytes, with room for many messages: 400 + 500 held, 200 more do not fit.
        let f = Inflight::new(100, 1000);
        assert!(f.admit(1, 400).await);
        assert!(f.admit(2, 500).await);
        let big = f.admit(3, 200);
        tokio::pin!(big);
        assert!(futures_poll_once(big.as_mut()).await.is_none());
        f.release(2);
        assert!(!big.await);
        // One publish larger than the whole cap passes alone.
        f.release(1);
        f.release(3);
        assert!(f.admit(6, 5000).await);
        // A packet id reused before its acknowledgement gives its room back first; an
        // acknowledgement of an unknown id changes nothing.
        assert!(f.admit(6, 5000).await);
        f.release(999);
        f.release(6);
        assert_eq!(f.messages.available_permits(), 100);
        assert_eq!(f.bytes.available_permits(), 1000);
    }

    fn gate(passwords: Option<PasswordFile>) -> Gate {
        Gate {
            tls: None,
            passwords,
            acl: None,
            reserved_ids: vec!["aggregator-1".into()],
            limits: Limits {
                max_packet: 1 << 20,
                max_connect: 1 << 16,
                max_connections: 10,
                max_inflight_messages: 10,
                max_inflight_bytes: 1 << 20,
            },
            upstream: SocketAddr::from(([127, 0, 0, 1], 1)),
            upstream_login: Login::new("gate", "x"),
            metrics: Arc::new(Metrics::default()),
        }
    }

    #[test]
    fn client_ids_are_the_users_own_and_the_aggregators_is_nobodys() {
        let mut text = String::new();
        for u in ["agent-1", "agent-2", "aggregator"] {
            text.push_str(&super::super::passwd::hash_line(u, "pw").unwrap());
            text.push('\n');
        }
        let g = gate(Some(PasswordFile::parse(&text).unwrap()));
        for (user, id, ok) in [
            (Some("agent-1"), "agent-1", true),
            (Some("agent-1"), "agent-1-spare", true),
            (Some("agent-1"), "agent-2", false),
            (Some("agent-1"), "agent-2-x", false),
            (Some("agent-1"), "aggregator-1", false),
            (Some("agent-1"), "edge-agent-1", false),
            (Some("agent-1"), "", false),
            (Some("aggregator"), "aggregator-2", true),
            (Some("aggregator"), "aggregator-1", false),
            (None, "agent-1", false),
        ] {
            assert_eq!(g.client_id_allowed(user, id), ok, "{user:?} as {id:?}");
        }
        // Anonymous (TLS only): no users to bind to; the aggregator's id stays reserved.
        let g = gate(None);
        assert!(g.client_id_allowed(None, "anything"));
        assert!(g.client_id_allowed(Some("x"), "agent-1"));
        assert!(!g.client_id_allowed(None, "aggregator-1"));
    }

    /// Polls `fut` once: its output if it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(fut: F) -> Option<F::Output> {
        let mut fut = fut;
        std::future::poll_fn(|cx| {
            std::task::Poll::Ready(match std::pin::Pin::new(&mut fut).poll(cx) {
                std::task::Poll::Ready(v) => Some(v),
                std::task::Poll::Pending => None,
            })
        })
        .await
    }
}

//! The gate in front of the embedded broker: TLS, log-in and per-topic access control,
//! which rumqttd 0.20 does not have (it has a static password map and no ACL).
//!
//! Each client connection is terminated here (TLS with rustls, when configured), its
//! CONNECT checked against the password file (Mosquitto format) and its will topic against
//! the ACL; then a connection to the broker's internal listener (loopback, reachable only
//! with the gate's own random credentials) is opened with the same CONNECT, the client's
//! log-in replaced by the gate's. From then on packets pass unchanged, each client packet
//! framed and checked first: a PUBLISH to a topic the ACL does not let that user write, or a
//! SUBSCRIBE to a filter it may not read, closes the connection (counted by reason; MQTT
//! 3.1.1 cannot refuse a single publish, and a silent drop would let a misconfigured agent
//! believe its data arrived). Only MQTT 3.1.1 is spoken, as by every Sharp Eyes client.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Login, Packet, Publish, Subscribe,
};
use rumqttc::mqttbytes::{self, FixedHeader, PacketType, Protocol};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
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
    /// Largest packet accepted from a client, bytes.
    pub max_packet: usize,
    /// The broker's internal listener.
    pub upstream: SocketAddr,
    /// The gate's log-in at the internal listener.
    pub upstream_login: Login,
    /// Counters.
    pub metrics: Arc<Metrics>,
}

/// Why a client was turned away (the `reason` label of
/// `sharpeyes_aggregator_broker_refused_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The TLS handshake failed (e.g. a plain MQTT client on the TLS port).
    Tls,
    /// Not MQTT 3.1.1, not a CONNECT first, a malformed or oversized packet, or too slow.
    Protocol,
    /// Unknown user or wrong password.
    BadCredentials,
    /// The last-will topic is not the user's to publish.
    AclWill,
    /// A publish to a topic the user may not write.
    AclPublish,
    /// A subscription to a filter the user may not read.
    AclSubscribe,
    /// The internal broker could not be reached.
    Upstream,
}

impl Refusal {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::Tls => "tls",
            Refusal::Protocol => "protocol",
            Refusal::BadCredentials => "bad_credentials",
            Refusal::AclWill => "acl_will",
            Refusal::AclPublish => "acl_publish",
            Refusal::AclSubscribe => "acl_subscribe",
            Refusal::Upstream => "upstream",
        }
    }
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

/// Accepts clients on `listener` until `shutdown`.
pub async fn serve(gate: Arc<Gate>, listener: TcpListener, shutdown: CancellationToken) {
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
        let _ = tcp.set_nodelay(true);
        let gate = gate.clone();
        let stop = shutdown.clone();
        tokio::spawn(
            async move {
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
            read_frame(&mut client, &mut buf, self.max_packet),
        )
        .await
        .map_err(|_| Refusal::Protocol)??;
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
        let (mut from_broker, mut to_broker) = upstream.into_split();
        let (mut from_client, mut to_client) = tokio::io::split(client);
        let downstream = tokio::io::copy(&mut from_broker, &mut to_client);
        let checked = async {
            loop {
                let (header, frame) =
                    match read_frame(&mut from_client, &mut buf, self.max_packet).await {
                        Ok(f) => f,
                        // The client went away (or sent garbage): the session ends.
                        Err(_) => return Ok(()),
                    };
                self.check(user.as_deref(), &client_id, header, &frame)?;
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

    /// Whether a client packet may pass.
    fn check(
        &self,
        user: Option<&str>,
        client_id: &str,
        header: FixedHeader,
        frame: &Bytes,
    ) -> Result<(), Refusal> {
        let Some(acl) = &self.acl else {
            return Ok(());
        };
        match header.packet_type().map_err(|_| Refusal::Protocol)? {
            PacketType::Publish => {
                let p = Publish::read(header, frame.clone()).map_err(|_| Refusal::Protocol)?;
                if !acl.may_publish(user, client_id, &p.topic) {
                    warn!(user, topic = %p.topic, "publish refused by the ACL");
                    return Err(Refusal::AclPublish);
                }
            }
            PacketType::Subscribe => {
                let s = Subscribe::read(header, frame.clone()).map_err(|_| Refusal::Protocol)?;
                if let Some(f) = s
                    .filters
                    .iter()
                    .find(|f| !acl.may_subscribe(user, client_id, &f.path))
                {
                    warn!(user, filter = %f.path, "subscription refused by the ACL");
                    return Err(Refusal::AclSubscribe);
                }
            }
            PacketType::Connect => return Err(Refusal::Protocol),
            _ => {}
        }
        Ok(())
    }
}

/// Reads one whole MQTT packet (fixed header included) from `r`, buffering in `buf`.
async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    buf: &mut BytesMut,
    max: usize,
) -> Result<(FixedHeader, Bytes), Refusal> {
    loop {
        match mqttbytes::check(buf.iter(), max) {
            Ok(header) => return Ok((header, buf.split_to(header.frame_length()).freeze())),
            Err(mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(_) => return Err(Refusal::Protocol),
        }
        buf.reserve(4096);
        match r.read_buf(buf).await {
            Ok(0) | Err(_) => return Err(Refusal::Protocol),
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

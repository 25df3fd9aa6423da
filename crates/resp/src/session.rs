//! One client connection's state.

use std::net::SocketAddr;
use std::time::Instant;

use meridian_core::config::WriteAck;
use meridian_core::VersionVector;

use crate::server::GLOBAL_ACK_TIMEOUT_MS_DEFAULT;

/// How far a connection's reads may lag (`MERIDIAN.CONSISTENCY`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Consistency {
    /// Whatever this region has now; no waiting.
    Eventual,
    /// Read-your-writes and monotonic reads: a read waits (bounded) until
    /// this region has applied the connection's token, and every read
    /// extends the token with what this region had applied.
    #[default]
    Session,
    /// Linearizable single-key reads of single-master tables: a read waits
    /// until this region has applied everything the table's home had
    /// committed when the read began.
    Strong,
}

impl Consistency {
    /// Its name as `MERIDIAN.CONSISTENCY` takes and shows it.
    pub fn name(self) -> &'static str {
        match self {
            Consistency::Eventual => "eventual",
            Consistency::Session => "session",
            Consistency::Strong => "strong",
        }
    }
}

/// Default time a read waits for this region to apply the session's token
/// (`MERIDIAN.AFTER` may set another).
pub const SESSION_WAIT_MS_DEFAULT: u64 = 1_000;

/// Longest session wait `MERIDIAN.AFTER` accepts.
pub const SESSION_WAIT_MS_MAX: u64 = 30_000;

/// Longest global-acknowledgement wait `MERIDIAN.ACK` accepts.
pub const ACK_TIMEOUT_MS_MAX: u64 = 60_000;

/// A connection's state: protocol, identity, and its causal token.
#[derive(Debug)]
pub struct Session {
    /// `CLIENT ID`.
    pub id: u64,
    /// Client address.
    pub addr: SocketAddr,
    /// Our address.
    pub laddr: SocketAddr,
    /// `CLIENT SETNAME`.
    pub name: Option<Vec<u8>>,
    /// `CLIENT SETINFO LIB-NAME`.
    pub lib_name: Option<Vec<u8>>,
    /// `CLIENT SETINFO LIB-VER`.
    pub lib_ver: Option<Vec<u8>>,
    /// 2 or 3 (`HELLO`).
    pub proto: u8,
    /// Whether the client may run commands beyond `AUTH`/`HELLO`.
    pub authenticated: bool,
    /// The user it authenticated as.
    pub user: String,
    /// What this connection has written or been told about: every command
    /// that touches keys first waits until this region has applied it
    /// (read-your-writes, and `MERIDIAN.AFTER` for a client that moved).
    pub token: VersionVector,
    /// How long such a wait may take before the command fails.
    pub wait_ms: u64,
    /// This connection's writes, `origin:seq` of the newest per origin
    /// (a forwarded write's origin is its table's home): what `WAIT` and
    /// global acknowledgements count regions for.
    pub last_write: VersionVector,
    /// Read consistency.
    pub consistency: Consistency,
    /// Write acknowledgement chosen by the client; `None`: each table's.
    pub write_ack: Option<WriteAck>,
    /// How long a globally acknowledged write waits for its regions.
    pub ack_timeout_ms: u64,
    /// When it connected.
    pub created: Instant,
    /// When its last command arrived.
    pub last_command: Instant,
    /// Name of the last command (`CLIENT INFO cmd=`).
    pub last_command_name: &'static str,
}

impl Session {
    /// The write acknowledgement in force: the connection's, or the
    /// tables' default.
    pub fn ack_for(
        &self,
        table_default: meridian_core::config::WriteAck,
    ) -> meridian_core::config::WriteAck {
        self.write_ack.unwrap_or(table_default)
    }

    /// A new connection's session.
    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr, authenticated: bool) -> Self {
        Session {
            id,
            addr,
            laddr,
            name: None,
            lib_name: None,
            lib_ver: None,
            proto: 2,
            authenticated,
            user: "default".to_string(),
            token: VersionVector::new(),
            wait_ms: SESSION_WAIT_MS_DEFAULT,
            last_write: VersionVector::new(),
            consistency: Consistency::default(),
            write_ack: None,
            ack_timeout_ms: GLOBAL_ACK_TIMEOUT_MS_DEFAULT,
            created: Instant::now(),
            last_command: Instant::now(),
            last_command_name: "NULL",
        }
    }
}

//! One client connection's state.

use std::net::SocketAddr;
use std::time::Instant;

use meridian_core::VersionVector;

/// Default time a read waits for this region to apply the session's token
/// (`MERIDIAN.AFTER` may set another).
pub const SESSION_WAIT_MS_DEFAULT: u64 = 1_000;

/// Longest session wait `MERIDIAN.AFTER` accepts.
pub const SESSION_WAIT_MS_MAX: u64 = 30_000;

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
    /// Sequence of this connection's last write in this region (`WAIT`).
    pub last_write_seq: u64,
    /// When it connected.
    pub created: Instant,
    /// When its last command arrived.
    pub last_command: Instant,
    /// Name of the last command (`CLIENT INFO cmd=`).
    pub last_command_name: &'static str,
}

impl Session {
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
            last_write_seq: 0,
            created: Instant::now(),
            last_command: Instant::now(),
            last_command_name: "NULL",
        }
    }
}

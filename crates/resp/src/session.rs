//! One client connection's state.

use std::net::SocketAddr;
use std::time::Instant;

use meridian_core::config::WriteAck;
use meridian_core::VersionVector;
use meridian_store::db::Db;

use crate::shared::GLOBAL_ACK_TIMEOUT_MS_DEFAULT;

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
    pub token: Token,
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
    /// When its last command arrived (to the read that brought it).
    pub last_command: Instant,
    /// The last command looked up (`CLIENT INFO cmd=`); the next lookup
    /// tries it first.
    pub last_spec: Option<&'static crate::cmd::Spec>,
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
            token: Token::default(),
            wait_ms: SESSION_WAIT_MS_DEFAULT,
            last_write: VersionVector::new(),
            consistency: Consistency::default(),
            write_ack: None,
            ack_timeout_ms: GLOBAL_ACK_TIMEOUT_MS_DEFAULT,
            created: Instant::now(),
            last_command: Instant::now(),
            last_spec: None,
        }
    }
}

/// A session's causal token, and what this region is known to have
/// applied of it. Every keyed command checks the token and every read
/// raises it; both would read the engine's applied vector under its lock,
/// a cache line every worker thread writes. This remembers the answers:
/// the applied vector only grows, so a covered token stays covered until
/// something from elsewhere is merged into it, and raising it again is a
/// no-op until the engine publishes a newer vector.
#[derive(Debug, Default)]
pub struct Token {
    vv: VersionVector,
    /// [`Db::applied_generation`] when the applied vector was last merged
    /// in (`None`: never).
    merged_at: Option<u64>,
    /// Whether `vv` is known to be covered by this region's applied
    /// vector.
    covered: bool,
}

impl Token {
    /// A token carried in from elsewhere.
    pub fn new(vv: VersionVector) -> Self {
        Token {
            vv,
            merged_at: None,
            covered: false,
        }
    }

    /// The version vector.
    pub fn vv(&self) -> &VersionVector {
        &self.vv
    }

    /// The token's text form (`MERIDIAN.TOKEN`).
    pub fn to_token(&self) -> String {
        self.vv.to_token()
    }

    /// Raises the token with a vector from elsewhere (another region's
    /// answer, a token the client carried, a write).
    pub fn merge(&mut self, other: &VersionVector) {
        if !self.vv.covers(other) {
            self.vv.merge(other);
            self.covered = false;
        }
    }

    /// Raises the token to at least what `db` has applied.
    pub fn merge_applied(&mut self, db: &Db) {
        // Read first: the vector merged below is at least this new.
        let generation = db.applied_generation();
        if self.merged_at == Some(generation) {
            return;
        }
        db.merge_applied_into(&mut self.vv);
        self.merged_at = Some(generation);
    }

    /// Whether `db` has applied everything in the token.
    pub fn applied_by(&mut self, db: &Db) -> bool {
        if !self.covered {
            self.covered = db.covers(&self.vv);
        }
        self.covered
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meridian_core::{Op, RegionName};
    use meridian_store::db::DbConfig;
    use meridian_store::{Durability, MemStore};
    use std::sync::Arc;

    fn put() -> meridian_store::db::Decide {
        Box::new(|_, _| {
            Ok(Some(Op::Put {
                value: b"v".to_vec(),
                expires_at_ms: None,
            }))
        })
    }

    #[tokio::test]
    async fn the_token_follows_the_applied_vector_and_what_came_from_elsewhere() {
        let us: RegionName = "us-east".parse().unwrap();
        let eu: RegionName = "eu-west".parse().unwrap();
        let db = Db::start(
            Arc::new(MemStore::new()),
            DbConfig {
                region: us.clone(),
                durability: Durability::None,
                max_offset_ms: 500,
            },
            meridian_core::SystemClock,
        )
        .unwrap();
        let mut token = Token::default();
        assert!(token.applied_by(&db), "an empty token is applied");
        token.merge_applied(&db);
        assert_eq!(token.vv().get(&us), 0);

        // Each write publishes a newer vector; raising picks it up.
        for seq in 1..=3 {
            db.write("default", b"k", put()).await.unwrap();
            token.merge_applied(&db);
            assert_eq!(token.vv().get(&us), seq, "raised after write {seq}");
            assert!(token.applied_by(&db));
        }

        // A token from another region is not applied here until it is.
        let mut elsewhere = VersionVector::new();
        elsewhere.advance(&eu, 1);
        token.merge(&elsewhere);
        assert!(!token.applied_by(&db), "eu-west:1 is not applied here");
        token.merge_applied(&db);
        assert!(!token.applied_by(&db), "raising does not make it applied");
        assert_eq!(token.vv().get(&eu), 1);
        assert_eq!(token.vv().get(&us), 3);

        // Merging what it already has keeps a covered token covered.
        let mut carried = Token::new(token.vv().clone());
        let mut mine = VersionVector::new();
        mine.advance(&us, 2);
        let mut local = Token::new(mine.clone());
        assert!(local.applied_by(&db));
        local.merge(&mine);
        assert!(local.applied_by(&db));
        assert!(!carried.applied_by(&db));
        assert_eq!(carried.to_token(), token.to_token());
    }
}

//! [`StartError`]: why a node could not start, each naming what to fix.
//! Every variant keeps the underlying error as its source, so the binary's
//! `error: …: …` line shows the whole chain.

use std::net::SocketAddr;
use std::path::PathBuf;

use meridian_core::RegionName;
use meridian_store::db::DbError;
use meridian_store::StoreError;

/// A node that did not start (or whose admin listener failed).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// `--region` names no region of the topology.
    #[error("region `{0}` is not in the topology; pick one of its [[regions]]")]
    UnknownRegion(RegionName),
    /// The edge proxy's threads could not start.
    #[error("cannot start the edge proxy: {0}")]
    Edge(String),
    /// A listener could not be bound.
    #[error("cannot listen for {what} on {addr} (is another process using the port?)")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Its address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The data directory could not be created.
    #[error("cannot create data directory {}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The database file could not be opened (or is not Meridian's).
    #[error("cannot open the database {}", path.display())]
    OpenDb {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: StoreError,
    },
    /// The storage writer or the replicator could not start.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The table modes stored before a restart could not be read.
    #[error("cannot read the table modes")]
    Modes(#[source] StoreError),
    /// A link capture file (`--capture-links`) could not be opened.
    #[error("cannot {what} {}", path.display())]
    Capture {
        /// `create the link capture directory` or `open link capture file`.
        what: &'static str,
        /// The directory or file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A table this region no longer holds could not be dropped.
    #[error("cannot drop the data of table `{table}`")]
    DropWithheld {
        /// The table.
        table: String,
        /// Why.
        #[source]
        source: DbError,
    },
    /// The admin listener failed while serving.
    #[error(transparent)]
    Serve(std::io::Error),
}

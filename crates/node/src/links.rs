//! The emulated WAN links a node dials its peers through, and the optional
//! capture of every byte they deliver (`--capture-links`, a residency
//! audit).

use std::path::Path;
use std::sync::Arc;

use meridian_core::RegionName;
use meridian_wan::{Direction, LinkTap};

use crate::error::StartError;

/// A tap appending what the link to `peer` delivers to
/// `dir/{me}-{peer}.out` (bytes we sent) and `dir/{me}-{peer}.in` (bytes
/// the peer sent back on our connections). A capture that cannot be
/// written stops the node: an audit with holes would prove nothing.
pub(crate) fn capture_tap(
    dir: &Path,
    me: &RegionName,
    peer: &RegionName,
) -> Result<LinkTap, StartError> {
    std::fs::create_dir_all(dir).map_err(|source| StartError::Capture {
        what: "create the link capture directory",
        path: dir.to_path_buf(),
        source,
    })?;
    let open = |suffix: &str| -> Result<std::fs::File, StartError> {
        let path = dir.join(format!("{me}-{peer}.{suffix}"));
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
        {
            Ok(file) => Ok(file),
            Err(source) => Err(StartError::Capture {
                what: "open link capture file",
                path,
                source,
            }),
        }
    };
    let files = std::sync::Mutex::new([open("out")?, open("in")?]);
    Ok(Arc::new(move |direction: Direction, bytes: &[u8]| {
        use std::io::Write;
        let mut files = files.lock().expect("capture lock is never poisoned");
        let file = &mut files[direction as usize];
        if let Err(e) = file.write_all(bytes) {
            tracing::error!(error = %e, "link capture failed; stopping");
            std::process::exit(1);
        }
    }))
}

//! `meridian region drain|undrain REGION`: takes a region's edge out of
//! (or back into) service through its admin API (`POST
//! /admin/edge/drain`, `/admin/edge/undrain`), with the token from
//! `cluster.json`. A drained region's edge sends its traffic to other
//! regions; its node, data and apps keep running.

use std::path::Path;

use anyhow::Context;
use hyper::Method;
use meridian_api::client::AdminClient;
use meridian_api::cluster::ClusterFile;
use meridian_api::edge::DrainState;

/// `meridian region …`.
#[derive(Clone, Debug, clap::Subcommand)]
pub enum RegionCommand {
    /// Drain a region: its edge sends new requests to other regions.
    Drain {
        /// The region.
        region: String,
    },
    /// Undo `drain`: the region's edge serves its own traffic again.
    Undrain {
        /// The region.
        region: String,
    },
}

/// Runs one region command against the cluster in `dir`.
pub async fn run(dir: &Path, command: RegionCommand) -> anyhow::Result<()> {
    let file = ClusterFile::load(dir)?;
    let (region, action) = match &command {
        RegionCommand::Drain { region } => (region, "drain"),
        RegionCommand::Undrain { region } => (region, "undrain"),
    };
    let Some(endpoints) = file.regions.get(region) else {
        let known: Vec<_> = file.regions.keys().cloned().collect();
        anyhow::bail!(
            "unknown region `{region}`; this cluster has: {}",
            known.join(", ")
        );
    };
    let client = AdminClient::new(Some(file.admin_token.clone()));
    let url = format!("{}/admin/edge/{action}", endpoints.admin);
    let state: DrainState = client
        .json(Method::POST, &url, None)
        .await
        .with_context(|| format!("cannot {action} {region}"))?;
    println!("{}", describe(&state));
    Ok(())
}

/// One line for the operator.
fn describe(state: &DrainState) -> String {
    if state.draining {
        format!(
            "{} is drained: its edge sends new requests to other regions",
            state.region
        )
    } else {
        format!("{} is serving its own traffic", state.region)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_is_said_in_words() {
        let s = |draining| DrainState {
            region: "eu-west".into(),
            draining,
        };
        assert!(describe(&s(true)).starts_with("eu-west is drained"));
        assert_eq!(describe(&s(false)), "eu-west is serving its own traffic");
    }
}

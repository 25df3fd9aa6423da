//! The supervisor API `up` serves (`meridian_api::supervisor`'s types):
//! kill and restart a region's node, stop and start its app instances, the
//! regions' processes and the scale history. Every route needs the
//! cluster's admin token.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use meridian_api::client::AdminClient;
use meridian_api::supervisor::{
    self, AppsStarted, AppsStopped, Killed, Regions, Restarted, ScaleEvents,
};
use meridian_core::RegionName;
use serde_json::json;

use super::nodes::{READY_TIMEOUT, STOP_GRACE};
use super::supervisor::Supervisor;

/// The routes, over `sup`, checking bearer `token`.
pub(super) fn router(sup: Arc<Supervisor>, token: String) -> Router {
    Router::new()
        .route("/regions", get(list_regions))
        .route("/regions/{region}/kill", post(kill_region))
        .route("/regions/{region}/restart", post(restart_region))
        .route("/regions/{region}/stop-apps", post(stop_apps))
        .route("/regions/{region}/start-apps", post(start_apps))
        .route("/scale/events", get(scale_events))
        .with_state(SupervisorState { sup, token })
}

#[derive(Clone)]
struct SupervisorState {
    sup: Arc<Supervisor>,
    token: String,
}

/// An error status with `{"error": …}`.
type ApiError = (StatusCode, Json<serde_json::Value>);

/// A supervisor answer, or an error.
type ApiResult<T> = Result<Json<T>, ApiError>;

fn error(status: StatusCode, message: String) -> ApiError {
    (status, Json(json!({ "error": message })))
}

fn authorize(state: &SupervisorState, headers: &HeaderMap) -> Result<(), ApiError> {
    let ok = meridian_api::auth::bearer(headers.get("authorization").and_then(|v| v.to_str().ok()))
        .is_some_and(|t| {
            meridian_api::auth::constant_time_eq(t.as_bytes(), state.token.as_bytes())
        });
    if ok {
        Ok(())
    } else {
        Err(error(
            StatusCode::UNAUTHORIZED,
            "missing or wrong admin token".into(),
        ))
    }
}

fn region_arg(raw: &str, sup: &Supervisor) -> Result<RegionName, ApiError> {
    RegionName::new(raw)
        .ok()
        .filter(|r| sup.topology.region(r).is_some())
        .ok_or_else(|| error(StatusCode::NOT_FOUND, format!("unknown region `{raw}`")))
}

fn internal(e: anyhow::Error) -> ApiError {
    error(StatusCode::INTERNAL_SERVER_ERROR, format!("{e:#}"))
}

async fn list_regions(State(s): State<SupervisorState>, headers: HeaderMap) -> ApiResult<Regions> {
    authorize(&s, &headers)?;
    let mut out = Regions::new();
    for r in &s.sup.topology.regions {
        let pid = s.sup.nodes.pid(&r.name).await;
        let apps = s.sup.region_apps(&r.name).lock().await;
        out.insert(
            r.name.to_string(),
            supervisor::RegionProcess {
                pid,
                apps: apps.instances(),
                apps_stopped: apps.stopped(),
            },
        );
    }
    Ok(Json(out))
}

async fn kill_region(
    State(s): State<SupervisorState>,
    headers: HeaderMap,
    UrlPath(region): UrlPath<String>,
) -> ApiResult<Killed> {
    authorize(&s, &headers)?;
    let region = region_arg(&region, &s.sup)?;
    let pid = s.sup.nodes.pid(&region).await;
    // SIGKILL: a crash, not a shutdown. Nothing gets to flush.
    s.sup
        .nodes
        .stop(&region, libc::SIGKILL, STOP_GRACE)
        .await
        .map_err(internal)?;
    s.sup.refresh_cluster_file().await.map_err(internal)?;
    tracing::warn!(%region, ?pid, "region killed by chaos");
    Ok(Json(Killed {
        region: region.to_string(),
        killed_pid: pid,
    }))
}

async fn restart_region(
    State(s): State<SupervisorState>,
    headers: HeaderMap,
    UrlPath(region): UrlPath<String>,
) -> ApiResult<Restarted> {
    authorize(&s, &headers)?;
    let region = region_arg(&region, &s.sup)?;
    s.sup
        .nodes
        .stop(&region, libc::SIGTERM, STOP_GRACE)
        .await
        .map_err(internal)?;
    s.sup.nodes.spawn(&region).await.map_err(internal)?;
    let admin = s.sup.topology.region(&region).expect("checked above").admin;
    let client = AdminClient::new(None);
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        if client
            .get::<serde_json::Value>(&format!("http://{admin}/health"))
            .await
            .is_ok()
        {
            break;
        }
        if let Some((r, tail)) = s.sup.nodes.exited().await {
            return Err(internal(anyhow::anyhow!(
                "node {r} exited on restart: {tail}"
            )));
        }
        if Instant::now() > deadline {
            return Err(internal(anyhow::anyhow!(
                "region {region} did not answer within {READY_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    s.sup.refresh_cluster_file().await.map_err(internal)?;
    Ok(Json(Restarted {
        region: region.to_string(),
        pid: s.sup.nodes.pid(&region).await,
    }))
}

async fn stop_apps(
    State(s): State<SupervisorState>,
    headers: HeaderMap,
    UrlPath(region): UrlPath<String>,
) -> ApiResult<AppsStopped> {
    authorize(&s, &headers)?;
    let region = region_arg(&region, &s.sup)?;
    let killed_pids = s
        .sup
        .region_apps(&region)
        .lock()
        .await
        .crash_all(&s.sup.launcher)
        .await;
    s.sup.refresh_cluster_file().await.map_err(internal)?;
    tracing::warn!(%region, ?killed_pids, "app instances killed by chaos");
    Ok(Json(AppsStopped {
        region: region.to_string(),
        killed_pids,
    }))
}

async fn start_apps(
    State(s): State<SupervisorState>,
    headers: HeaderMap,
    UrlPath(region): UrlPath<String>,
) -> ApiResult<AppsStarted> {
    authorize(&s, &headers)?;
    let region = region_arg(&region, &s.sup)?;
    let min = s.sup.app_options.min;
    let apps = {
        let mut apps = s.sup.region_apps(&region).lock().await;
        if !apps.stopped() {
            return Err(error(
                StatusCode::CONFLICT,
                format!("the apps of {region} are running; stop them first (`meridian chaos stop-apps {region}`)"),
            ));
        }
        apps.start_again(&s.sup.launcher, min, Instant::now());
        let started = apps.instances();
        if started.len() < min {
            let why = apps.last_exit().unwrap_or("no reason logged").to_string();
            return Err(internal(anyhow::anyhow!(
                "started {} of {min} app instances in {region}: {why}",
                started.len()
            )));
        }
        started
    };
    s.sup.refresh_cluster_file().await.map_err(internal)?;
    tracing::info!(%region, instances = apps.len(), "app instances started again by chaos");
    Ok(Json(AppsStarted {
        region: region.to_string(),
        apps,
    }))
}

async fn scale_events(
    State(s): State<SupervisorState>,
    headers: HeaderMap,
) -> ApiResult<ScaleEvents> {
    authorize(&s, &headers)?;
    let events = s
        .sup
        .scale_history
        .lock()
        .expect("no panics under this lock")
        .events();
    Ok(Json(ScaleEvents { events }))
}

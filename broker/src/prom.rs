//! Prometheus metrics. Workers count in plain cells on their own threads and
//! copy them to shared atomics twice a second (see `stats`); this thread turns
//! those into Prometheus series once a second, so recording adds no lock and
//! no allocation to the message path. Labels are bounded: worker index, QoS,
//! drop reason — never client ids or topics. `http` serves the rendering.

use crate::shared::Shared;
use metrics::{counter, gauge};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

/// Installs the process's metrics recorder and starts the thread that feeds
/// it; the handle renders the text format.
pub(crate) fn start(shared: Arc<Shared>) -> Result<PrometheusHandle, crate::BrokerError> {
    let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| crate::BrokerError::Metrics(e.to_string()))?;
    let upkeep = handle.clone();
    std::thread::Builder::new()
        .name("tern-metrics".into())
        .spawn(move || loop {
            record(&shared);
            upkeep.run_upkeep();
            std::thread::sleep(Duration::from_secs(1));
        })?;
    Ok(handle)
}

fn record(shared: &Shared) {
    for (i, ws) in shared.worker_stats.iter().enumerate() {
        let worker = i.to_string();
        for (name, value) in ws.values() {
            let w = worker.clone();
            match name {
                "connections_current" => {
                    gauge!("tern_connections_current", "worker" => w).set(value as f64)
                }
                "connections_accepted" => {
                    counter!("tern_connections_accepted_total", "worker" => w).absolute(value)
                }
                "connections_rejected" => {
                    counter!("tern_connections_rejected_total", "worker" => w).absolute(value)
                }
                "events" => counter!("tern_worker_events_total", "worker" => w).absolute(value),
                "publish_in_qos0" => {
                    counter!("tern_messages_received_total", "worker" => w, "qos" => "0")
                        .absolute(value)
                }
                "publish_in_qos1" => {
                    counter!("tern_messages_received_total", "worker" => w, "qos" => "1")
                        .absolute(value)
                }
                "publish_in_qos2" => {
                    counter!("tern_messages_received_total", "worker" => w, "qos" => "2")
                        .absolute(value)
                }
                "publish_out" => {
                    counter!("tern_messages_sent_total", "worker" => w).absolute(value)
                }
                "bytes_in" => counter!("tern_bytes_received_total", "worker" => w).absolute(value),
                "bytes_out" => counter!("tern_bytes_sent_total", "worker" => w).absolute(value),
                "queued_offline" => {
                    counter!("tern_messages_queued_offline_total", "worker" => w).absolute(value)
                }
                "shared_deliveries" => {
                    counter!("tern_shared_deliveries_total", "worker" => w).absolute(value)
                }
                "shared_redeliveries" => {
                    counter!("tern_shared_redeliveries_total", "worker" => w).absolute(value)
                }
                "shared_passed_on" => {
                    counter!("tern_shared_passed_on_total", "worker" => w).absolute(value)
                }
                "malformed_packets" => {
                    counter!("tern_malformed_packets_total", "worker" => w).absolute(value)
                }
                "protocol_errors" => {
                    counter!("tern_protocol_errors_total", "worker" => w).absolute(value)
                }
                "worker_queue_waits" => {
                    counter!("tern_worker_queue_waits_total", "worker" => w).absolute(value)
                }
                "publisher_pauses" => {
                    counter!("tern_publisher_pauses_total", "worker" => w).absolute(value)
                }
                "slow_subscribers" => {
                    counter!("tern_slow_subscribers_total", "worker" => w).absolute(value)
                }
                "sessions_expired" => {
                    counter!("tern_sessions_expired_total", "worker" => w).absolute(value)
                }
                "retained_rejected" => {
                    counter!("tern_retained_rejected_total", "worker" => w).absolute(value)
                }
                dropped => {
                    let reason = dropped.trim_start_matches("dropped_");
                    counter!("tern_messages_dropped_total", "worker" => w, "reason" => reason.to_string()).absolute(value)
                }
            }
        }
    }
    let retained = shared.retained.lock().unwrap_or_else(|e| e.into_inner());
    gauge!("tern_retained_messages").set(retained.len() as f64);
    gauge!("tern_retained_bytes").set(retained.bytes() as f64);
    drop(retained);
    gauge!("tern_sessions").set(shared.registry.len() as f64);
    gauge!("tern_route_snapshot_version").set(shared.routes.load().version() as f64);
    gauge!("tern_route_filters").set(shared.routes.load().filter_count() as f64);
    for (i, subs) in shared.health.subscriptions.iter().enumerate() {
        gauge!("tern_subscriptions", "worker" => i.to_string()).set(subs.load(Relaxed) as f64);
    }
    let health = &shared.health;
    counter!("tern_config_reloads_total", "result" => "ok")
        .absolute(health.reloads_ok.load(Relaxed));
    counter!("tern_config_reloads_total", "result" => "rejected")
        .absolute(health.reloads_failed.load(Relaxed));
    let rs = &shared.route_stats;
    counter!("tern_route_rebuilds_total").absolute(rs.rebuilds.load(Relaxed));
    gauge!("tern_route_last_rebuild_seconds")
        .set(rs.last_rebuild_micros.load(Relaxed) as f64 / 1e6);
}

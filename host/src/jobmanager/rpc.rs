//! The JobManager's QUIC endpoint: TaskManagers register, heartbeat, report
//! task ends and download modules. The TLS handshake has already checked
//! that the peer holds a certificate of the cluster CA.

use std::sync::Arc;
use std::time::Instant;

use super::{JobManager, TaskManagerEntry};
use crate::net::codec;
use crate::protocol::{Registered, TaskUsage, ToJobManager};

/// How often TaskManagers heartbeat.
const HEARTBEAT_INTERVAL_MS: u64 = 500;

/// Accepts TaskManager connections until the endpoint closes.
pub async fn accept(jm: Arc<JobManager>, endpoint: quinn::Endpoint) {
    while let Some(incoming) = endpoint.accept().await {
        let jm = jm.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            match incoming.await {
                Ok(conn) => serve(jm, conn).await,
                // A peer without a certificate of the cluster CA ends here.
                Err(e) => tracing::warn!(%remote, "refused a cluster connection: {e}"),
            }
        });
    }
}

/// A heartbeat of TaskManager `tm`: it is alive, and what its subtasks used so far;
/// reports for subtasks it does not run in the current attempt are ignored.
fn heartbeat(jm: &Arc<JobManager>, tm: &str, running_tasks: u32, usage: Vec<(String, usize, u32, TaskUsage)>, held: Vec<(String, u64)>) {
    let mut metered = Vec::new();
    {
        let mut state = jm.state.lock().unwrap();
        if let Some(entry) = state.taskmanagers.get_mut(tm) {
            entry.last_heartbeat = Instant::now();
            entry.running_tasks = running_tasks;
        }
        for (exec, chain, subtask, u) in usage {
            if let Some(j) = state.current_mut(&exec).filter(|j| j.runs_on(chain, subtask, tm)) {
                metered.extend(j.report_usage(chain, subtask, u));
            }
        }
        for (exec, bytes) in held {
            if let Some(j) = state.current_mut(&exec).filter(|j| j.uses(tm)) {
                metered.extend(j.report_state(tm, bytes));
            }
        }
    }
    jm.meter_all(metered);
}

async fn serve(jm: Arc<JobManager>, conn: quinn::Connection) {
    let mut id: Option<String> = None;
    loop {
        tokio::select! {
            bi = conn.accept_bi() => {
                let Ok((mut send, mut recv)) = bi else { break };
                match codec::read::<ToJobManager>(&mut recv).await {
                    Ok(Some(ToJobManager::Register { slots, data_addr })) if id.is_none() => {
                        let new_id = {
                            let mut state = jm.state.lock().unwrap();
                            let new_id = jm.new_taskmanager_id(&mut state);
                            state.taskmanagers.insert(new_id.clone(), TaskManagerEntry {
                                id: new_id.clone(),
                                data_addr,
                                slots: vec![None; slots as usize],
                                last_heartbeat: Instant::now(),
                                running_tasks: 0,
                                connection: conn.clone(),
                            });
                            new_id
                        };
                        tracing::info!(taskmanager = %new_id, %data_addr, slots, remote = %conn.remote_address(), "TaskManager registered");
                        let reply = Registered { id: new_id.clone(), heartbeat_interval_ms: HEARTBEAT_INTERVAL_MS };
                        let _ = codec::write(&mut send, &reply).await;
                        let _ = send.finish();
                        id = Some(new_id);
                        jm.schedule_waiting();
                    }
                    Ok(Some(ToJobManager::GetModule { digest })) => {
                        let jm = jm.clone();
                        tokio::spawn(async move {
                            // Read off the async threads: a module may be hundreds of MiB.
                            let d = digest.clone();
                            let bytes = tokio::task::spawn_blocking(move || jm.modules.bytes(&d)).await.ok().flatten();
                            match bytes {
                                Some(Ok(bytes)) => { let _ = send.write_all(&bytes).await; }
                                _ => tracing::warn!(digest, "TaskManager asked for an unknown module"),
                            }
                            let _ = send.finish();
                        });
                    }
                    Ok(other) => tracing::warn!("unexpected request {other:?}"),
                    Err(e) => tracing::warn!("bad request from {}: {e}", conn.remote_address()),
                }
            }
            uni = conn.accept_uni() => {
                let Ok(mut recv) = uni else { break };
                match codec::read::<ToJobManager>(&mut recv).await {
                    // What a connection says counts for the TaskManager that registered on it, whatever id it names.
                    Ok(Some(ToJobManager::Heartbeat { running_tasks, usage, state, .. })) => {
                        let Some(tm) = id.as_deref() else { continue };
                        heartbeat(&jm, tm, running_tasks, usage, state);
                    }
                    Ok(Some(ToJobManager::TaskDone { job, chain, subtask, outcome, usage, .. })) => {
                        let Some(tm) = id.as_deref() else { continue };
                        jm.task_done(tm, &job, (chain, subtask), outcome, usage);
                    }
                    Ok(Some(ToJobManager::CheckpointAck { job, chain, subtask, checkpoint, result })) => {
                        jm.checkpoint_ack(&job, chain, subtask, checkpoint, result)
                    }
                    Ok(other) => tracing::warn!("unexpected message {other:?}"),
                    Err(e) => tracing::warn!("bad message from {}: {e}", conn.remote_address()),
                }
            }
        }
    }
    if let Some(id) = id {
        // A closed connection is a lost TaskManager, without waiting for the heartbeat timeout.
        let reason = conn.close_reason().map(|r| r.to_string()).unwrap_or_else(|| "connection closed".into());
        jm.lose_taskmanager(&id, &format!("its connection closed ({reason})"));
    }
}

//! Publishers: QoS 1 MQTT clients sending the workload as fast as the broker acknowledges.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use tokio::sync::{oneshot, Semaphore};

use crate::workload::Workload;

/// Messages a publisher may have waiting for their PUBACK.
const PUBLISHER_INFLIGHT: u16 = 1000;

pub(crate) struct Published {
    pub(crate) acked: u64,
    pub(crate) elapsed: Duration,
    pub(crate) last_ack: Instant,
}

/// Publishes every message of `work` at QoS 1 from `n` concurrent clients; returns once the
/// broker acknowledged them all.
pub(crate) async fn publish(
    port: u16,
    work: &Arc<Workload>,
    n: usize,
    run: &str,
    timeout: Duration,
) -> anyhow::Result<Published> {
    let t0 = Instant::now();
    let tasks: Vec<_> = work
        .split(n)
        .into_iter()
        .enumerate()
        .map(|(i, indices)| {
            tokio::spawn(publisher(
                port,
                format!("bench-{run}-{i}"),
                work.clone(),
                indices,
                timeout,
            ))
        })
        .collect();
    let mut acked = 0;
    let mut last_ack = t0;
    for task in tasks {
        let (n, last) = task.await??;
        acked += n;
        last_ack = last_ack.max(last);
    }
    Ok(Published {
        acked,
        elapsed: last_ack.duration_since(t0),
        last_ack,
    })
}

/// One MQTT 3.1.1 client. The event loop runs in its own task and only counts PUBACKs,
/// returning a permit for each; the publishing loop takes a permit per message, so at most
/// [`PUBLISHER_INFLIGHT`] wait for their PUBACK and the loop never blocks the event loop.
pub(crate) async fn publisher(
    port: u16,
    id: String,
    work: Arc<Workload>,
    indices: Vec<usize>,
    timeout: Duration,
) -> anyhow::Result<(u64, Instant)> {
    let total = indices.len() as u64;
    if total == 0 {
        return Ok((0, Instant::now()));
    }
    let mut opts = MqttOptions::new(id.clone(), "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_inflight(PUBLISHER_INFLIGHT)
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = AsyncClient::new(opts, 256);
    let permits = Arc::new(Semaphore::new(usize::from(PUBLISHER_INFLIGHT)));
    let (done_tx, done_rx) = oneshot::channel::<Instant>();
    let poll = tokio::spawn({
        let permits = permits.clone();
        async move {
            let mut acked = 0u64;
            let mut done_tx = Some(done_tx);
            loop {
                match events.poll().await {
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        acked += 1;
                        permits.add_permits(1);
                        if acked == total {
                            if let Some(tx) = done_tx.take() {
                                let _ = tx.send(Instant::now());
                            }
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::Disconnect)) => return Ok(acked),
                    Ok(_) => {}
                    Err(e) => {
                        permits.close();
                        if acked == total {
                            return Ok(acked);
                        }
                        return Err(anyhow!("{e} after {acked} of {total} PUBACKs"));
                    }
                }
            }
        }
    });
    let sent: anyhow::Result<()> = async {
        for &i in &indices {
            permits
                .acquire()
                .await
                .map_err(|_| anyhow!("connection lost"))?
                .forget();
            let m = &work.messages[i];
            client
                .publish_bytes(m.topic.clone(), QoS::AtLeastOnce, false, m.payload.clone())
                .await?;
        }
        Ok(())
    }
    .await;
    let last = match (sent, tokio::time::timeout(timeout, done_rx).await) {
        (Ok(()), Ok(Ok(at))) => at,
        (sent, _) => {
            poll.abort();
            let cause = sent
                .err()
                .map_or("no PUBACK for every message".to_owned(), |e| e.to_string());
            bail!("publisher {id}: {cause}");
        }
    };
    let _ = client.disconnect().await;
    let acked = match tokio::time::timeout(Duration::from_secs(5), poll).await {
        Ok(Ok(Ok(n))) => n,
        _ => total,
    };
    Ok((acked, last))
}

//! A test's MQTT client: publishes at QoS 1 and counts the broker's PUBACKs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::ports::free_port;
use crate::wait::eventually;

/// A QoS 1 publisher (MQTT 3.1.1) that waits for every PUBACK.
pub struct Publisher {
    client: rumqttc::AsyncClient,
    acked: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Publisher {
    pub async fn connect(port: u16) -> Publisher {
        let mut o = rumqttc::MqttOptions::new(format!("pub-{}", free_port()), "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30))
            .set_inflight(200)
            .set_max_packet_size(1 << 24, 1 << 24);
        let (client, mut el) = rumqttc::AsyncClient::new(o, 1000);
        let acked = Arc::new(AtomicU64::new(0));
        let a = acked.clone();
        let task = tokio::spawn(async move {
            loop {
                match el.poll().await {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => {
                        a.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        Publisher {
            client,
            acked,
            task,
        }
    }

    pub async fn publish(&self, topic: &str, payload: impl Into<Vec<u8>>) {
        self.client
            .publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.into())
            .await
            .expect("publishing");
    }

    /// Waits (at most 60 s) until the broker acknowledged `n` publishes in total.
    pub async fn wait_acked(&self, n: u64) {
        let acked = self.acked.clone();
        eventually(
            &format!("{n} PUBACKs from the broker"),
            Duration::from_secs(60),
            || {
                let acked = acked.clone();
                async move { (acked.load(Ordering::SeqCst) >= n).then_some(()) }
            },
        )
        .await;
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

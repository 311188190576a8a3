//! A mosquitto broker with persistence, configured as the README recommends.

use std::path::Path;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};

use crate::ports::{free_port, wait_port};
use crate::process::Proc;
use crate::programs::program;

/// What differs between a broker for tests and one for the benchmark's backlogs.
#[derive(Clone, Debug)]
pub struct BrokerOpts {
    /// `max_queued_messages`: what one offline session may hold.
    pub max_queued_messages: u64,
    /// `autosave_interval` in seconds: how much a SIGKILL of the broker can lose. `None`:
    /// mosquitto's default (saved at shutdown), so saving costs nothing while measuring.
    pub autosave_interval: Option<u32>,
    /// `sys_interval` in seconds: `$SYS` counters, which [`Broker::received`] reads.
    pub sys_interval: Option<u32>,
}

impl Default for BrokerOpts {
    /// The tests' broker: saved every second, a million queued messages, no `$SYS`.
    fn default() -> Self {
        BrokerOpts {
            max_queued_messages: 1_000_000,
            autosave_interval: Some(1),
            sys_interval: None,
        }
    }
}

/// A mosquitto broker on a free loopback port; its files (configuration, persistence,
/// `mosquitto.log`) in `<dir>/mosquitto`. Its log goes to that file as it happens (mosquitto
/// buffers its standard output when that is a pipe).
pub struct Broker {
    pub port: u16,
    pub proc: Proc,
}

impl Broker {
    pub fn start(dir: &Path) -> Broker {
        Broker::start_with(dir, BrokerOpts::default())
    }

    pub fn start_with(dir: &Path, opts: BrokerOpts) -> Broker {
        let port = free_port();
        let data = dir.join("mosquitto");
        std::fs::create_dir_all(&data).unwrap();
        let conf = data.join("mosquitto.conf");
        let mut text = format!(
            "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location {}/\n",
            data.display()
        );
        if let Some(s) = opts.autosave_interval {
            text.push_str(&format!("autosave_interval {s}\n"));
        }
        text.push_str(&format!(
            "max_queued_messages {}\nmax_inflight_messages 1000\n\
             persistent_client_expiration 7d\nlog_dest stdout\nlog_dest file {}\nuser root\nlog_type error\nlog_type warning\nlog_type notice\n",
            opts.max_queued_messages,
            data.join("mosquitto.log").display()
        ));
        if let Some(s) = opts.sys_interval {
            text.push_str(&format!("sys_interval {s}\n"));
        }
        std::fs::write(&conf, text).unwrap();
        let bin = program("mosquitto", "mosquitto");
        let proc = Proc::spawn(
            "mosquitto",
            &[
                bin.display().to_string(),
                "-c".into(),
                conf.display().to_string(),
            ],
            &[],
            dir,
        );
        let b = Broker { port, proc };
        wait_port(port, "mosquitto");
        b
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn restart(&mut self) {
        self.proc.restart();
        wait_port(self.port, "mosquitto");
    }

    /// The broker's own count of PUBLISH packets received (`$SYS`, so only with
    /// [`BrokerOpts::sys_interval`]), once it reaches `expected` or 5 s passed; `None` when the
    /// broker does not publish it.
    pub async fn received(&self, expected: u64) -> Option<u64> {
        let mut opts = MqttOptions::new(format!("sys-{}", self.port), "127.0.0.1", self.port);
        opts.set_clean_session(true);
        let (client, mut events) = AsyncClient::new(opts, 16);
        client
            .subscribe("$SYS/broker/publish/messages/received", QoS::AtMostOnce)
            .await
            .ok()?;
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut seen = None;
        while let Ok(Ok(event)) =
            tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), events.poll()).await
        {
            if let Event::Incoming(Packet::Publish(p)) = event {
                let n = std::str::from_utf8(&p.payload)
                    .ok()?
                    .trim()
                    .parse::<u64>()
                    .ok()?;
                seen = Some(n);
                if n >= expected {
                    break;
                }
            }
        }
        let _ = client.disconnect().await;
        seen
    }
}

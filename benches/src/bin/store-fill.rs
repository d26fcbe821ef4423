//! store-fill: writes a Tern data dir holding `--sessions` offline
//! persistent sessions, each subscribed to `fill/<i>/#` with
//! `--messages` queued QoS 1 messages of `--payload` bytes, through the
//! broker's own store (`tern_store`), spread over `--workers` worker
//! databases as the broker would. Then `tern --persistence on --data-dir
//! DIR` measures recovery (benches/store-recovery.sh).

use bytes::Bytes;
use bytestring::ByteString;
use clap::Parser;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;
use tern_codec::{Publish, PublishProperties, QoS, SubscriptionOptions};
use tern_session::{Message, Session, SessionChange};

#[derive(Debug, Parser)]
struct Args {
    /// The data dir to write (must not exist yet, or be empty).
    #[arg(long)]
    data_dir: PathBuf,
    /// Worker databases (the broker's --workers).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Offline persistent sessions.
    #[arg(long, default_value_t = 100_000)]
    sessions: usize,
    /// Queued messages per session.
    #[arg(long, default_value_t = 10)]
    messages: usize,
    /// Payload bytes per message.
    #[arg(long, default_value_t = 100)]
    payload: usize,
}

fn main() {
    let args = Args::parse();
    if let Err(e) = run(&args) {
        eprintln!("store-fill: {e}");
        std::process::exit(1);
    }
}

fn run(args: &Args) -> Result<(), tern_store::StoreError> {
    let started = Instant::now();
    let config = tern_store::StoreConfig {
        data_dir: args.data_dir.clone(),
        repair: false,
    };
    let mut recovery = tern_store::open(&config, args.workers)?;
    let now = Instant::now();
    let payload = Bytes::from(vec![b'p'; args.payload]);
    let options = SubscriptionOptions {
        qos: QoS::AtLeastOnce,
        ..SubscriptionOptions::default()
    };
    for i in 0..args.sessions {
        let w = i % args.workers.max(1);
        let Some(worker) = recovery.workers.get_mut(w) else {
            continue;
        };
        let store = &mut worker.store;
        let client_id = ByteString::from(format!("fill-{i}"));
        let session = Session::new(client_id.clone(), true);
        store.session_opened(&session, false);
        store.session_changed(
            &client_id,
            SessionChange::Subscribed {
                filter: ByteString::from(format!("fill/{i}/#")),
                options,
                subscription_identifier: None,
            },
        );
        for m in 0..args.messages {
            let msg = Arc::new(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: ByteString::from(format!("fill/{i}/{m}")),
                packet_id: None,
                properties: PublishProperties::default(),
                payload: payload.clone(),
            });
            let message = Message {
                msg,
                qos: QoS::AtLeastOnce,
                retain: false,
                sub_ids: Default::default(),
                received_at: now,
                share: None,
                id: m as u64 + 1,
            };
            store.session_changed(&client_id, SessionChange::Queued { message });
        }
        store.session_offline(&session, now);
        // Batches of about 1,000 sessions, as a busy worker's turns would be.
        if i % (1000 * args.workers.max(1)) == 0 {
            store.commit()?;
        }
    }
    for worker in &mut recovery.workers {
        worker.store.commit()?;
        worker.store.sync_handle().sync()?;
    }
    println!(
        "store-fill: {} sessions x {} messages of {} bytes in {} worker databases, {:.1} s",
        args.sessions,
        args.messages,
        args.payload,
        args.workers,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

//! A small quorum-aware service, as an HA agent or pmxcfs would be: it tracks a CMAP prefix
//! and the votequorum state, logs both, and keeps running across a corosync restart (the
//! streams then say `resync`, and the service re-reads what it tracks).
//!
//! ```text
//! cargo run -p corowire-tokio --example quorum_service -- [PREFIX]   (default: "myapp.")
//! ```

use core::time::Duration;

use corowire_tokio::{
    Cmap, Options, OwnedNotification, Reconnect, TrackFlags, TrackType, Tracked, Votequorum,
};

/// Logs the keys under `prefix`, as they are now.
async fn read_all(cmap: &Cmap, prefix: &str) {
    match cmap.dump(Some(prefix)).await {
        Ok(entries) => {
            for (key, value) in entries {
                match value {
                    Ok(v) => println!("config: {key} = {v}"),
                    Err(e) => println!("config: {key}: {e}"),
                }
            }
        }
        Err(e) => println!("config: cannot read {prefix}*: {e}"),
    }
}

fn main() -> Result<(), Box<dyn core::error::Error>> {
    let prefix = std::env::args().nth(1).unwrap_or_else(|| "myapp.".to_owned());
    let options = Options {
        timeout: Some(Duration::from_secs(5)),
        reconnect: Some(Reconnect::default()),
        ..Options::for_tracking()
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build()?;
    runtime.block_on(async move {
        let cmap = Cmap::connect_with(options.clone()).await?;
        let vq = Votequorum::connect_with(options).await?;
        let mut config = cmap.track(Some(&prefix), TrackType::ALL | TrackType::PREFIX).await?;
        let mut quorum = vq.track(TrackFlags::CURRENT | TrackFlags::CHANGES).await?;
        read_all(&cmap, &prefix).await;
        let mut quorate = None;
        loop {
            tokio::select! {
                item = config.next() => match item {
                    Some(Tracked::Event(change)) => println!("config: {change}"),
                    Some(Tracked::Lagged(n)) => {
                        println!("config: {n} changes missed, re-reading");
                        read_all(&cmap, &prefix).await;
                    }
                    Some(Tracked::Disconnected) => println!("config: corosync is gone, values may be stale"),
                    Some(Tracked::Resync) => {
                        println!("config: corosync restarted, re-reading");
                        read_all(&cmap, &prefix).await;
                    }
                    Some(_) | None => break,
                },
                item = quorum.next() => match item {
                    Some(Tracked::Event(OwnedNotification::Quorum { quorate: q, nodes, .. })) => {
                        if quorate != Some(q) {
                            println!("quorum: {} ({} nodes)", if q { "quorate, serving" } else { "NOT quorate, pausing" }, nodes.len());
                            quorate = Some(q);
                        }
                    }
                    Some(Tracked::Event(OwnedNotification::NodeList { ring_id, nodes, .. })) => {
                        println!("quorum: ring {ring_id:?}, members {nodes:?}");
                    }
                    Some(Tracked::Event(other)) => println!("quorum: {other:?}"),
                    // Without corosync, no quorum is known: stop acting on the last state.
                    Some(Tracked::Disconnected) => {
                        println!("quorum: corosync is gone, NOT quorate, pausing");
                        quorate = Some(false);
                    }
                    Some(Tracked::Resync) => println!("quorum: corosync restarted, state follows"),
                    Some(Tracked::Lagged(n)) => println!("quorum: {n} notifications missed"),
                    Some(_) | None => break,
                },
            }
        }
        println!("the connection to corosync is gone");
        Ok(())
    })
}

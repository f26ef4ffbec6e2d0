//! The DNS cache shared by every virtual user: one lookup per host name per minute, whatever the
//! number of users and connections. Entered by the HTTP client when it opens a connection; IP
//! literals never reach the resolver.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long a resolved address list is reused.
pub const DNS_TTL: Duration = Duration::from_secs(60);

type Cache = Mutex<HashMap<String, (Instant, Arc<[IpAddr]>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The addresses of `host` (a name or an IP literal, IPv6 in brackets or not) with `port`.
pub async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let cached = {
        let c = cache().lock().unwrap_or_else(PoisonError::into_inner);
        c.get(bare)
            .filter(|(at, _)| at.elapsed() < DNS_TTL)
            .map(|(_, a)| a.clone())
    };
    let ips = match cached {
        Some(ips) => ips,
        None => {
            let found: Arc<[IpAddr]> = tokio::net::lookup_host((bare, port))
                .await?
                .map(|a| a.ip())
                .collect();
            if found.is_empty() {
                return Err(io::Error::new(io::ErrorKind::NotFound, "no address found"));
            }
            cache()
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(bare.to_owned(), (Instant::now(), found.clone()));
            found
        }
    };
    Ok(ips.iter().map(|ip| SocketAddr::new(*ip, port)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn literals_names_and_cache() {
        assert_eq!(
            resolve("127.0.0.1", 80).await.expect("v4"),
            vec![SocketAddr::from(([127, 0, 0, 1], 80))]
        );
        assert_eq!(resolve("[::1]", 81).await.expect("v6")[0].port(), 81);
        let addrs = resolve("localhost", 9).await.expect("localhost");
        assert!(
            addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 9),
            "{addrs:?}"
        );
        assert!(cache().lock().expect("lock").contains_key("localhost"));
    }
}

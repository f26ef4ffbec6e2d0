//! The DNS cache shared by every virtual user: one lookup per host name per minute, whatever the
//! number of users and connections. Entered by the HTTP clients' connectors; IP literals never
//! reach it.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// How long a resolved address list is reused.
pub const DNS_TTL: Duration = Duration::from_secs(60);

type Cache = Mutex<HashMap<String, (Instant, Arc<[SocketAddr]>)>>;

/// A resolver backed by the system's (`getaddrinfo` through tokio) with a process-wide cache.
#[derive(Clone, Copy, Default)]
pub struct SharedResolver;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

impl SharedResolver {
    /// The shared resolver, as reqwest takes it.
    pub fn shared() -> Arc<SharedResolver> {
        static R: OnceLock<Arc<SharedResolver>> = OnceLock::new();
        R.get_or_init(|| Arc::new(SharedResolver)).clone()
    }
}

impl Resolve for SharedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let cached = {
                let c = cache().lock().unwrap_or_else(PoisonError::into_inner);
                c.get(&host)
                    .filter(|(at, _)| at.elapsed() < DNS_TTL)
                    .map(|(_, a)| a.clone())
            };
            let addrs = match cached {
                Some(a) => a,
                None => {
                    // The port is replaced by the connector; 0 is a placeholder.
                    let found: Arc<[SocketAddr]> =
                        tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
                    cache()
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .insert(host, (Instant::now(), found.clone()));
                    found
                }
            };
            let iter: Addrs = Box::new((0..addrs.len()).map(move |i| addrs[i]));
            Ok(iter)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_resolves_and_is_cached() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let name: Name = "localhost".parse().expect("name");
        let addrs: Vec<_> = rt
            .block_on(SharedResolver.resolve(name))
            .expect("resolve")
            .collect();
        assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
        assert!(cache().lock().expect("lock").contains_key("localhost"));
    }
}

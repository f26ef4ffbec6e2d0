//! The TLS client configuration shared by every virtual user (built once per process).

use std::sync::{Arc, OnceLock};

/// The shared rustls client configuration: webpki root certificates, the ring provider, ALPN
/// for HTTP/1.1 (the HTTP client and the WebSocket handshake both speak HTTP/1.1).
pub fn client_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            // Other crates (hyper-rustls, tungstenite) may look for a process-wide provider.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("ring supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Arc::new(config)
        })
        .clone()
}

//! Which Docker engine to speak to, found as the docker CLI finds it: `DOCKER_HOST` (with
//! `DOCKER_TLS_VERIFY` / `DOCKER_CERT_PATH` for TLS), else the context `DOCKER_CONTEXT` or the
//! config's `currentContext` names (`~/.docker/contexts/meta/<sha256 of the name>/meta.json`
//! and its TLS files), else the local socket. Pure logic over the environment and files; the
//! docker module connects.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub const DEFAULT_HOST: &str = "unix:///var/run/docker.sock";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// `unix:///path`, `tcp://host:port`, `npipe://...`, `ssh://...`.
    pub host: String,
    /// Client key, client certificate and CA for TLS.
    pub tls: Option<Tls>,
    /// Where the endpoint came from, for messages ("DOCKER_HOST", "context `remote`").
    pub from: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub key: PathBuf,
    pub cert: PathBuf,
    pub ca: PathBuf,
}

/// Find the endpoint. `env` reads an environment variable; `home` is the user's home.
pub fn find(env: &dyn Fn(&str) -> Option<String>, home: Option<&Path>) -> Result<Endpoint, String> {
    let set = |k: &str| env(k).filter(|v| !v.is_empty());
    let config_dir = set("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| home.map(|h| h.join(".docker")));
    if let Some(host) = set("DOCKER_HOST") {
        let tls = if set("DOCKER_TLS_VERIFY").is_some() {
            let dir = set("DOCKER_CERT_PATH")
                .map(PathBuf::from)
                .or_else(|| config_dir.clone())
                .ok_or(
                    "DOCKER_TLS_VERIFY is set but neither DOCKER_CERT_PATH nor a home directory is",
                )?;
            Some(Tls {
                key: dir.join("key.pem"),
                cert: dir.join("cert.pem"),
                ca: dir.join("ca.pem"),
            })
        } else {
            None
        };
        return Ok(Endpoint {
            host,
            tls,
            from: "DOCKER_HOST".into(),
        });
    }
    let context = match set("DOCKER_CONTEXT") {
        Some(c) => Some(c),
        None => config_dir
            .as_ref()
            .and_then(|d| std::fs::read_to_string(d.join("config.json")).ok())
            .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
            .and_then(|v| v.get("currentContext")?.as_str().map(String::from))
            .filter(|c| !c.is_empty()),
    };
    let local = Endpoint {
        host: DEFAULT_HOST.into(),
        tls: None,
        from: "the default socket".into(),
    };
    let Some(name) = context.filter(|c| c != "default") else {
        return Ok(local);
    };
    let dir =
        config_dir.ok_or_else(|| format!("docker context `{name}`: no docker config directory"))?;
    let id = hex::encode(Sha256::digest(name.as_bytes()));
    let meta_path = dir
        .join("contexts")
        .join("meta")
        .join(&id)
        .join("meta.json");
    let meta: serde_json::Value = std::fs::read_to_string(&meta_path)
        .map_err(|e| format!("docker context `{name}`: {}: {e}", meta_path.display()))
        .and_then(|t| {
            serde_json::from_str(&t)
                .map_err(|e| format!("docker context `{name}`: {}: {e}", meta_path.display()))
        })?;
    let docker = meta.get("Endpoints").and_then(|e| e.get("docker"));
    let host = docker
        .and_then(|d| d.get("Host"))
        .and_then(|h| h.as_str())
        .ok_or_else(|| {
            format!("docker context `{name}` names no docker endpoint (Endpoints.docker.Host)")
        })?;
    let tls_dir = dir.join("contexts").join("tls").join(&id).join("docker");
    let tls = tls_dir.join("ca.pem").is_file().then(|| Tls {
        key: tls_dir.join("key.pem"),
        cert: tls_dir.join("cert.pem"),
        ca: tls_dir.join("ca.pem"),
    });
    Ok(Endpoint {
        host: host.to_string(),
        tls,
        from: format!("docker context `{name}`"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn docker_host_and_tls_from_the_environment() {
        let e = find(&env(&[("DOCKER_HOST", "tcp://h:2376")]), None).unwrap();
        assert_eq!((e.host.as_str(), e.tls.is_none()), ("tcp://h:2376", true));
        let e = find(
            &env(&[
                ("DOCKER_HOST", "tcp://h:2376"),
                ("DOCKER_TLS_VERIFY", "1"),
                ("DOCKER_CERT_PATH", "/certs"),
            ]),
            None,
        )
        .unwrap();
        assert_eq!(e.tls.unwrap().ca, PathBuf::from("/certs/ca.pem"));
        let e = find(&env(&[]), None).unwrap();
        assert_eq!(e.host, DEFAULT_HOST);
    }

    #[test]
    fn contexts_as_the_docker_cli_stores_them() {
        let home = tempfile::tempdir().unwrap();
        let docker = home.path().join(".docker");
        let id = hex::encode(Sha256::digest(b"remote"));
        let meta = docker.join("contexts/meta").join(&id);
        std::fs::create_dir_all(&meta).unwrap();
        std::fs::write(
            meta.join("meta.json"),
            r#"{"Name":"remote","Endpoints":{"docker":{"Host":"tcp://10.0.0.5:2376","SkipTLSVerify":false}}}"#,
        )
        .unwrap();
        let tls = docker.join("contexts/tls").join(&id).join("docker");
        std::fs::create_dir_all(&tls).unwrap();
        std::fs::write(tls.join("ca.pem"), "x").unwrap();
        std::fs::write(docker.join("config.json"), r#"{"currentContext":"remote"}"#).unwrap();
        let e = find(&env(&[]), Some(home.path())).unwrap();
        assert_eq!(e.host, "tcp://10.0.0.5:2376");
        assert_eq!(e.from, "docker context `remote`");
        assert!(e.tls.is_some());
        // DOCKER_CONTEXT wins over the config; `default` is the local socket.
        let e = find(&env(&[("DOCKER_CONTEXT", "default")]), Some(home.path())).unwrap();
        assert_eq!(e.host, DEFAULT_HOST);
        let err = find(&env(&[("DOCKER_CONTEXT", "nope")]), Some(home.path())).unwrap_err();
        assert!(err.contains("docker context `nope`"), "{err}");
        // DOCKER_HOST wins over any context.
        let e = find(
            &env(&[("DOCKER_HOST", "unix:///x.sock")]),
            Some(home.path()),
        )
        .unwrap();
        assert_eq!(e.host, "unix:///x.sock");
    }
}

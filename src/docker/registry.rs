//! Image references and registries: what the create-image call wants, and the credentials
//! `~/.docker/config.json` holds for a registry.

use std::path::Path;

use bollard::auth::DockerCredentials;

/// Split `registry/repo:tag@digest` into what the create-image call wants.
pub fn split_reference(image: &str) -> (&str, &str) {
    // A digest goes in the tag parameter: the engine accepts either there.
    if let Some((repo, digest)) = image.split_once('@') {
        return (repo, digest);
    }
    let last_slash = image.rfind('/').map(|i| i + 1).unwrap_or(0);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

/// The registry host of an image reference, as the docker CLI keys its credentials.
pub fn registry_of(image: &str) -> &str {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            first
        }
        _ => "https://index.docker.io/v1/",
    }
}

/// The user's credentials for the image's registry from `~/.docker/config.json` (`auths`).
pub(super) fn credentials_for(image: &str) -> Option<DockerCredentials> {
    use base64::Engine as _;
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))?;
    let text = std::fs::read_to_string(dir.join("config.json")).ok()?;
    let config: serde_json::Value = serde_json::from_str(&text).ok()?;
    let registry = registry_of(image);
    let auths = config.get("auths")?.as_object()?;
    let entry = auths.iter().find(|(k, _)| {
        k.as_str() == registry
            || k.trim_start_matches("https://")
                .trim_start_matches("http://")
                .split('/')
                .next()
                == Some(registry)
    })?;
    let auth = entry.1.get("auth")?.as_str()?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth)
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, pass) = decoded.split_once(':')?;
    Some(DockerCredentials {
        username: Some(user.to_string()),
        password: Some(pass.to_string()),
        serveraddress: Some(entry.0.clone()),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references() {
        assert_eq!(split_reference("alpine"), ("alpine", "latest"));
        assert_eq!(split_reference("python:3.12"), ("python", "3.12"));
        assert_eq!(
            split_reference("localhost:5000/team/app:v1"),
            ("localhost:5000/team/app", "v1")
        );
        assert_eq!(
            split_reference("localhost:5000/team/app"),
            ("localhost:5000/team/app", "latest")
        );
        assert_eq!(
            split_reference("alpine@sha256:abc"),
            ("alpine", "sha256:abc")
        );
        assert_eq!(registry_of("alpine"), "https://index.docker.io/v1/");
        assert_eq!(registry_of("ghcr.io/a/b:1"), "ghcr.io");
        assert_eq!(registry_of("library/alpine"), "https://index.docker.io/v1/");
    }
}

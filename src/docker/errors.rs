//! The engine's errors in berth's terms: what berth ran out of (files, space) told from an
//! engine that cannot be reached, and Podman's transient states told from failures.

use crate::engine::runtime::RuntimeError;

/// What berth ran out of, when `e` (or an error under it) says so: too many open files, or no
/// space left. Such an error is not an engine that cannot be reached.
pub(super) fn exhausted(e: &bollard::errors::Error) -> Option<String> {
    // bollard's I/O error is transparent: its source is the I/O error's own source.
    let mut next: Option<&(dyn std::error::Error + 'static)> = match e {
        bollard::errors::Error::IOError { err } => Some(err),
        other => Some(other),
    };
    while let Some(e) = next {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return exhausted_io(io);
        }
        next = e.source();
    }
    None
}

pub(super) fn exhausted_io(e: &std::io::Error) -> Option<String> {
    let what = match e.raw_os_error()? {
        libc::EMFILE | libc::ENFILE => {
            "berth ran out of open files (raise `ulimit -n`, or run fewer jobs at once with -j)"
        }
        libc::ENOSPC => "no space left on the device",
        _ => return None,
    };
    Some(format!("{what}: {e}"))
}

/// A local file berth could not read for the engine.
pub(super) fn unreadable(what: impl std::fmt::Display, e: std::io::Error) -> RuntimeError {
    match exhausted_io(&e) {
        Some(why) => RuntimeError::Exhausted(format!("cannot read {what}: {why}")),
        None => RuntimeError::Api(format!("cannot read {what}: {e}")),
    }
}

impl From<bollard::errors::Error> for RuntimeError {
    fn from(e: bollard::errors::Error) -> Self {
        use bollard::errors::Error as E;
        if let Some(why) = exhausted(&e) {
            return RuntimeError::Exhausted(why);
        }
        match e {
            E::SocketNotFoundError(_) | E::HyperResponseError { .. } | E::IOError { .. } => {
                RuntimeError::Unreachable(e.to_string())
            }
            other => RuntimeError::Api(other.to_string()),
        }
    }
}

/// A removal or kill whose object is already gone (404), or whose state already is what was
/// asked (409 with `conflict_ok`: not running, removal in progress), has done its job.
pub(super) fn done_unless_failed(
    result: Result<(), bollard::errors::Error>,
    conflict_ok: bool,
) -> Result<(), RuntimeError> {
    match result {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 409, ..
        }) if conflict_ok => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Podman (4.x) reports a container that has stopped but whose exit it has not yet recorded as
/// `stopped`, a state Docker's API (and so bollard) does not know; it becomes `exited` shortly,
/// so such an answer is asked again, up to this many times, this far apart.
const SETTLE_TRIES: u32 = 50;
const SETTLE_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Ask with `request` until the answer is not Podman's transient `stopped` state.
pub(super) async fn settled<T, F>(
    mut request: impl FnMut() -> F,
) -> Result<T, bollard::errors::Error>
where
    F: std::future::Future<Output = Result<T, bollard::errors::Error>>,
{
    let mut tries = 0;
    loop {
        match request().await {
            Err(e) if is_podman_stopped(&e) && tries < SETTLE_TRIES => tries += 1,
            other => return other,
        }
        tokio::time::sleep(SETTLE_PAUSE).await;
    }
}

pub(super) fn is_podman_stopped(e: &bollard::errors::Error) -> bool {
    matches!(e, bollard::errors::Error::JsonDataError { message, .. }
        if message.contains("unknown variant `stopped`"))
}

pub(super) fn is_not_found(e: &bollard::errors::Error) -> bool {
    matches!(
        e,
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404,
            ..
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_out_of_files_or_space_is_not_an_unreachable_engine() {
        for (code, says) in [
            (libc::EMFILE, "open files"),
            (libc::ENFILE, "open files"),
            (libc::ENOSPC, "no space left"),
        ] {
            let e = bollard::errors::Error::IOError {
                err: std::io::Error::from_raw_os_error(code),
            };
            let e = RuntimeError::from(e);
            assert!(matches!(e, RuntimeError::Exhausted(_)), "{e:?}");
            assert!(e.to_string().contains(says), "{e}");
        }
        let refused = bollard::errors::Error::IOError {
            err: std::io::Error::from_raw_os_error(libc::ECONNREFUSED),
        };
        assert!(matches!(
            RuntimeError::from(refused),
            RuntimeError::Unreachable(_)
        ));
    }

    #[test]
    fn podman_stopped_is_told_from_other_errors() {
        let json = |message: &str| bollard::errors::Error::JsonDataError {
            message: message.to_string(),
            column: 178,
        };
        assert!(is_podman_stopped(&json(
            "unknown variant `stopped`, expected one of ``, `created`, `running`"
        )));
        assert!(!is_podman_stopped(&json("unknown variant `sleepy`")));
        assert!(!is_podman_stopped(
            &bollard::errors::Error::DockerResponseServerError {
                status_code: 404,
                message: "unknown variant `stopped`".into(),
            }
        ));
    }
}

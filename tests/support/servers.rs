//! Finding the real servers the discovery tests start (dnsmasq, etcd), and skipping loudly
//! without them. Included by `tests/dns.rs` and `tests/etcd.rs` with `#[path]`.

use std::path::PathBuf;
use std::process::Command;

/// The server binary to run: `$env_var`, else `name` on `PATH`, else the first of `known`
/// that exists; it must answer `--version`. `Err` says why there is none, with `hint`.
pub(crate) fn server_binary(
    env_var: &str,
    name: &str,
    known: &[&str],
    hint: &str,
) -> Result<PathBuf, String> {
    let bin = match std::env::var_os(env_var) {
        Some(bin) => PathBuf::from(bin),
        None => {
            let on_path: Vec<PathBuf> = std::env::var_os("PATH")
                .map(|path| {
                    std::env::split_paths(&path)
                        .map(|dir| dir.join(name))
                        .collect()
                })
                .unwrap_or_default();
            match on_path
                .into_iter()
                .chain(known.iter().map(PathBuf::from))
                .find(|p| p.is_file())
            {
                Some(bin) => bin,
                None => {
                    return Err(format!(
                        "no {name} on PATH or at {} ({hint}, or set {env_var})",
                        known.join(" or ")
                    ));
                }
            }
        }
    };
    match Command::new(&bin).arg("--version").output() {
        Ok(out) if out.status.success() => Ok(bin),
        Ok(out) => Err(format!(
            "{} --version failed: {}",
            bin.display(),
            out.status
        )),
        Err(e) => Err(format!("cannot run {}: {e}", bin.display())),
    }
}

/// Skips the calling test for want of a server: loudly, or as a failure when
/// `TOWER_MESH_REQUIRE_SERVERS` is set, so that CI cannot pass by testing nothing. `what` names
/// what went untested.
pub(crate) fn skip<T>(what: &str, why: &str) -> Option<T> {
    let required =
        std::env::var_os("TOWER_MESH_REQUIRE_SERVERS").is_some_and(|v| !v.is_empty() && v != "0");
    if required {
        panic!("TOWER_MESH_REQUIRE_SERVERS is set, but {why}");
    }
    eprintln!(
        "\n!!! SKIPPED: {why}; {what} was NOT tested against a real server \
         (set TOWER_MESH_REQUIRE_SERVERS=1 to make this a failure) !!!\n"
    );
    None
}

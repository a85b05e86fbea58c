//! Read-only hardening of every qwen process: the system settings file boo writes,
//! the `--exclude-tools` list, and the sandboxing guard process that runs qwen under
//! Landlock and takes the whole agent process tree down with it.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Tools an agent may use: reading and searching files.
pub const ALLOWED_TOOLS: &[&str] = &["read_file", "grep_search", "glob"];

/// Every other tool qwen 0.24 knows: writers, shells, worktrees, the web, memory,
/// sub-agents, scheduling. Denied in the settings file AND excluded on the command line.
pub const DENIED_TOOLS: &[&str] = &[
    "write_file",
    "edit",
    "notebook_edit",
    "run_shell_command",
    "exec",
    "monitor",
    "enter_worktree",
    "exit_worktree",
    "web_fetch",
    "web_search",
    "save_memory",
    "todo_write",
    "agent",
    "skill",
    "workflow",
    "artifact",
    "record_artifact",
    "record_source",
    "report_findings",
    "send_message",
    "task_stop",
    "list_agents",
    "get_goal",
    "update_goal",
    "propose_goal",
    "read_mcp_resource",
    "zoom_image",
    "cron_create",
    "cron_list",
    "cron_delete",
    "loop_wakeup",
    "lsp",
    "ask_user_question",
    "create_sub_session",
    "image_gen",
    "display_image",
    "tool_search",
    "tool_call",
    // Offered over ACP (`qwen --acp`); leaving plan mode would ask the client.
    "enter_plan_mode",
    "exit_plan_mode",
];

/// The name of boo's MCP server in an agent's settings: its tools reach the model as
/// `mcp__boo__<tool>`.
pub const MCP_SERVER_NAME: &str = "boo";

/// The tools boo's MCP server offers (all read-only for the agent: they start and
/// read background children, which run under the same read-only layers).
pub const MCP_TOOLS: &[&str] = &["spawn_subagent", "subagent_status", "subagent_result"];

/// Whether an agent may be offered `tool`: the read/search tools, and boo's own MCP
/// tools when the step was given boo's MCP server. qwen names them
/// `mcp__boo__<tool>` to the model and in headless `init`, and `boo__<tool>` in the
/// ACP context usage (measured with 0.24.4).
pub fn tool_allowed(tool: &str, mcp: bool) -> bool {
    if ALLOWED_TOOLS.contains(&tool) {
        return true;
    }
    mcp && tool
        .strip_prefix("mcp__")
        .unwrap_or(tool)
        .strip_prefix(MCP_SERVER_NAME)
        .and_then(|rest| rest.strip_prefix("__"))
        .is_some_and(|t| MCP_TOOLS.contains(&t))
}

/// The system settings boo hands to qwen (`QWEN_CODE_SYSTEM_SETTINGS_PATH`). System
/// settings override the user's and the repository's own. With `mcp` (a step allowed
/// to spawn) they add boo's MCP server, trusted, and allow no other MCP server; hooks
/// stay off (QWEN.md, "MCP tools for a plan-mode agent": trusting the folder, which
/// qwen requires before it runs an MCP tool in plan mode, would otherwise let the
/// repository's own `.qwen/settings.json` add hooks and servers).
pub fn system_settings(model: Option<&str>, images: bool, mcp: Option<&super::McpServer>) -> Value {
    let mut v = json!({
        "security": {
            "auth": { "selectedType": "openai" },
            "folderTrust": { "enabled": true }
        },
        "privacy": { "usageStatisticsEnabled": false },
        "telemetry": { "enabled": false },
        "general": { "enableAutoUpdate": false, "chatRecording": false },
        "memory": {
            "enableManagedAutoMemory": false,
            "enableManagedAutoDream": false,
            "enableAutoSkill": false
        },
        "ui": { "enableFollowupSuggestions": false },
        "disableAllHooks": true,
        "mcpServers": {},
        "tools": {
            "approvalMode": "plan",
            "disabled": DENIED_TOOLS,
        },
        "permissions": { "deny": DENIED_TOOLS },
        "$version": 4
    });
    if let Some(m) = model {
        v["model"] = json!({ "name": m });
    }
    // qwen forwards images only to a model it believes takes them; for ids it does
    // not know it must be told (QWEN.md, "Images"). Only for prompts with images.
    if images {
        v["model"]["generationConfig"] = json!({ "modalities": { "image": true } });
    }
    if let Some(m) = mcp {
        v["mcpServers"] = json!({
            MCP_SERVER_NAME: {
                "command": m.program,
                "args": ["mcp", "--socket", m.socket],
                "env": { "BOO_MCP_TOKEN": m.token },
                "trust": true,
                "timeout": 60000
            }
        });
        v["mcp"] = json!({ "allowed": [MCP_SERVER_NAME] });
    }
    v
}

/// qwen's trusted-folders file for an agent allowed to spawn: `root` (the run's
/// snapshot) is trusted for this agent only (`QWEN_CODE_TRUSTED_FOLDERS_PATH`).
pub fn trusted_folders(root: &Path) -> Value {
    let mut m = serde_json::Map::new();
    m.insert(root.display().to_string(), json!("TRUST_FOLDER"));
    Value::Object(m)
}

/// The agent's private scratch space under boo's data directory.
pub struct AgentHome {
    pub root: PathBuf,
    pub qwen_home: PathBuf,
    pub tmp: PathBuf,
    pub settings: PathBuf,
    /// Steps allowed to spawn: qwen's trusted-folders file (the project trusted for
    /// this agent only) and boo's executable, which the sandbox must let the agent run
    /// as its MCP server. `None` for every other step.
    pub mcp: Option<(PathBuf, PathBuf)>,
}

impl AgentHome {
    /// The scratch space of an agent; with `mcp` (root, server) a step allowed to
    /// spawn: boo's MCP server in its settings and `root` trusted for it alone.
    pub fn create_for(
        data_dir: &Path,
        chat_id: &str,
        model: Option<&str>,
        images: bool,
        mcp: Option<(&Path, &super::McpServer)>,
    ) -> std::io::Result<AgentHome> {
        let root = data_dir.join("agents").join(chat_id);
        let mut home = AgentHome {
            qwen_home: root.join("qwen-home"),
            tmp: root.join("tmp"),
            settings: root.join("system-settings.json"),
            root,
            mcp: None,
        };
        std::fs::create_dir_all(&home.qwen_home)?;
        std::fs::create_dir_all(&home.tmp)?;
        let text =
            serde_json::to_string_pretty(&system_settings(model, images, mcp.map(|(_, m)| m)))
                .unwrap_or_default();
        write_private(&home.settings, &text)?;
        if let Some((project, server)) = mcp {
            let path = home.root.join("trusted-folders.json");
            let text = serde_json::to_string(&trusted_folders(project)).unwrap_or_default();
            write_private(&path, &text)?;
            home.mcp = Some((path, server.program.clone()));
        }
        Ok(home)
    }

    /// Removes the scratch space (best effort) once the step ended.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

/// Writes a file only its owner can read (the settings may carry a step's secret).
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

/// The scratch folder name of a warm pool process (`pool-<pid>-<start>-<uuid>`): it
/// names the boo server that owns the process (pid and start time), because a pool
/// process outlives any one step, so no running chat vouches for it.
pub fn pool_home_name() -> String {
    let pid = std::process::id() as i64;
    let start = super::process::pid_start_time(pid).unwrap_or(0);
    format!("pool-{pid}-{start}-{}", uuid::Uuid::now_v7())
}

/// True when `name` is a pool folder whose boo server is still alive (same pid, same
/// start time).
fn pool_owner_alive(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("pool-") else {
        return false;
    };
    let mut parts = rest.splitn(3, '-');
    let pid = parts.next().and_then(|p| p.parse::<i64>().ok());
    let start = parts.next().and_then(|s| s.parse::<i64>().ok());
    match (pid, start) {
        (Some(pid), Some(start)) => super::process::same_process(pid, Some(start)),
        _ => false,
    }
}

/// Removes agent scratch directories (`<data_dir>/agents/<chat>`) left behind by a
/// crash: every one whose chat is not in `running` (the chats of steps running now,
/// on any server) and that is not the folder of a pool process whose server still
/// runs ([`pool_home_name`]). Returns how many were removed.
pub fn collect_stale_homes(data_dir: &Path, running: &std::collections::HashSet<String>) -> usize {
    let Ok(dir) = std::fs::read_dir(data_dir.join("agents")) else {
        return 0;
    };
    let mut removed = 0;
    for entry in dir.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        let live = running.contains(&name) || pool_owner_alive(&name);
        if is_dir && !live && std::fs::remove_dir_all(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// How strictly the OS sandbox is applied (`BOO_SANDBOX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxMode {
    /// Use Landlock when the kernel has it; record `unavailable` otherwise.
    Auto,
    /// Refuse to run agents without Landlock (fail closed).
    Required,
}

impl SandboxMode {
    /// Parses `BOO_SANDBOX` (absent or empty means `auto`).
    pub fn parse(value: Option<&str>) -> Result<SandboxMode, String> {
        match value.map(str::trim) {
            None | Some("") | Some("auto") => Ok(SandboxMode::Auto),
            Some("required") => Ok(SandboxMode::Required),
            Some(other) => Err(format!(
                "BOO_SANDBOX={other:?} is not a sandbox mode: use \"auto\" (default) or \"required\""
            )),
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxMode::Auto => "auto",
            SandboxMode::Required => "required",
        }
    }
}

/// What every agent may read besides the project, its scratch space and its own
/// installation: the system's programs and libraries, certificates, name resolution,
/// the user and group tables, and the kernel's views of the process. Nothing else of
/// `/etc` (no `/etc/shadow`), nothing of any home directory, no other project.
pub const SYSTEM_READABLE: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/opt/homebrew",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/pki",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/resolv.conf",
    "/run/systemd/resolve",
    "/etc/hosts",
    "/etc/host.conf",
    "/etc/nsswitch.conf",
    "/etc/gai.conf",
    "/etc/localtime",
    "/etc/timezone",
    "/etc/passwd",
    "/etc/group",
    "/etc/gitconfig",
    "/etc/mime.types",
    "/etc/os-release",
    "/proc",
    "/sys",
    "/dev",
];

/// The installation a program runs from, as directories to leave readable: for the
/// program and each interpreter its `#!` line names (followed through `env` and
/// through scripts that are themselves interpreted, a few levels deep), the folder
/// it lives in — or, when that folder is a `bin`, `sbin`, `shims` or `libexec`, the
/// prefix above it (so `<prefix>/bin/qwen` brings `<prefix>` with its libraries).
pub fn install_roots(program: &Path, search_path: Option<&std::ffi::OsStr>) -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    let mut next = Some(program.to_path_buf());
    for _ in 0..4 {
        let Some(p) = next.take() else { break };
        let real = p.canonicalize().unwrap_or(p.clone());
        for file in [&p, &real] {
            if let Some(dir) = file.parent() {
                let prefix_dir = dir
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| matches!(n, "bin" | "sbin" | "shims" | "libexec"));
                let root = if prefix_dir {
                    dir.parent().unwrap_or(dir)
                } else {
                    dir
                };
                let root = root.to_path_buf();
                if !roots.contains(&root) && root != Path::new("/") {
                    roots.push(root);
                }
            }
        }
        next = interpreter_of(&real, search_path);
    }
    roots
}

/// The interpreter a script's `#!` line names (`env NAME` looked up on the path).
fn interpreter_of(script: &Path, search_path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(script).ok()?.read(&mut head).ok()?;
    let line = std::str::from_utf8(&head[..n]).ok()?.lines().next()?;
    let mut words = line.strip_prefix("#!")?.split_whitespace();
    let first = PathBuf::from(words.next()?);
    if first.file_name().is_some_and(|f| f == "env") {
        let name = words.find(|w| !w.starts_with('-'))?;
        std::env::split_paths(search_path?)
            .map(|d| d.join(name))
            .find(|c| c.is_file())
    } else {
        Some(first)
    }
}

/// The children of `parent` (from /proc; a process that vanishes meanwhile is skipped).
fn children_of(parent: i32) -> Vec<i32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            // `pid (comm) state ppid …`: comm may hold spaces and parentheses.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = &s[s.rfind(')')? + 1..];
                    rest.split_whitespace().nth(1)?.parse::<i32>().ok()
                })
                == Some(parent)
        })
        .collect()
}

/// Kills (SIGKILL) the guard's children that left its process group.
fn kill_escaped() {
    // SAFETY: plain process-control calls on our own children.
    unsafe {
        let (guard_pid, pgrp) = (libc::getpid(), libc::getpgrp());
        for pid in children_of(guard_pid) {
            if libc::getpgid(pid) != pgrp {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Kills every process the agent left behind — its process group, and every orphan
/// the guard inherited as their subreaper — and reaps them, until none is left (or
/// a bound of 5 s passes).
fn kill_descendants() {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    // SAFETY: plain process-control calls on our own group and children.
    unsafe {
        let guard_pid = libc::getpid();
        loop {
            let children = children_of(guard_pid);
            if children.is_empty() || std::time::Instant::now() > deadline {
                return;
            }
            // Child by child (a group kill would hit the guard itself); their own
            // children come to us when they die, and the next round takes them.
            for pid in children {
                libc::kill(pid, libc::SIGKILL);
            }
            let mut status = 0;
            while libc::waitpid(-1, &mut status, libc::WNOHANG) > 0 {}
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

/// Landlock ABI version of the running kernel, if it has Landlock.
pub fn landlock_abi() -> Option<i64> {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only queries.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    (v > 0).then_some(v)
}

/// Applies Landlock to this process (and so everything it starts): the whole file
/// system readable — or, when `readable` is given, only those paths (and the writable
/// ones) — and only `writable` writable. Paths that do not exist are left out.
/// Returns "enforced", "partial" or "unavailable".
fn restrict(
    writable: &[PathBuf],
    readable: &[PathBuf],
    connect_port: Option<u16>,
) -> Result<&'static str, String> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, AccessNet, NetPort, Ruleset, RulesetAttr,
        RulesetCreatedAttr, RulesetStatus, ABI,
    };
    let abi = ABI::V5;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| match connect_port {
            // TCP connections only to the model proxy (kernel ABI 4 and later).
            Some(_) => r.handle_access(AccessNet::ConnectTcp),
            None => Ok(r),
        })
        .and_then(|r| r.create())
        .and_then(|r| match connect_port {
            Some(port) => r.add_rule(NetPort::new(port, AccessNet::ConnectTcp)),
            None => Ok(r),
        })
        .and_then(|r| {
            let reads: Vec<PathBuf> = if readable.is_empty() {
                vec![PathBuf::from("/")]
            } else {
                readable.iter().filter(|p| p.exists()).cloned().collect()
            };
            r.add_rules(path_beneath_rules(reads, AccessFs::from_read(abi)))
        })
        .and_then(|r| {
            let writes: Vec<&PathBuf> = writable.iter().filter(|p| p.exists()).collect();
            r.add_rules(path_beneath_rules(writes, AccessFs::from_all(abi)))
        })
        .and_then(|r| r.restrict_self())
        .map_err(|e| format!("cannot apply the Landlock sandbox: {e}"))?;
    Ok(match status.ruleset {
        RulesetStatus::FullyEnforced => "enforced",
        RulesetStatus::PartiallyEnforced => "partial",
        RulesetStatus::NotEnforced => "unavailable",
    })
}

/// `boo agent-guard`: runs between boo and qwen. It dies with boo (parent-death
/// signal) and then kills its whole process group; it applies the sandbox before it
/// starts qwen; it relays qwen's exit status (a signal N becomes 128+N). It tells boo
/// what sandbox holds in one JSON line on `report_fd` (boo passes a pipe of its own,
/// so the agent's stdout carries the agent's bytes only and nothing the agent prints
/// can pose as the guard); without `report_fd` (a person running it by hand) the line
/// goes to stdout.
#[allow(clippy::too_many_arguments)]
pub fn agent_guard(
    parent: u32,
    mode: &str,
    writable: Vec<PathBuf>,
    readable: Vec<PathBuf>,
    connect_port: Option<u16>,
    report_fd: Option<i32>,
    argv: Vec<String>,
) -> i32 {
    use std::io::Write;
    // SAFETY: plain process-control calls on this process.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
        if libc::getppid() as u32 != parent {
            return 70;
        }
        // Orphans of the agent come to the guard instead of init, even those that
        // left the process group with setsid(): none of them outlives the guard.
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1);
    }
    let Some((program, args)) = argv.split_first() else {
        eprintln!("boo agent-guard: no program to run");
        return 64;
    };
    // Block the stop signals here; they are collected below with sigtimedwait.
    // SAFETY: sigset manipulation on local storage.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    unsafe {
        libc::sigemptyset(&mut set);
        // SIGCHLD too: the guard wakes the moment its child exits, not at a poll.
        for s in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP, libc::SIGCHLD] {
            libc::sigaddset(&mut set, s);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
    let sandbox = if landlock_abi().is_none() {
        "unavailable"
    } else {
        match restrict(&writable, &readable, connect_port) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("boo agent-guard: {e}");
                "unavailable"
            }
        }
    };
    // The network rule holds when Landlock was applied on a kernel with net rules.
    let network = match connect_port {
        Some(port) if sandbox != "unavailable" && landlock_abi().is_some_and(|a| a >= 4) => {
            format!("tcp-connect only to 127.0.0.1:{port} (the model proxy)")
        }
        Some(_) => "off (needs Landlock ABI 4)".to_string(),
        None => "off (no model proxy)".to_string(),
    };
    let line = json!({"type": "boo_guard", "sandbox": sandbox, "abi": landlock_abi(),
        "mode": mode, "network": network});
    match report_fd {
        Some(fd) if fd > 2 => {
            use std::os::fd::FromRawFd;
            // SAFETY: boo handed this descriptor to the guard for this line alone; the
            // File owns it from here and closes it, so qwen never inherits it.
            let mut report = unsafe { std::fs::File::from_raw_fd(fd) };
            let _ = writeln!(report, "{line}");
        }
        _ => {
            let mut out = std::io::stdout();
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
    if mode == "required" && sandbox != "enforced" {
        eprintln!("boo agent-guard: the OS sandbox is required (BOO_SANDBOX=required) but Landlock is {sandbox} on this kernel; the agent was not started");
        return 78;
    }
    let mut cmd = std::process::Command::new(program);
    cmd.args(args);
    let unblock = set;
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        use std::os::unix::process::CommandExt;
        cmd.pre_exec(move || {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &unblock, std::ptr::null_mut());
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("boo agent-guard: cannot start {program}: {e}");
            return 127;
        }
    };
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                use std::os::unix::process::ExitStatusExt;
                // The agent is done: whatever it left running goes with it.
                kill_descendants();
                return status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            }
            Ok(None) => {}
            Err(_) => {
                kill_descendants();
                return 70;
            }
        }
        let ts = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        // SAFETY: waits for one of the blocked signals, at most 1 s.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
        if sig > 0 && sig != libc::SIGCHLD {
            // boo is gone or asked us to stop: take the whole group down. What
            // escaped the group (setsid) gets no grace period.
            kill_escaped();
            // SAFETY: signals our own process group (the guard blocks SIGTERM).
            unsafe {
                let pgrp = libc::getpgrp();
                libc::kill(-pgrp, libc::SIGTERM);
                for _ in 0..40 {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
            }
            // Then SIGKILL for whatever is left — child by child, never the group:
            // the guard is in that group, and killing itself here would orphan an
            // escapee that reached it only after `kill_escaped` looked (its parent
            // was still alive then).
            kill_descendants();
            return 128 + sig;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boo_mcp_tools_are_allowed_only_with_boo_mcp_server() {
        for t in [
            "mcp__boo__spawn_subagent",
            "boo__subagent_result",
            "boo__subagent_status",
        ] {
            assert!(tool_allowed(t, true), "{t}");
            assert!(!tool_allowed(t, false), "{t}");
        }
        for t in [
            "mcp__evil__spawn_subagent",
            "evil__x",
            "mcp__boo__write_file",
            "write_file",
            "mcp__boox__spawn_subagent",
        ] {
            assert!(!tool_allowed(t, true), "{t}");
        }
        assert!(tool_allowed("read_file", false));
    }

    #[test]
    fn stale_scratch_directories_are_collected_and_running_ones_kept() {
        let data = std::env::temp_dir().join(format!("boo-homes-{}", std::process::id()));
        for chat in ["running-chat", "crashed-chat"] {
            AgentHome::create_for(&data, chat, None, false, None).unwrap();
        }
        // A warm pool process of a live server (this test process) is kept; one whose
        // server is gone (no such pid) is collected.
        let live_pool = pool_home_name();
        let dead_pool = format!("pool-4194999-1-{}", uuid::Uuid::now_v7());
        for name in [&live_pool, &dead_pool] {
            AgentHome::create_for(&data, name, None, false, None).unwrap();
        }
        let running = std::collections::HashSet::from(["running-chat".to_string()]);
        assert_eq!(collect_stale_homes(&data, &running), 2);
        assert!(data.join("agents/running-chat").is_dir());
        assert!(!data.join("agents/crashed-chat").exists());
        assert!(data.join("agents").join(&live_pool).is_dir());
        assert!(!data.join("agents").join(&dead_pool).exists());
        assert_eq!(collect_stale_homes(&data, &running), 0);
        let _ = std::fs::remove_dir_all(&data);
    }

    #[test]
    fn settings_tell_qwen_the_model_takes_images_only_for_prompts_with_images() {
        let plain = system_settings(Some("m"), false, None);
        assert!(plain["model"].get("generationConfig").is_none(), "{plain}");
        let with = system_settings(Some("m"), true, None);
        assert_eq!(with["model"]["name"], "m");
        assert_eq!(
            with["model"]["generationConfig"]["modalities"]["image"],
            true
        );
        let unnamed = system_settings(None, true, None);
        assert_eq!(
            unnamed["model"]["generationConfig"]["modalities"]["image"],
            true
        );
        // The rest of the hardening is the same.
        assert_eq!(plain["permissions"], with["permissions"]);
        assert_eq!(plain["tools"], with["tools"]);
    }

    #[test]
    fn settings_leave_only_read_tools() {
        let s = system_settings(Some("m"), false, None);
        let denied: Vec<&str> = s["permissions"]["deny"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for t in [
            "write_file",
            "edit",
            "run_shell_command",
            "enter_worktree",
            "web_fetch",
            "save_memory",
            "agent",
        ] {
            assert!(denied.contains(&t), "{t} must be denied");
        }
        for t in ALLOWED_TOOLS {
            assert!(!denied.contains(t));
        }
        assert_eq!(s["security"]["folderTrust"]["enabled"], true);
        assert_eq!(s["tools"]["approvalMode"], "plan");
        assert_eq!(s["memory"]["enableManagedAutoMemory"], false);
        assert_eq!(s["privacy"]["usageStatisticsEnabled"], false);
        assert_eq!(s["model"]["name"], "m");
    }
}

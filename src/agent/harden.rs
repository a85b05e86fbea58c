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

/// The system settings boo hands to qwen (`QWEN_CODE_SYSTEM_SETTINGS_PATH`). System
/// settings override the user's and the repository's own.
pub fn system_settings(model: Option<&str>) -> Value {
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
    v
}

/// The agent's private scratch space under boo's data directory.
pub struct AgentHome {
    pub root: PathBuf,
    pub qwen_home: PathBuf,
    pub tmp: PathBuf,
    pub settings: PathBuf,
}

impl AgentHome {
    pub fn create(
        data_dir: &Path,
        chat_id: &str,
        model: Option<&str>,
    ) -> std::io::Result<AgentHome> {
        let root = data_dir.join("agents").join(chat_id);
        let home = AgentHome {
            qwen_home: root.join("qwen-home"),
            tmp: root.join("tmp"),
            settings: root.join("system-settings.json"),
            root,
        };
        std::fs::create_dir_all(&home.qwen_home)?;
        std::fs::create_dir_all(&home.tmp)?;
        let text = serde_json::to_string_pretty(&system_settings(model)).unwrap_or_default();
        std::fs::write(&home.settings, text)?;
        Ok(home)
    }

    /// Removes the scratch space (best effort) once the step ended.
    pub fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
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
/// system readable, only `writable` writable. Returns "enforced", "partial" or
/// "unavailable".
fn restrict(writable: &[PathBuf]) -> Result<&'static str, String> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, Ruleset, RulesetAttr, RulesetCreatedAttr,
        RulesetStatus, ABI,
    };
    let abi = ABI::V5;
    let status = Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .and_then(|r| r.create())
        .and_then(|r| r.add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi))))
        .and_then(|r| r.add_rules(path_beneath_rules(writable, AccessFs::from_all(abi))))
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
pub fn agent_guard(
    parent: u32,
    mode: &str,
    writable: Vec<PathBuf>,
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
        match restrict(&writable) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("boo agent-guard: {e}");
                "unavailable"
            }
        }
    };
    let line =
        json!({"type": "boo_guard", "sandbox": sandbox, "abi": landlock_abi(), "mode": mode});
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
                return status
                    .code()
                    .unwrap_or_else(|| 128 + status.signal().unwrap_or(0));
            }
            Ok(None) => {}
            Err(_) => return 70,
        }
        let ts = libc::timespec {
            tv_sec: 1,
            tv_nsec: 0,
        };
        // SAFETY: waits for one of the blocked signals, at most 1 s.
        let sig = unsafe { libc::sigtimedwait(&set, std::ptr::null_mut(), &ts) };
        if sig > 0 && sig != libc::SIGCHLD {
            // boo is gone or asked us to stop: take the whole group down.
            // SAFETY: signals our own process group.
            unsafe {
                let pgrp = libc::getpgrp();
                libc::kill(-pgrp, libc::SIGTERM);
                for _ in 0..40 {
                    if let Ok(Some(_)) = child.try_wait() {
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                libc::kill(-pgrp, libc::SIGKILL);
            }
            return 128 + sig;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_leave_only_read_tools() {
        let s = system_settings(Some("m"));
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

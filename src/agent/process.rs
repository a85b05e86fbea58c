//! Process-group plumbing for agent processes: start in a new group that dies with us,
//! stop the whole group (TERM, grace, KILL), and recognise a recorded group after a
//! crash without being fooled by pid reuse.

use std::time::Duration;

/// The start time of a process (field 22 of `/proc/<pid>/stat`), to tell a recorded
/// process from a later one that reused its pid.
pub fn pid_start_time(pid: i64) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// True when `pid` is alive and is the same process that was recorded.
pub fn same_process(pid: i64, recorded_start: Option<i64>) -> bool {
    match (pid_start_time(pid), recorded_start) {
        (Some(now), Some(then)) => now == then,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Sends `sig` to every process of group `pgid`. Errors (e.g. the group is empty) are ignored.
pub fn signal_group(pgid: i64, sig: i32) {
    if pgid > 1 {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
        unsafe {
            libc::kill(-(pgid as libc::pid_t), sig);
        }
    }
}

/// True while any live (not zombie) process of the group exists. Zombies count as
/// gone: they hold no resources and may wait long for a reaper.
pub fn group_alive(pgid: i64) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: signal 0 only checks for existence.
    if unsafe { libc::kill(-(pgid as libc::pid_t), 0) } != 0 {
        return false;
    }
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return true;
    };
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the command name: state (3), ppid (4), pgrp (5).
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let pgrp = f.nth(1).and_then(|p| p.parse::<i64>().ok());
        if pgrp == Some(pgid) && state != "Z" && state != "X" {
            return true;
        }
    }
    false
}

/// The resident memory of every live process of group `pgid`: (bytes, processes).
pub fn group_rss(pgid: i64) -> (u64, usize) {
    if pgid <= 1 {
        return (0, 0);
    }
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return (0, 0);
    };
    let (mut bytes, mut procs) = (0, 0);
    for e in rd.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let pgrp = f.nth(1).and_then(|p| p.parse::<i64>().ok());
        if pgrp != Some(pgid) || state == "Z" || state == "X" {
            continue;
        }
        // Field 2 of statm: resident pages.
        if let Some(rss) = std::fs::read_to_string(format!("/proc/{pid}/statm"))
            .ok()
            .and_then(|s| {
                s.split_whitespace()
                    .nth(1)
                    .and_then(|r| r.parse::<u64>().ok())
            })
        {
            bytes += rss * page;
            procs += 1;
        }
    }
    (bytes, procs)
}

/// TERM the group, give it `grace`, then KILL whatever is left.
pub async fn stop_group(pgid: i64, grace: Duration) {
    signal_group(pgid, libc::SIGTERM);
    let deadline = tokio::time::Instant::now() + grace;
    while group_alive(pgid) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    signal_group(pgid, libc::SIGKILL);
}

/// Kills a group recorded by an earlier server if its leader is still the same process.
/// Members whose leader is already gone are found by their process group id.
pub fn kill_stale_group(pgid: i64, recorded_start: Option<i64>) -> bool {
    if pgid <= 1 {
        return false;
    }
    let leader_same = same_process(pgid, recorded_start);
    let leader_gone = pid_start_time(pgid).is_none();
    if leader_same || (leader_gone && group_alive(pgid)) {
        signal_group(pgid, libc::SIGKILL);
        return true;
    }
    false
}

/// Configures a command so its process starts a new process group and receives
/// SIGKILL if the thread that started it (and so this server) dies.
pub fn harden_child(cmd: &mut tokio::process::Command) {
    cmd.process_group(0);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs in the child between fork and exec and only calls
    // async-signal-safe functions (prctl, getppid).
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // If the parent died before prctl took effect, do not run orphaned.
            if libc::getppid() != parent {
                return Err(std::io::Error::other("parent exited"));
            }
            Ok(())
        });
    }
    cmd.kill_on_drop(true);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn start_time_identifies_a_process() {
        let me = std::process::id() as i64;
        let t = pid_start_time(me);
        assert!(t.is_some());
        assert!(same_process(me, t));
        assert!(!same_process(me, t.map(|x| x + 1)));
        assert!(!same_process(999_999_999, None));
    }

    #[test]
    fn a_group_s_memory_is_summed_over_its_processes() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30"])
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i64;
        // Both sleeps and the shell: give the shell a moment to start its children.
        let mut seen = (0, 0);
        for _ in 0..100 {
            seen = group_rss(pgid);
            if seen.1 >= 3 {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(seen.1 >= 2 && seen.0 > 0, "{seen:?}");
        signal_group(pgid, libc::SIGKILL);
        let _ = child.wait();
        assert_eq!(group_rss(1), (0, 0));
    }

    #[tokio::test]
    async fn stopping_a_group_does_not_wait_for_zombies() {
        let mut cmd = tokio::process::Command::new("sh");
        cmd.args(["-c", "sleep 30 & sleep 30"]);
        cmd.process_group(0);
        let child = cmd.spawn().unwrap();
        let pgid = child.id().unwrap() as i64;
        assert!(group_alive(pgid));
        let t = std::time::Instant::now();
        // The leader stays an unreaped zombie here (nobody waits for it yet).
        stop_group(pgid, Duration::from_secs(5)).await;
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert!(!group_alive(pgid));
        drop(child);
    }
}

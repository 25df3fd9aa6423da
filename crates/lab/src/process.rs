//! Child processes `meridian up` starts: nodes and app instances. What both
//! need — dying with `up`, signals by pid, the tail of a log for an error
//! message — and nothing about what either runs.

use std::path::Path;

use tokio::process::Command;

/// Log lines shown when a process fails to start or exits.
pub const LOG_TAIL_LINES: usize = 20;

/// Makes the child die with `up` even if `up` is SIGKILLed
/// (`PR_SET_PDEATHSIG`). With `own_group`, the child also leads a process
/// group of its own, so a signal to the group reaches what a shell it runs
/// starts (`sh -c CMD`); the death signal still reaches only the child.
pub fn die_with_parent(cmd: &mut Command, own_group: bool) {
    // SAFETY: the closure runs in the forked child before exec and only
    // makes async-signal-safe calls (setpgid, prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            if own_group && libc::setpgid(0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            // The signal follows the thread that forked, which is a runtime
            // worker that lives as long as `up` does.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() == 1 {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Sends `signal` to `pid`, or to its whole process group with `group`.
/// Callers pass only pids of children they have not reaped yet, so the pid
/// cannot belong to another process.
pub fn send_signal(pid: u32, signal: i32, group: bool) {
    let target = if group { -(pid as i32) } else { pid as i32 };
    // SAFETY: a plain syscall on a pid (group) we own.
    unsafe { libc::kill(target, signal) };
}

/// Last lines of a log, for error messages.
pub fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(LOG_TAIL_LINES);
    lines[start..].join("\n")
}

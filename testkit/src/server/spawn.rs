//! Spawning `redis-server` so that it dies with the test process.
//!
//! On Linux every server is spawned with a parent-death signal
//! (`prctl(PR_SET_PDEATHSIG, SIGKILL)`): when the test binary dies, even by
//! `SIGKILL` where no destructor runs, the kernel kills its servers too.
//!
//! The kernel sends that signal when the *thread* that forked the child
//! exits, not the process. Test threads come and go (a server kept in a
//! `static` would be killed when the test that started it returns), so all
//! servers are forked by one spawner thread that lives as long as the
//! process.
//!
//! Elsewhere than Linux there is no such signal: a killed test binary leaves
//! its servers running (a normal exit or a panic still stops them, by
//! `Drop`).

use std::io;
use std::process::{Child, Command};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;

type Job = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `command` from the long-lived spawner thread, with the
/// parent-death signal armed on Linux.
pub(super) fn spawn(mut command: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<mpsc::Sender<Job>> = OnceLock::new();
    #[cfg(target_os = "linux")]
    parent_death::arm(&mut command);
    let spawner = SPAWNER.get_or_init(|| {
        let (jobs, inbox) = mpsc::channel::<Job>();
        thread::Builder::new()
            .name("redpoll-testkit-spawner".into())
            .spawn(move || {
                for (mut command, reply) in inbox {
                    // The caller may have gone (it panicked): nothing to do.
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawn the spawner thread");
        jobs
    });
    let gone = || io::Error::other("the redpoll-testkit spawner thread is gone");
    let (reply, answer) = mpsc::channel();
    spawner.send((command, reply)).map_err(|_| gone())?;
    answer.recv().map_err(|_| gone())?
}

#[cfg(target_os = "linux")]
mod parent_death {
    use std::ffi::{c_int, c_ulong};
    use std::io;
    use std::os::unix::process::CommandExt;
    use std::process::Command;

    unsafe extern "C" {
        fn prctl(option: c_int, ...) -> c_int;
        fn getppid() -> c_int;
    }

    const PR_SET_PDEATHSIG: c_int = 1;
    const SIGKILL: c_ulong = 9;
    const ESRCH: i32 = 3;

    /// Arms `PR_SET_PDEATHSIG` = `SIGKILL` in the child, between fork and
    /// exec (the setting survives exec).
    pub(super) fn arm(command: &mut Command) {
        let parent = c_int::try_from(std::process::id()).unwrap_or(c_int::MAX);
        let hook = move || {
            // SAFETY: prctl(PR_SET_PDEATHSIG, sig) takes one unsigned long
            // argument and touches no memory of ours.
            if unsafe { prctl(PR_SET_PDEATHSIG, SIGKILL) } == -1 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl: then the
            // signal will never come, so do not start at all.
            // SAFETY: getppid has no preconditions.
            if unsafe { getppid() } != parent {
                return Err(io::Error::from_raw_os_error(ESRCH));
            }
            Ok(())
        };
        // SAFETY: the hook runs in the forked child before exec. It only
        // makes two async-signal-safe system calls and allocates nothing
        // (both error values are plain OS codes).
        unsafe {
            command.pre_exec(hook);
        }
    }
}

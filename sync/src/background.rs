//! Background threads: the lowest scheduling priority for work that must
//! never keep a sale, an order or a sync message from a core.
//!
//! The store's outbox drain prepares its automerge changes on such a
//! thread, and the hub's compactor saves its documents whole on one. On a
//! store PC's two cores, a background thread at the default priority (or
//! even at nice 19) still ran out its slice when the writer or the runtime
//! woke on its core; at Linux's `SCHED_IDLE` it gives the core up
//! (docs/DECISIONS.md, "The sale's tail"). It still runs whenever a core
//! is free.

/// The nice value taken before `SCHED_IDLE`, and kept where that policy
/// cannot be set (Linux; 0 is the default, 19 the lowest priority).
pub const NICE: i32 = 19;

/// Lowers the calling thread's scheduling priority (Linux; elsewhere it
/// does nothing): nice [`NICE`] first, then the `SCHED_IDLE` policy. The
/// order is measured, not reasoned: `SCHED_IDLE` set on a thread at nice 0
/// left `edge_bench` 5b's p99 at 2.8–3.2 ms, set after nice 19 at 1.0–1.2 ms
/// (the kernel, 6.18, reports the same policy and nice for both
/// afterwards). Only the calling thread changes; a pooled thread must not
/// call it.
pub fn lower_this_thread() {
    #[cfg(target_os = "linux")]
    {
        use thread_priority::unix::{
            NormalThreadSchedulePolicy, ThreadSchedulePolicy, set_thread_priority_and_policy,
            thread_native_id,
        };
        if let Err(e) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), NICE) {
            tracing::debug!(error = %e, "a background thread's nice value was not raised");
        }
        if let Err(e) = set_thread_priority_and_policy(
            thread_native_id(),
            thread_priority::ThreadPriority::Min,
            ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
        ) {
            tracing::debug!(error = ?e, "a background thread's policy was not set to SCHED_IDLE");
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    /// The thread's scheduling policy as the kernel has it (`/proc`'s
    /// `stat`, field 41: 0 normal, 5 `SCHED_IDLE`) and its nice value
    /// (field 19).
    fn policy_and_nice() -> (i64, i64) {
        let stat = std::fs::read_to_string("/proc/thread-self/stat").expect("/proc is mounted");
        // the command name (field 2) may hold spaces; count from after it
        let rest = &stat[stat.rfind(')').expect("a stat line") + 2..];
        let fields: Vec<&str> = rest.split(' ').collect();
        let field = |n: usize| fields[n - 3].parse::<i64>().expect("a number");
        (field(41), field(19))
    }

    #[test]
    fn a_background_thread_yields_to_every_other_thread() {
        let (policy, nice) = std::thread::spawn(|| {
            super::lower_this_thread();
            policy_and_nice()
        })
        .join()
        .expect("the thread ran");
        // SCHED_IDLE (which reports the nice value it was set with, 0),
        // or nice 19 where the policy cannot be set
        assert!(
            policy == 5 || (policy == 0 && nice == i64::from(super::NICE)),
            "policy {policy}, nice {nice}"
        );
        assert_eq!(policy_and_nice().0, 0, "only the calling thread changes");
    }
}

//! The C allocator's settings for this process. SQLite allocates from the C heap (its page
//! cache, statement journals); with glibc's defaults each commit's freed memory at the top of
//! the heap was handed back to the kernel (`brk`) and taken again by the next, with page faults
//! each time: 12% of the engine's time in `perf`, and a store 24% slower than with these
//! settings (BENCHMARKS.md, "The per-call path"). The process now keeps up to 8 MiB free at the
//! top of its heap and grows it 2 MiB at a time. An operator's own `MALLOC_TRIM_THRESHOLD_` or
//! `MALLOC_TOP_PAD_` wins.

/// Freed memory at the top of the heap kept rather than returned to the kernel.
const TRIM_THRESHOLD: i32 = 8 << 20;
/// Extra memory taken with each growth of the heap.
const TOP_PAD: i32 = 2 << 20;

/// Apply the settings; call once, first thing in `main`.
pub fn tune() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let set = |name: &str| std::env::var_os(name).is_some();
        if set("MALLOC_TRIM_THRESHOLD_") || set("MALLOC_TOP_PAD_") {
            return;
        }
        // SAFETY: mallopt only changes glibc's allocator parameters; called before any thread.
        unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, TRIM_THRESHOLD);
            libc::mallopt(libc::M_TOP_PAD, TOP_PAD);
        }
    }
}

//! Giving memory back to the system after large messages.
//!
//! The `rcelery` binary allocates with mimalloc, which returns freed memory to the system
//! lazily: a freed range is only decommitted once it has been free for `purge_delay` (1 s by
//! default) *and* the allocator next frees a page. An idle worker frees no pages, so after a
//! 50 MB message its resident memory stayed hundreds of MB above idle. Options could change
//! that only through the environment at process start (`MIMALLOC_PURGE_DELAY`, still
//! honoured) or through `unsafe` calls.
//!
//! Instead, the first large message starts a thread that, every [`TRIM_PERIOD`], allocates
//! and frees one block of [`NUDGE_BYTES`]: a block that size gets a page of its own, and
//! freeing it makes mimalloc purge every range whose delay has expired. With another
//! allocator this is a harmless allocation every few seconds.

use std::sync::Once;
use std::time::Duration;

/// Messages at least this large start the trimmer.
pub const LARGE: usize = 1024 * 1024;

/// How often the trimmer nudges the allocator: more than mimalloc's default purge delay.
pub const TRIM_PERIOD: Duration = Duration::from_millis(1500);

/// Size of the block allocated and freed each time: above mimalloc's largest size class
/// (512 KiB), so it has a page of its own, and small, since that page is only purged by the
/// next nudge.
const NUDGE_BYTES: usize = 1024 * 1024;

static TRIMMER: Once = Once::new();

/// Notes that a large buffer was allocated (a large message arrived): from now on, freed
/// memory is handed back to the system within about two [`TRIM_PERIOD`]s of being freed.
pub fn large_allocation_done() {
    TRIMMER.call_once(|| {
        let started = std::thread::Builder::new().name("rcelery-trim".into()).spawn(|| loop {
            std::thread::sleep(TRIM_PERIOD);
            trim();
        });
        if let Err(e) = started {
            tracing::warn!(error = %e, "cannot start the memory trimmer; freed memory may be returned late");
        }
    });
}

/// Lets mimalloc hand back to the system what has been free for longer than its purge
/// delay: one allocation and free that it sees as a page of its own (kept from being
/// optimized away).
pub fn trim() {
    drop(std::hint::black_box(Vec::<u8>::with_capacity(NUDGE_BYTES)));
}

//! What applying a crafted update costs in memory, measured by counting this thread's
//! allocations.
//!
//! yrs reserves room for declared counts before reading the elements, so a few bytes can make it
//! reserve hundreds of MiB; `apply_client_update` must refuse such updates before yrs sees them.
//! The measure is the peak of bytes allocated and not yet freed during the call, on the calling
//! thread only, so tests running in parallel do not disturb each other.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use dojo_sync_protocol::apply_client_update;
use dojo_sync_protocol::yrs::updates::decoder::Decode;
use dojo_sync_protocol::yrs::{Doc, Update};

struct Counting;

thread_local! {
    // Const-initialised cells of plain integers need no allocation and no destructor, so the
    // allocator can use them.
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn record(delta: isize) {
    let _ = LIVE.try_with(|live| {
        let now = live.get() + delta;
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to `System` unchanged; only the bookkeeping is added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            record(layout.size() as isize);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        record(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            record(new_size as isize - layout.size() as isize);
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Peak bytes allocated on this thread while `f` ran, above what was live before.
fn peak_allocated_by(f: impl FnOnce()) -> usize {
    let before = LIVE.with(Cell::get);
    PEAK.with(|peak| peak.set(before));
    f();
    (PEAK.with(Cell::get) - before).max(0) as usize
}

const MIB: usize = 1 << 20;

/// One item with an `Any` content of one value, in the root type "a", from client 1.
fn any_item(value: &[u8]) -> Vec<u8> {
    [&[1, 1, 1, 0, 8, 1, 1, b'a', 1][..], value].concat()
}

/// Crafted updates, each a count its bytes cannot hold.
fn crafted() -> Vec<(&'static str, Vec<u8>)> {
    // 2^20 as a varint.
    let huge = [0x80, 0x80, 0x40];
    vec![
        ("an object's key count", any_item(&[&[118][..], &huge].concat())),
        ("an array's item count", any_item(&[&[117][..], &huge].concat())),
        ("an array nested in an array", any_item(&[&[117, 2, 117][..], &huge, &[126]].concat())),
        ("the blocks of a client", [&[1][..], &huge, &[1, 0, 0]].concat()),
        ("the clients of an update", [&[0x80, 0x80, 0x80, 0x01][..]].concat()),
    ]
}

#[test]
fn yrs_alone_reserves_for_a_crafted_count() {
    // The meter sees the problem: decoding the first crafted update with yrs directly reserves
    // a map for 2^20 entries (tens of MiB) from 14 bytes, and then fails anyway.
    let (_, update) = &crafted()[0];
    let peak = peak_allocated_by(|| assert!(Update::decode_v1(update).is_err()));
    assert!(peak > 16 * MIB, "yrs reserved only {peak} bytes");
}

#[test]
fn crafted_counts_are_refused_before_yrs_reserves_for_them() {
    for (what, update) in crafted() {
        let doc = Doc::new();
        let mut result = None;
        let peak = peak_allocated_by(|| result = Some(apply_client_update(&doc, &update)));
        assert!(matches!(result, Some(Err(_))), "{what}: {result:?}");
        assert!(peak < 64 * 1024, "{what}: {peak} bytes allocated for a {}-byte update", update.len());
    }
}

#[test]
fn an_honest_update_costs_what_its_content_does() {
    // The bound is not a refusal of big counts: 100,000 values really present apply, and cost
    // memory in proportion to their bytes.
    let doc = Doc::with_client_id(3);
    let array = doc.get_or_insert_array("array");
    let update = {
        use dojo_sync_protocol::yrs::{Array, Transact};
        let mut txn = doc.transact_mut();
        array.insert_range(&mut txn, 0, (0..100_000).map(|i| i % 100));
        txn.encode_update_v1()
    };
    let target = Doc::new();
    let mut result = None;
    let peak = peak_allocated_by(|| result = Some(apply_client_update(&target, &update)));
    assert!(matches!(result, Some(Ok(Some(_)))), "{result:?}");
    assert!(peak > update.len(), "{peak} bytes for {} bytes of update", update.len());
}

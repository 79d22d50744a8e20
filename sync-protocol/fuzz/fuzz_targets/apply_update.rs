//! Applies arbitrary bytes to a fresh document as a client update, then does what the server
//! does next with that document: encode its state for a joining client, and apply the next
//! client's update. Those must work whatever the bytes were.
//!
//! libfuzzer-sys' panic hook aborts on every panic, even one that `catch_unwind` would catch.
//! Panics inside `apply_client_update` are caught by its guard by design (yrs is known to panic on
//! some updates, and the document survives them), so by default they are not reported: the
//! fuzzer then looks for what the guard does not cover. Set `DOJO_FUZZ_GUARDED_PANICS=1` to
//! report them too, for instance to collect yrs panics for an upstream report.
#![no_main]

use std::cell::Cell;

use dojo_sync_protocol::apply_client_update;
use dojo_sync_protocol::yrs::updates::decoder::Decode;
use dojo_sync_protocol::yrs::{Doc, ReadTxn, StateVector, Text, Transact, Update, WriteTxn};
use libfuzzer_sys::fuzz_target;

thread_local! {
    /// True while the fuzzed bytes are inside `apply_client_update`.
    static GUARDED: Cell<bool> = const { Cell::new(false) };
}

fuzz_target!(
    init: {
        if std::env::var_os("DOJO_FUZZ_GUARDED_PANICS").is_none() {
            let abort = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                if !GUARDED.get() {
                    abort(info);
                }
            }));
        }
    },
    |data: &[u8]| {
        let doc = Doc::new();
        GUARDED.set(true);
        let _ = apply_client_update(&doc, data);
        GUARDED.set(false);

        // Sync step 2 for the next client to join.
        let state = doc.transact().encode_state_as_update_v1(&StateVector::default());
        Update::decode_v1(&state).expect("the document's own encoding decodes");

        // The next client's update, from a client id the fuzzer is unlikely to produce.
        let other = Doc::with_client_id(0x1a_bcde_f012_3457);
        let update = {
            let mut txn = other.transact_mut();
            txn.get_or_insert_text("liveness").insert(&mut txn, 0, "ok");
            txn.encode_update_v1()
        };
        let applied = apply_client_update(&doc, &update);
        assert!(matches!(applied, Ok(Some(_))), "a valid update did not apply: {applied:?}");
    }
);

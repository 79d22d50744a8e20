//! The bound on a room's document size (`DOJO_MAX_DOCUMENT_BYTES`).
//!
//! A joining client receives the whole document in one sync step 2 frame, so a document larger
//! than what a client accepts in a frame can never be synced again. Updates that would push the
//! document past the limit are refused before they are applied (so nothing stored is lost).
//!
//! Measuring the document exactly means encoding all of it, too costly per update. The room
//! keeps an estimate instead: exact at load, then grown by a bound of what every applied change
//! can add (`dojo_sync_protocol::update::growth_bound`: its bytes, plus room for the existing
//! items an insert splits). That errs on the safe side (yrs merges adjacent items and collects
//! deleted content, so the document encodes smaller than the sum of its changes). Only when the
//! estimate says an update would not fit is the document measured exactly, and the update
//! refused if it still does not.

/// What the check needs to know about an update, cheapest first.
pub trait Incoming {
    /// The update's length: the most it can add.
    fn update_len(&self) -> usize;
    /// Bytes of it the document does not have yet; `None` when it adds no content at all
    /// (deletions only, or content already known), which is always let through.
    fn new_bytes(&self) -> Option<usize>;
    /// The document's exact size now (a pass over all of it).
    fn document_bytes(&self) -> usize;
}

impl Incoming for dojo_sync_protocol::update::Admission<'_, '_> {
    fn update_len(&self) -> usize {
        self.update_len()
    }
    fn new_bytes(&self) -> Option<usize> {
        self.new_bytes()
    }
    fn document_bytes(&self) -> usize {
        self.document_bytes()
    }
}

#[derive(Debug, Clone)]
pub struct DocumentSize {
    limit: usize,
    /// At least the document's encoded size.
    estimate: usize,
}

impl DocumentSize {
    /// A document of `exact` bytes, limited to `limit` (0: no limit).
    pub fn new(limit: usize, exact: usize) -> Self {
        Self { limit, estimate: exact }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Whether `incoming` may be applied without the document passing the limit.
    pub fn admits(&mut self, incoming: &impl Incoming) -> bool {
        if self.limit == 0 || self.estimate.saturating_add(incoming.update_len()) <= self.limit {
            return true;
        }
        let Some(new_bytes) = incoming.new_bytes() else { return true };
        if self.estimate.saturating_add(new_bytes) <= self.limit {
            return true;
        }
        self.estimate = incoming.document_bytes();
        self.estimate.saturating_add(new_bytes) <= self.limit
    }

    /// At least the document's encoded size.
    pub fn estimate(&self) -> usize {
        self.estimate
    }

    /// The document was just encoded: it is `exact` bytes.
    pub fn measured(&mut self, exact: usize) {
        self.estimate = exact;
    }

    /// A change of `bytes` was applied (from a client, another instance or a restore).
    pub fn grew(&mut self, bytes: usize) {
        self.estimate = self.estimate.saturating_add(bytes);
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    struct Fake {
        len: usize,
        new: Option<usize>,
        document: usize,
        measured: Cell<usize>,
    }

    impl Incoming for Fake {
        fn update_len(&self) -> usize {
            self.len
        }
        fn new_bytes(&self) -> Option<usize> {
            self.new
        }
        fn document_bytes(&self) -> usize {
            self.measured.set(self.measured.get() + 1);
            self.document
        }
    }

    fn update(len: usize, new: Option<usize>, document: usize) -> Fake {
        Fake { len, new, document, measured: Cell::new(0) }
    }

    #[test]
    fn measures_only_when_the_estimate_says_it_would_not_fit() {
        let mut size = DocumentSize::new(100, 40);
        let small = update(50, Some(50), 40);
        assert!(size.admits(&small));
        assert_eq!(small.measured.get(), 0, "fits the estimate: not measured");
        size.grew(50);
        // 90 estimated + 20 > 100, but the document really is 60 bytes (merged, collected).
        let next = update(20, Some(20), 60);
        assert!(size.admits(&next));
        assert_eq!(next.measured.get(), 1);
        size.grew(20);
        // 80 now; 30 more does not fit even measured.
        let big = update(30, Some(30), 80);
        assert!(!size.admits(&big));
    }

    #[test]
    fn known_content_and_deletions_pass_and_zero_means_unlimited() {
        let mut size = DocumentSize::new(100, 100);
        assert!(size.admits(&update(500, None, 100)), "adds nothing: a resent state, or deletions");
        // Mostly known: only the new part counts.
        assert!(!size.admits(&update(500, Some(1), 100)));
        let mut unlimited = DocumentSize::new(0, usize::MAX);
        assert!(unlimited.admits(&update(usize::MAX, Some(usize::MAX), usize::MAX)));
    }
}

//! A walk over a v1 update's bytes that refuses, before yrs decodes anything, the shapes that make
//! yrs' decoder reserve memory or stack out of proportion to the update's size.
//!
//! yrs 0.28 reserves room for a declared number of elements before it reads any of them, at every
//! level of an update: clients (`Update::decode`, a hash map), blocks per client (a `VecDeque`),
//! values of an `Any` content (`ItemContent::decode`, a `Vec`), strings of a legacy JSON content
//! (a `Vec`), and the entries and items of every nested `Any` map and array (`Any::decode`, a
//! `HashMap` and a `Vec`). It uses `try_reserve`, which only stops reservations that fail, not ones
//! that are merely huge: 13 bytes declaring an `Any` map of 2^20 entries made it reserve about
//! 100 MiB (`tests/allocation_bounds.rs`), and the count can go higher. (Delete sets grow as they
//! are read, and strings and buffers borrow slices of the input, so those are not a problem.) And
//! `Any::decode` recurses once per nesting level with no limit, at about 3 KiB of stack per level:
//! an update of 1.4 KB nesting 700 arrays overflowed a 2 MiB thread stack, and a stack overflow
//! aborts the process, which no `catch_unwind` can stop.
//!
//! The walk reads the update exactly as yrs' `DecoderV1` does (same fields, same varint widths,
//! same quirks) without allocating, and keeps one budget across all levels: every element that
//! has been declared but not yet read needs at least one more byte of input, so the declared
//! elements outstanding can never exceed the bytes left. A count that breaks the budget is one
//! that yrs would fail on anyway (after reserving for it); refusing it first bounds everything yrs
//! reserves for an update by what an honest update of the same length would make it allocate.

use yrs::encoding::read::{Cursor, Read};
use yrs::encoding::varint::VarInt;
use yrs::{ClientID, ID};

/// Deepest nesting of `Any` values (arrays and maps inside an `Any` content) accepted.
///
/// The limit serde_json applies by default, and so the one yrs already applies to the other way of
/// embedding JSON in an update (embeds and formatting attributes are JSON strings that yrs parses
/// with serde_json). At about 3 KiB of stack per level that is under 400 KiB, well within a 2 MiB
/// thread stack; no document a JSON-shaped editor produces comes near it.
pub(crate) const MAX_ANY_DEPTH: usize = 128;

// Block and content tags, as yrs numbers them (`yrs::block`, `yrs::types`).
const BLOCK_GC: u8 = 0;
const BLOCK_SKIP: u8 = 10;
const CONTENT_DELETED: u8 = 1;
const CONTENT_JSON: u8 = 2;
const CONTENT_BINARY: u8 = 3;
const CONTENT_STRING: u8 = 4;
const CONTENT_EMBED: u8 = 5;
const CONTENT_FORMAT: u8 = 6;
const CONTENT_TYPE: u8 = 7;
const CONTENT_ANY: u8 = 8;
const CONTENT_DOC: u8 = 9;
const HAS_ORIGIN: u8 = 0b1000_0000;
const HAS_RIGHT_ORIGIN: u8 = 0b0100_0000;
const HAS_PARENT_SUB: u8 = 0b0010_0000;
const TYPE_XML_ELEMENT: u8 = 3;
/// Type refs yrs decodes without further fields: array, map, text, XML fragment, hook and text,
/// subdocument and undefined. Weak links (7) need yrs' `weak` feature, which we do not build.
const TYPE_REFS_WITHOUT_FIELDS: [u8; 8] = [0, 1, 2, 4, 5, 6, 9, 15];

/// Why the walk refused an update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanError {
    /// The bytes end early, a varint is malformed or a tag is unknown: yrs' own message, or ours.
    Malformed(String),
    /// A count declares more elements than the bytes left could hold, even at one byte each.
    CountExceedsInput { what: &'static str, declared: u64, remaining: usize },
    /// `Any` values nest deeper than [`MAX_ANY_DEPTH`].
    TooDeep,
}

impl From<yrs::encoding::read::Error> for ScanError {
    fn from(error: yrs::encoding::read::Error) -> Self {
        ScanError::Malformed(error.to_string())
    }
}

/// Walks a whole v1 update (blocks, then the delete set) and returns how many bytes yrs will read
/// of it. yrs ignores what follows the delete set, and so does the walk. (The tests compare it
/// with yrs' own decoder; the apply path uses [`scan_placements_v1`].)
#[cfg(test)]
pub(crate) fn scan_update_v1(update: &[u8]) -> Result<usize, ScanError> {
    let mut scan = Scan { cursor: Cursor::new(update), outstanding: 0, items: None, clock: 0, skips: 0 };
    scan.blocks()?;
    scan.delete_set()?;
    Ok(scan.cursor.next)
}

/// The same walk, also returning where each item of the update sits in the tree of shared types
/// (see [`ItemPlacement`]), in the update's order: each client's items by ascending clock.
pub(crate) fn scan_placements_v1(update: &[u8]) -> Result<Vec<ItemPlacement>, ScanError> {
    let mut scan =
        Scan { cursor: Cursor::new(update), outstanding: 0, items: Some(Vec::new()), clock: 0, skips: 0 };
    scan.blocks()?;
    scan.delete_set()?;
    Ok(scan.items.unwrap_or_default())
}

/// The same walk, counting the update's skip blocks: the ranges of a client's clocks it leaves
/// out although later ones are in it.
pub(crate) fn count_skips_v1(update: &[u8]) -> Result<usize, ScanError> {
    let mut scan = Scan { cursor: Cursor::new(update), outstanding: 0, items: None, clock: 0, skips: 0 };
    scan.blocks()?;
    scan.delete_set()?;
    Ok(scan.skips)
}

/// A block of an update as far as nesting and size are concerned: its id range, how its parent
/// is given, whether it holds a shared type (the only content other items can be nested in),
/// and how many bytes of the update it takes. Items and GC blocks; skip blocks hold nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ItemPlacement {
    pub id: ID,
    /// Clock units the block covers (0 for empty content, which covers nothing).
    pub len: u32,
    pub parent: ParentRef,
    pub holds_type: bool,
    pub bytes: usize,
}

/// How an item names its parent, as `Update::decode_block` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ParentRef {
    /// A root type, by name: nesting level 0.
    Root(Box<str>),
    /// The shared type held by the item with this id.
    Type(ID),
    /// The parent of its neighbours: yrs takes the origin's parent, else the right origin's.
    Neighbours { origin: Option<ID>, right_origin: Option<ID> },
}

/// yrs' client ids are 53 bits: its release builds ignore the bits above (its debug builds
/// assert on them, a panic that must not happen here), and so does the walk.
fn client_id(raw: u64) -> ClientID {
    ClientID::new(raw & ((1 << 53) - 1))
}

struct Scan<'a> {
    cursor: Cursor<'a>,
    /// Elements declared by the levels being read that have not been started yet.
    outstanding: usize,
    /// Where the items go, when the caller asked for them.
    items: Option<Vec<ItemPlacement>>,
    /// Clock of the next block of the client being read.
    clock: u32,
    /// Skip blocks read.
    skips: usize,
}

impl Scan<'_> {
    fn remaining(&self) -> usize {
        self.cursor.buf.len() - self.cursor.next
    }

    /// Accounts for `declared` elements about to be read, refusing them if they cannot all fit.
    fn declare(&mut self, what: &'static str, declared: u64) -> Result<(), ScanError> {
        let remaining = self.remaining();
        let fits = usize::try_from(declared)
            .ok()
            .and_then(|declared| self.outstanding.checked_add(declared))
            .filter(|&total| total <= remaining);
        match fits {
            Some(total) => {
                self.outstanding = total;
                Ok(())
            }
            None => Err(ScanError::CountExceedsInput { what, declared, remaining }),
        }
    }

    /// Marks one declared element as started; its bytes are then accounted for by reading them.
    fn start(&mut self) {
        // `declare` counted it, so this cannot underflow; saturate rather than trust that.
        self.outstanding = self.outstanding.saturating_sub(1);
    }

    /// Reads a count of `what` and [`declare`](Self::declare)s it.
    fn count<T: VarInt + Into<u64> + Copy>(&mut self, what: &'static str) -> Result<T, ScanError> {
        let count: T = self.cursor.read_var()?;
        self.declare(what, count.into())?;
        Ok(count)
    }

    /// Reads `count` declared elements with `element`, starting each.
    fn each(
        &mut self,
        count: impl Into<u64>,
        mut element: impl FnMut(&mut Self) -> Result<(), ScanError>,
    ) -> Result<(), ScanError> {
        for _ in 0..count.into() {
            self.start();
            element(self)?;
        }
        Ok(())
    }

    /// `Update::decode`: client count, then per client its block count, id and first clock.
    fn blocks(&mut self) -> Result<(), ScanError> {
        let clients: u32 = self.count("clients")?;
        for _ in 0..clients {
            self.start();
            let blocks: u32 = self.cursor.read_var()?;
            let client: u64 = self.cursor.read_var()?;
            self.clock = self.cursor.read_var()?;
            self.declare("blocks", blocks.into())?;
            for _ in 0..blocks {
                self.start();
                self.block(client)?;
            }
        }
        Ok(())
    }

    /// `Update::decode_block`. The info byte selects GC and skip blocks only as a whole byte;
    /// any other value is an item whose content tag is its low four bits.
    fn block(&mut self, client: u64) -> Result<(), ScanError> {
        let start = self.cursor.next;
        let info = self.cursor.read_u8()?;
        let id = ID::new(client_id(client), self.clock);
        let len = match info {
            BLOCK_SKIP => {
                self.skips += 1;
                self.cursor.read_var()?
            }
            BLOCK_GC => {
                let len = self.cursor.read_var()?;
                if let Some(items) = &mut self.items {
                    let parent = ParentRef::Neighbours { origin: None, right_origin: None };
                    items.push(ItemPlacement {
                        id,
                        len,
                        parent,
                        holds_type: false,
                        bytes: self.cursor.next - start,
                    });
                }
                len
            }
            info => {
                let cant_copy_parent_info = info & (HAS_ORIGIN | HAS_RIGHT_ORIGIN) == 0;
                let origin = if info & HAS_ORIGIN != 0 { Some(self.id()?) } else { None };
                let right_origin = if info & HAS_RIGHT_ORIGIN != 0 { Some(self.id()?) } else { None };
                let mut parent = ParentRef::Neighbours { origin, right_origin };
                if cant_copy_parent_info {
                    let parent_info: u32 = self.cursor.read_var()?;
                    if parent_info == 1 {
                        parent = ParentRef::Root(self.cursor.read_string()?.into());
                    } else {
                        parent = ParentRef::Type(self.id()?);
                    }
                    if info & HAS_PARENT_SUB != 0 {
                        self.cursor.read_string()?;
                    }
                }
                let tag = info & 0b1111;
                let len = self.content(tag)?;
                if let Some(items) = &mut self.items {
                    let bytes = self.cursor.next - start;
                    items.push(ItemPlacement { id, len, parent, holds_type: tag == CONTENT_TYPE, bytes });
                }
                len
            }
        };
        // yrs adds with overflow checks (a panic its guard catches); the walk only needs to stay
        // in step with it for ids, so wrapping is enough.
        self.clock = self.clock.wrapping_add(len);
        Ok(())
    }

    /// `DecoderV1::read_id`: a client and a clock.
    fn id(&mut self) -> Result<ID, ScanError> {
        let client: u64 = self.cursor.read_var()?;
        let clock: u32 = self.cursor.read_var()?;
        Ok(ID::new(client_id(client), clock))
    }

    /// `ItemContent::decode`. Returns the content's length in clock units, as yrs counts it
    /// (`ItemContent::len_utf16`): strings in UTF-16 code units, values one each, the rest 1.
    fn content(&mut self, tag: u8) -> Result<u32, ScanError> {
        let len = match tag {
            CONTENT_DELETED => self.cursor.read_var()?,
            CONTENT_JSON => {
                // yrs 0.28 reads one string more than the count says (`while remaining >= 0`), so
                // the walk does too: it must stay where yrs is. A count that does not fit an i32
                // makes yrs' reservation fail; it cannot fit the input either.
                let count: u32 = self.cursor.read_var()?;
                self.declare("JSON strings", u64::from(count) + 1)?;
                for _ in 0..=count {
                    self.start();
                    self.cursor.read_string()?;
                }
                count.wrapping_add(1)
            }
            CONTENT_BINARY => {
                self.cursor.read_buf()?;
                1
            }
            CONTENT_STRING => {
                let text = self.cursor.read_string()?;
                u32::try_from(text.encode_utf16().count()).unwrap_or(u32::MAX)
            }
            CONTENT_EMBED => {
                self.cursor.read_string()?;
                1
            }
            CONTENT_FORMAT => {
                self.cursor.read_string()?;
                self.cursor.read_string()?;
                1
            }
            CONTENT_TYPE => {
                let type_ref = self.cursor.read_u8()?;
                if type_ref == TYPE_XML_ELEMENT {
                    self.cursor.read_string()?;
                } else if !TYPE_REFS_WITHOUT_FIELDS.contains(&type_ref) {
                    return Err(ScanError::Malformed(format!("unknown type ref {type_ref}")));
                }
                1
            }
            CONTENT_ANY => {
                let count: u32 = self.count("values")?;
                self.each(count, |scan| scan.any(1))?;
                count
            }
            CONTENT_DOC => {
                // `Options::decode`: the subdocument's guid, then one `Any` of options.
                self.cursor.read_string()?;
                self.any(1)?;
                1
            }
            other => return Err(ScanError::Malformed(format!("unknown content type {other}"))),
        };
        Ok(len)
    }

    /// `Any::decode`, at nesting level `depth` (1 for a value directly inside a content). The
    /// recursion is bounded by [`MAX_ANY_DEPTH`], checked before each level is entered.
    fn any(&mut self, depth: usize) -> Result<(), ScanError> {
        if depth > MAX_ANY_DEPTH {
            return Err(ScanError::TooDeep);
        }
        match self.cursor.read_u8()? {
            // undefined, null, false, true
            127 | 126 | 121 | 120 => {}
            // integer
            125 => {
                let _int: i64 = self.cursor.read_var()?;
            }
            // float32, float64, bigint
            124 => {
                self.cursor.read_exact(4)?;
            }
            123 | 122 => {
                self.cursor.read_exact(8)?;
            }
            // string, buffer
            119 | 116 => {
                self.cursor.read_buf()?;
            }
            // map: yrs reads the count as a `usize` (a u64 varint), not a u32.
            118 => {
                let count: u64 = self.count("map entries")?;
                self.each(count, |scan| {
                    scan.cursor.read_string()?;
                    scan.any(depth + 1)
                })?;
            }
            // array, count read likewise
            117 => {
                let count: u64 = self.count("array items")?;
                self.each(count, |scan| scan.any(depth + 1))?;
            }
            other => return Err(ScanError::Malformed(format!("unknown value type {other}"))),
        }
        Ok(())
    }

    /// `IdSet::decode`: client count, then per client its id and a list of (clock, length).
    /// yrs grows these as it reads them, but their counts get the same budget: it costs nothing
    /// and keeps the walk from looping four billion times on five bytes.
    fn delete_set(&mut self) -> Result<(), ScanError> {
        let clients: u32 = self.count("deleting clients")?;
        self.each(clients, |scan| {
            let _client: u64 = scan.cursor.read_var()?;
            let ranges: u32 = scan.count("deleted ranges")?;
            scan.each(ranges, |scan| {
                let _clock: u32 = scan.cursor.read_var()?;
                let _len: u32 = scan.cursor.read_var()?;
                Ok(())
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::panic::{AssertUnwindSafe, catch_unwind};
    use std::sync::Arc;

    use proptest::collection::vec;
    use proptest::prelude::*;
    use yrs::types::ToJson;
    use yrs::updates::decoder::{Decode, Decoder, DecoderV1};
    use yrs::{
        Any, Array, ArrayPrelim, Doc, Map, MapPrelim, ReadTxn, StateVector, Text, TextPrelim, Transact,
        Update, XmlElementPrelim, XmlFragment, XmlTextPrelim,
    };

    use super::*;

    /// How many bytes yrs' own decoder reads of `update`, or `None` when it refuses it (or
    /// panics on it, as it does on client ids over 53 bits in debug builds).
    fn yrs_reads(update: &[u8]) -> Option<usize> {
        let mut decoder = DecoderV1::new(Cursor::new(update));
        let decoded = catch_unwind(AssertUnwindSafe(|| Update::decode(&mut decoder).is_ok())).ok()?;
        let rest = decoder.read_to_end().ok()?.len();
        decoded.then(|| update.len() - rest)
    }

    fn nested_any(depth: usize) -> Any {
        let leaves = vec![
            Any::Null,
            Any::Undefined,
            Any::Bool(true),
            Any::Bool(false),
            Any::from(-17),
            // An integer, a float32, a float64 and a bigint on the wire.
            Any::from(1_i64 << 40),
            Any::from(1.5),
            Any::from(0.1),
            Any::Number(yrs::Number::Int((1 << 62) + 1)),
            Any::from("naïve ✓"),
            Any::Buffer(Arc::from(&b"\x00\xffbytes"[..])),
        ];
        if depth == 0 {
            return Any::Array(Arc::from(leaves));
        }
        let map: HashMap<String, Any> =
            [("inner".to_owned(), nested_any(depth - 1)), ("".to_owned(), Any::Array(Arc::from(leaves)))]
                .into();
        Any::Array(Arc::from(vec![Any::Map(Arc::new(map)), nested_any(depth - 1)]))
    }

    /// Updates as yrs writes them, covering every block and content type the walk reads: items
    /// of every content (strings, embeds, formatting, nested types of every kind, `Any` values of
    /// every kind, subdocuments, deleted content), GC and skip blocks, delete sets, many clients.
    fn real_updates() -> Vec<Vec<u8>> {
        let mut updates = Vec::new();
        let doc = Doc::with_client_id(1);
        let text = doc.get_or_insert_text("text");
        let array = doc.get_or_insert_array("array");
        let map = doc.get_or_insert_map("map");
        let xml = doc.get_or_insert_xml_fragment("xml");
        let mut edit = |f: &dyn Fn(&mut yrs::TransactionMut)| {
            let mut txn = doc.transact_mut();
            f(&mut txn);
            updates.push(txn.encode_update_v1());
        };
        edit(&|txn| text.insert(txn, 0, "hello, wörld 👋"));
        edit(&|txn| {
            let bold: yrs::types::Attrs = [(Arc::from("bold"), Any::Bool(true))].into();
            text.insert_with_attributes(txn, 5, " there", bold.clone());
            text.format(txn, 0, 3, [(Arc::from("href"), Any::from("https://example.com"))].into());
            text.insert_embed(txn, 2, nested_any(1));
        });
        edit(&|txn| array.insert_range(txn, 0, [nested_any(0), nested_any(3)]));
        edit(&|txn| {
            array.push_back(txn, ArrayPrelim::from([Any::from(1), Any::from("two")]));
            map.insert(txn, "number", 4);
            map.insert(txn, "nested", MapPrelim::from([("k".to_owned(), Any::from("v"))]));
            map.insert(txn, "notes", TextPrelim::new("inner text"));
            map.insert(txn, "sub", Doc::new());
            xml.insert(txn, 0, XmlElementPrelim::new("p", [XmlTextPrelim::new("para").into()]));
            xml.push_back(txn, XmlTextPrelim::new("tail"));
        });
        edit(&|txn| {
            text.remove_range(txn, 1, 4);
            array.remove_range(txn, 0, 1);
            // Deleting a nested type garbage-collects its content: GC blocks in the state.
            map.remove(txn, "nested");
            map.insert(txn, "number", 5);
        });
        updates.push(doc.transact().encode_state_as_update_v1(&StateVector::default()));

        // Many clients, some with ids near the 53-bit limit, merged into one update.
        let shared: Vec<Vec<u8>> = (0..200_u64)
            .map(|i| {
                let peer = Doc::with_client_id(if i % 3 == 0 { (1 << 53) - 1 - i } else { i + 10 });
                let text = peer.get_or_insert_text("text");
                let mut txn = peer.transact_mut();
                text.insert(&mut txn, 0, &"x".repeat(i as usize % 7 + 1));
                text.remove_range(&mut txn, 0, 1);
                txn.encode_update_v1()
            })
            .collect();
        updates.push(yrs::merge_updates_v1(&shared).expect("merges"));

        // Two updates of one client with a gap between them merge with a skip block.
        let gap = Doc::with_client_id(99);
        let gap_text = gap.get_or_insert_text("t");
        let mut parts = Vec::new();
        for word in ["one", "two", "three"] {
            let mut txn = gap.transact_mut();
            gap_text.push(&mut txn, word);
            parts.push(txn.encode_update_v1());
        }
        let skipped = yrs::merge_updates_v1([&parts[0], &parts[2]]).expect("merges");
        assert!(skipped.contains(&BLOCK_SKIP), "the merged update has a skip block");
        assert_eq!(count_skips_v1(&skipped), Ok(1));
        assert_eq!(count_skips_v1(&parts[0]), Ok(0));
        updates.push(skipped);
        updates
    }

    #[test]
    fn the_walk_reads_what_yrs_reads_of_real_updates() {
        let updates = real_updates();
        for (i, update) in updates.iter().enumerate() {
            let expected = yrs_reads(update).expect("yrs decodes its own updates");
            assert_eq!(scan_update_v1(update), Ok(expected), "update {i}");
            // Cut short, the update is refused by yrs (or, cut after the delete set, read alike).
            for cut in 0..update.len() {
                let prefix = &update[..cut];
                match (scan_update_v1(prefix), yrs_reads(prefix)) {
                    (Ok(read), Some(yrs)) => assert_eq!(read, yrs, "update {i} cut at {cut}"),
                    (walk, Some(_)) => panic!("update {i} cut at {cut}: yrs reads it, walk {walk:?}"),
                    (_, None) => {}
                }
            }
        }
        // The document the updates build really has all those parts.
        let doc = Doc::new();
        for update in &updates {
            let mut txn = doc.transact_mut();
            txn.apply_update(Update::decode_v1(update).expect("decodes")).expect("applies");
        }
        let txn = doc.transact();
        let map = txn.get_map("map").expect("map").to_json(&txn);
        assert!(matches!(map, Any::Map(ref m) if m.contains_key("sub") && !m.contains_key("nested")));
    }

    #[test]
    fn legacy_json_content_is_read_with_yrs_off_by_one() {
        // One item with JSON content declaring 0 strings: yrs reads one anyway, then the
        // delete set. The walk must end where yrs ends, or it would judge the wrong bytes.
        let update = [1, 1, 1, 0, CONTENT_JSON, 1, 1, b'a', 0, 3, b'"', b'x', b'"', 0];
        assert_eq!(yrs_reads(&update), Some(update.len()));
        assert_eq!(scan_update_v1(&update), Ok(update.len()));
    }

    fn mutated(update: &[u8], edits: &[(usize, u8, bool)]) -> Vec<u8> {
        let mut bytes = update.to_vec();
        for &(at, byte, insert) in edits {
            let at = at % (bytes.len() + 1);
            if insert || at == bytes.len() {
                bytes.insert(at, byte);
            } else {
                bytes[at] = byte;
            }
        }
        bytes
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        /// The walk never refuses what yrs accepts, and ends where yrs ends: on random bytes and
        /// on real updates with bytes changed or inserted. What it refuses for a count, yrs
        /// refuses too (after reserving for it).
        #[test]
        fn the_walk_agrees_with_yrs(
            which in any::<prop::sample::Index>(),
            edits in vec((any::<usize>(), any::<u8>(), any::<bool>()), 0..6),
            random in vec(any::<u8>(), 0..256),
            use_random in any::<bool>(),
        ) {
            static UPDATES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
            let updates = UPDATES.get_or_init(real_updates);
            let bytes = if use_random { random } else { mutated(which.get::<Vec<u8>>(updates), &edits) };
            match (scan_update_v1(&bytes), yrs_reads(&bytes)) {
                (Ok(read), Some(yrs)) => prop_assert_eq!(read, yrs),
                (walk, Some(_)) => prop_assert!(false, "yrs decodes what the walk refuses: {:?}", walk),
                (_, None) => {}
            }
        }
    }
}

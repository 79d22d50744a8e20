//! How deep an update would nest shared types, worked out before yrs integrates it.
//!
//! A shared type (`Y.Map`, `Y.Array`, `Y.Text`, XML) can hold other shared types, and yrs walks
//! that tree recursively in several places: `to_json`, and deleting a type (which deletes its
//! children, which delete theirs…). The bytes of an update nest nothing: each item names its
//! parent by id, so 30 KB can chain 5,000 maps, which yrs integrates without complaint and then
//! overflows the stack on the first JSON read or delete of the chain. A stack overflow aborts
//! the process, so such an update must never be integrated.
//!
//! An item gives its parent in one of three ways ([`ParentRef`]): a root type by name (level 0),
//! the id of the item holding its parent type, or nothing, in which case yrs gives it the parent
//! of its left neighbour (`origin`), else of its right one. Those items may be in the same update
//! or already in the document. Inside the update the chains are followed with an explicit stack
//! (each item resolved once); in the document, a type's parent is found with yrs' public API
//! (a `StickyIndex` on the item resolves to its parent branch) and the walk goes up at most
//! [`MAX_TYPE_DEPTH`] + 1 steps.
//!
//! Every type in a document that only ever took updates through this check is at most
//! [`MAX_TYPE_DEPTH`] deep, which is what makes yrs' recursive walks safe on it.

use std::collections::HashMap;

use yrs::branch::BranchPtr;
use yrs::{Assoc, BranchID, ID, IdSet, ReadTxn, StateVector, StickyIndex};

use super::scan::{ItemPlacement, ParentRef};
use super::write_rules::{Guard, NO_DELETE, NO_INSERT, WriteRules};

/// Deepest nesting of shared types accepted: a type directly in a root type is at level 1.
///
/// The canvas needs 2 (`nodes` → a node's `Y.Map` → its `data` `Y.Map`); rich text inside a
/// parameter (an XML fragment with nested lists) needs a dozen or so more. yrs recurses once or
/// twice per level when it converts to JSON or deletes a type, a few hundred bytes of stack
/// each, so 32 levels (plus the 128 levels of plain values each may hold) stay far below the
/// 2 MiB stack of a tokio worker thread.
pub const MAX_TYPE_DEPTH: usize = 32;

/// Most document items one update may make the check look up. Each lookup walks the item's
/// left siblings inside yrs, so an update must not be able to ask for an unbounded number.
/// Updates from editors need a handful at most: a new type's parent is nearly always a root or
/// a type created in the same update.
pub const MAX_DOCUMENT_LOOKUPS: usize = 4096;

/// Why an update's nesting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NestingError {
    #[error("refused: shared types (maps, arrays, text) nested more than {limit} levels deep")]
    TooDeep { limit: usize },
    /// A shared type whose parent is in neither the update nor the document: its depth cannot be
    /// known until the parent arrives, and yrs would then integrate it unchecked.
    #[error("refused: a shared type is placed in a parent the document does not have")]
    UnknownParent,
    #[error("refused: checking the nesting of this update would take more than {limit} document lookups")]
    TooManyLookups { limit: usize },
    /// The update inserts or deletes content under a root only the executor writes.
    #[error("refused: `results` and `runs` are written by the executor only")]
    ExecutorOnly,
    /// Under [`WriteRules::protected_roots`], content whose parent has not arrived (or a
    /// deletion of content the document does not have): where it lands cannot be checked.
    #[error("refused: the update places or deletes content the document does not have yet")]
    Unverifiable,
}

/// Most deletion ranges whose place one update may make the check look up (two lookups each).
pub const MAX_DELETION_PROBES: usize = 8192;

/// Whose update is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Source {
    /// A client's: a shared type whose parent is unknown is refused.
    Client,
    /// Stored parts, applied in order: what they depend on came before, so an unknown parent can
    /// only be data yrs will discard; it counts as a root.
    Stored,
}

/// The nesting level of the type an item sits in (0: a root type), and whether that is under a
/// protected root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Known(usize, Guard),
    /// The parent was deleted and collected: yrs discards the item.
    Gone,
    /// The parent has not arrived.
    Unknown,
}

impl Level {
    /// The worse of two readings, for an item whose parent may come from either neighbour.
    fn worst(self, other: Level) -> Level {
        match (self, other) {
            (Level::Unknown, _) | (_, Level::Unknown) => Level::Unknown,
            (Level::Known(a, p), Level::Known(b, q)) => Level::Known(a.max(b), p | q),
            (Level::Known(a, p), Level::Gone) | (Level::Gone, Level::Known(a, p)) => Level::Known(a, p),
            (Level::Gone, Level::Gone) => Level::Gone,
        }
    }

    fn child(self) -> Level {
        match self {
            Level::Known(level, protected) => Level::Known(level.saturating_add(1), protected),
            other => other,
        }
    }
}

/// Refuses `items` (one update's, from [`super::scan::scan_placements_v1`]) if integrating them
/// into the document `txn` reads would put a shared type deeper than [`MAX_TYPE_DEPTH`], or
/// (under `rules`) insert content under a protected root. `deletions` are the update's new
/// deletions (what the document has not deleted yet), checked against the protected roots too:
/// each deleted range is judged by its first and last item (a range is one client's
/// consecutive items, in practice all of one place).
pub(crate) fn check<T: ReadTxn>(
    txn: &T,
    items: &[ItemPlacement],
    deletions: Option<&IdSet>,
    source: Source,
    rules: WriteRules<'_>,
) -> Result<(), NestingError> {
    let guard_roots = !rules.protected_roots.is_empty();
    let has_deletions = guard_roots && deletions.is_some_and(|d| !d.is_empty());
    if !has_deletions && !items.iter().any(|item| item.holds_type || guard_roots) {
        return Ok(());
    }
    let mut check = Check::new(txn, items, source, rules);
    for (i, item) in items.iter().enumerate() {
        if !item.holds_type && !guard_roots {
            continue;
        }
        match check.parent_level(i)? {
            Level::Known(level, _) if item.holds_type && level >= MAX_TYPE_DEPTH => {
                return Err(NestingError::TooDeep { limit: MAX_TYPE_DEPTH });
            }
            Level::Known(_, guard) if guard & NO_INSERT != 0 => return Err(NestingError::ExecutorOnly),
            Level::Unknown if item.holds_type => return Err(NestingError::UnknownParent),
            Level::Unknown if guard_roots => return Err(NestingError::Unverifiable),
            Level::Known(..) | Level::Gone | Level::Unknown => {}
        }
    }
    if let Some(deletions) = deletions.filter(|_| has_deletions) {
        let mut probes = 0;
        for (client, ranges) in deletions.iter() {
            for range in ranges.iter() {
                for clock in [range.start, range.end.saturating_sub(1).max(range.start)] {
                    probes += 1;
                    if probes > 2 * MAX_DELETION_PROBES {
                        return Err(NestingError::TooManyLookups { limit: MAX_DELETION_PROBES });
                    }
                    let id = ID::new(*client, clock);
                    let level = match check.in_update(&id) {
                        Some(j) => check.parent_level(j)?,
                        None => check.document_neighbour_level(&id)?,
                    };
                    match level {
                        Level::Known(_, guard) if guard & NO_DELETE != 0 => {
                            return Err(NestingError::ExecutorOnly);
                        }
                        Level::Unknown => return Err(NestingError::Unverifiable),
                        Level::Known(..) | Level::Gone => {}
                    }
                }
            }
        }
    }
    Ok(())
}

/// An item's [`ParentRef`] with the root's name already judged.
#[derive(Clone, Copy)]
enum Link {
    Root(Guard),
    Type(ID),
    Neighbours(Option<ID>, Option<ID>),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visit {
    New,
    /// On the stack: meeting it again is a cycle, which yrs can never integrate.
    Open,
    Done(Level),
}

struct Check<'a, T: ReadTxn> {
    txn: &'a T,
    items: &'a [ItemPlacement],
    source: Source,
    /// Indices of `items` sorted by id, to find the item covering an id.
    by_id: Vec<usize>,
    visits: Vec<Visit>,
    /// The document's clocks, read once.
    state: StateVector,
    /// Levels of document types already walked, and whether they are under a protected root.
    branch_levels: HashMap<ID, (usize, Guard)>,
    lookups: usize,
    rules: WriteRules<'a>,
}

impl<'a, T: ReadTxn> Check<'a, T> {
    fn new(txn: &'a T, items: &'a [ItemPlacement], source: Source, rules: WriteRules<'a>) -> Self {
        let mut by_id: Vec<usize> = (0..items.len()).filter(|&i| items[i].len > 0).collect();
        by_id.sort_unstable_by_key(|&i| (items[i].id.client, items[i].id.clock));
        Check {
            txn,
            items,
            source,
            by_id,
            visits: vec![Visit::New; items.len()],
            state: txn.state_vector(),
            branch_levels: HashMap::new(),
            lookups: 0,
            rules,
        }
    }

    /// The update's item covering `id`, if any.
    fn in_update(&self, id: &ID) -> Option<usize> {
        let after = self
            .by_id
            .partition_point(|&i| (self.items[i].id.client, self.items[i].id.clock) <= (id.client, id.clock));
        let candidate = *self.by_id.get(after.checked_sub(1)?)?;
        let item = &self.items[candidate];
        let covers = item.id.client == id.client && id.clock - item.id.clock < item.len;
        covers.then_some(candidate)
    }

    /// The level of the type item `start` sits in. Chains through the update are followed with
    /// an explicit stack, each item resolved once.
    fn parent_level(&mut self, start: usize) -> Result<Level, NestingError> {
        let mut stack = vec![start];
        while let Some(&i) = stack.last() {
            if let Visit::Done(_) = self.visits[i] {
                stack.pop();
                continue;
            }
            self.visits[i] = Visit::Open;
            let mut waits_for = None;
            // Copied out (ids are `Copy`), so the lookups below may borrow `self` mutably.
            let link = match &self.items[i].parent {
                ParentRef::Root(name) => Link::Root(self.is_protected(name)),
                ParentRef::Type(parent) => Link::Type(*parent),
                ParentRef::Neighbours { origin, right_origin } => Link::Neighbours(*origin, *right_origin),
            };
            let level = match link {
                Link::Root(guard) => Level::Known(0, guard),
                Link::Type(parent) => match self.in_update(&parent) {
                    Some(j) => match self.visits[j] {
                        Visit::Done(level) => level.child(),
                        Visit::Open => Level::Unknown,
                        Visit::New => {
                            waits_for = Some(j);
                            Level::Unknown
                        }
                    },
                    None => self.document_type_level(&parent)?,
                },
                Link::Neighbours(origin, right_origin) => {
                    let mut level = Level::Gone;
                    for neighbour in [origin, right_origin].into_iter().flatten() {
                        let reading = match self.in_update(&neighbour) {
                            Some(j) => match self.visits[j] {
                                Visit::Done(level) => level,
                                Visit::Open => Level::Unknown,
                                Visit::New => {
                                    waits_for = Some(j);
                                    Level::Unknown
                                }
                            },
                            None => self.document_neighbour_level(&neighbour)?,
                        };
                        level = level.worst(reading);
                    }
                    level
                }
            };
            match waits_for {
                Some(j) => stack.push(j),
                None => {
                    self.visits[i] = Visit::Done(self.trusted(level));
                    stack.pop();
                }
            }
        }
        match self.visits[start] {
            Visit::Done(level) => Ok(level),
            Visit::New | Visit::Open => Ok(Level::Unknown),
        }
    }

    /// Stored data has no unknown parents that matter (see [`Source::Stored`]).
    fn trusted(&self, level: Level) -> Level {
        match (self.source, level) {
            (Source::Stored, Level::Unknown) => Level::Known(0, 0),
            (_, level) => level,
        }
    }

    fn is_protected(&self, root: &str) -> Guard {
        self.rules.guard(root)
    }

    /// True when the document has the item at `id` (or had it and collected it).
    fn document_has(&self, id: &ID) -> bool {
        self.state.get(&id.client) > id.clock
    }

    /// The level of the type held by the document's item `id`, as an explicit parent.
    fn document_type_level(&mut self, id: &ID) -> Result<Level, NestingError> {
        if !self.document_has(id) {
            return Ok(Level::Unknown);
        }
        match BranchID::get_nested(self.txn, id) {
            Some(branch) => self.branch_level(branch),
            // Not a type (or collected): yrs refuses the item or discards it.
            None => Ok(Level::Gone),
        }
    }

    /// The level of the type the document's item `id` sits in, as a neighbour.
    fn document_neighbour_level(&mut self, id: &ID) -> Result<Level, NestingError> {
        if !self.document_has(id) {
            return Ok(Level::Unknown);
        }
        match self.parent_branch(*id)? {
            Some(branch) => self.branch_level(branch),
            None => Ok(Level::Gone),
        }
    }

    /// Walks from `branch` up to its root, at most `MAX_TYPE_DEPTH + 1` steps, remembering the
    /// level of every type on the way: many items of one update usually share their parents.
    fn branch_level(&mut self, branch: BranchPtr) -> Result<Level, NestingError> {
        // Types walked through, nearest first; each is one level above the next.
        let mut path: Vec<ID> = Vec::new();
        let mut at = branch.id();
        let (top, protected) = loop {
            match at {
                BranchID::Root(name) => break (0, self.is_protected(&name)),
                BranchID::Nested(item) => {
                    if let Some(&known) = self.branch_levels.get(&item) {
                        break known;
                    }
                    path.push(item);
                    if path.len() > MAX_TYPE_DEPTH {
                        // Deeper than allowed already: how much deeper does not matter; and
                        // the walk did not reach a root, so it may be protected.
                        let guard =
                            if self.rules.protected_roots.is_empty() { 0 } else { NO_INSERT | NO_DELETE };
                        return Ok(Level::Known(path.len(), guard));
                    }
                    match self.parent_branch(item)? {
                        Some(parent) => at = parent.id(),
                        // A live type whose item is gone: counts as an unprotected root.
                        None => break (0, 0),
                    }
                }
            }
        };
        let levels = path.len();
        for (above, item) in path.into_iter().enumerate() {
            self.branch_levels.insert(item, (top + levels - above, protected));
        }
        Ok(Level::Known(top + levels, protected))
    }

    /// The branch the document's item `id` sits in. yrs keeps an item's parent private; a
    /// sticky index on the item resolves to it (walking the item's left siblings to count an
    /// offset we do not need, hence the lookup budget).
    fn parent_branch(&mut self, id: ID) -> Result<Option<BranchPtr>, NestingError> {
        self.lookups += 1;
        if self.lookups > MAX_DOCUMENT_LOOKUPS {
            return Err(NestingError::TooManyLookups { limit: MAX_DOCUMENT_LOOKUPS });
        }
        Ok(StickyIndex::from_id(id, Assoc::After).get_offset(self.txn).map(|offset| offset.branch))
    }
}

#[cfg(test)]
mod tests;

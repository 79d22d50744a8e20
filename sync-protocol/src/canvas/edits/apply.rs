//! Writing planned steps into a Yjs transaction, in the schema's shapes (the same helpers the
//! rest of the server uses), so the whole batch is one update.

use yrs::{Map, MapPrelim, TransactionMut, WriteTxn};

use super::Step;
use crate::canvas::{
    EDGES, NODES, SchemaError, move_node, remove_node, set_node_param, write_edge, write_node,
};

/// Makes every step in `txn`. Steps come from [`super::plan`], checked against the document
/// the transaction belongs to; one whose node vanished meanwhile (a concurrent edit of the
/// replica cannot happen, but a reloaded one can differ) is skipped rather than recreated.
pub fn apply_steps(txn: &mut TransactionMut, steps: &[Step]) -> Result<(), SchemaError> {
    for step in steps {
        match step {
            Step::PutNode(node) => write_node(txn, node)?,
            Step::SetParam { node, name, value: Some(value) } => {
                if !set_node_param(txn, node, name, value)? {
                    // A node written without a `data` map (another client's): give it one.
                    if let Some(entry) = node_entry(txn, node) {
                        let data = entry.insert(txn, "data", MapPrelim::default());
                        data.insert(txn, name.as_str(), to_any(value)?);
                    }
                }
            }
            Step::SetParam { node, name, value: None } => {
                if let Some(entry) = node_entry(txn, node)
                    && let Some(yrs::Out::YMap(data)) = entry.get(txn, "data")
                {
                    data.remove(txn, name);
                }
            }
            Step::Move { node, position } => {
                move_node(txn, node, *position)?;
            }
            Step::RemoveNode(node) => remove_node(txn, node),
            Step::PutEdge(edge) => write_edge(txn, edge)?,
            Step::RemoveEdge(edge) => {
                let edges = txn.get_or_insert_map(EDGES);
                edges.remove(txn, edge);
            }
        }
    }
    Ok(())
}

fn node_entry(txn: &mut TransactionMut, node: &str) -> Option<yrs::MapRef> {
    let nodes = txn.get_or_insert_map(NODES);
    match nodes.get(txn, node)? {
        yrs::Out::YMap(map) => Some(map),
        _ => None,
    }
}

fn to_any(value: &serde_json::Value) -> Result<yrs::Any, SchemaError> {
    serde_json::from_value(value.clone()).map_err(|e| SchemaError::Unrepresentable(e.to_string()))
}

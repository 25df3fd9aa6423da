//! Duplicated, reordered and re-sent batches change nothing: every region
//! ends exactly as if each committed write had been applied once.

use std::collections::BTreeMap;

use meridian_core::record::apply;
use meridian_store::backend::{Backend, CommitBatch, Durability};
use meridian_store::digest::table_digest;
use meridian_store::MemStore;

use super::{violated, Invariant};
use crate::sim::Sim;

pub struct IdempotentApply;

impl Invariant for IdempotentApply {
    fn at_end(&mut self, sim: &Sim) {
        // Each origin's writes once, in order, origins interleaved in turn.
        let mut states = BTreeMap::new();
        let mut next: BTreeMap<usize, usize> = BTreeMap::new();
        loop {
            let mut progressed = false;
            for (origin, log) in &sim.committed {
                let i = next.entry(*origin).or_default();
                if let Some(e) = log.get(*i) {
                    let a = apply(states.get(&e.key), e);
                    states.insert(e.key.clone(), a.state);
                    *i += 1;
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        let reference = MemStore::new();
        let batch = CommitBatch {
            states: states
                .into_iter()
                .map(|(k, s)| ("t".to_string(), k, s))
                .collect(),
            ..CommitBatch::default()
        };
        reference.commit(&batch, Durability::None).unwrap();
        let expected = table_digest(&reference, "t", u64::MAX / 2).unwrap();
        for i in 0..3 {
            let got = table_digest(sim.nodes[i].store.as_ref(), "t", u64::MAX / 2).unwrap();
            if got != expected {
                violated(
                    sim,
                    "idempotent apply",
                    format!("node {i} holds {got:?}, applying each write once gives {expected:?}"),
                );
            }
        }
    }
}

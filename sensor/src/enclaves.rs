//! Annotating connection records with the enclave and host group of each
//! side, from a validated rule file.

use crate::error::SensorError;
use flowlib::ConnRecord;
use rules::{Location, Rules};
use std::path::Path;

/// Loads and validates a rule file before anything runs.
pub fn load(path: &Path) -> Result<Rules, SensorError> {
    Rules::load(path).map_err(|errors| SensorError::Rules {
        path: path.to_owned(),
        errors: errors.to_string(),
    })
}

/// Sets `orig_enclave`, `resp_enclave`, `orig_host_group` and
/// `resp_host_group` on a record.
pub fn annotate(rules: &Rules, r: &mut ConnRecord) {
    let (o, d) = locate(rules, r);
    annotate_located(rules, r, o, d);
}

/// Where the originator and the responder of a record are.
pub fn locate(rules: &Rules, r: &ConnRecord) -> (Location, Location) {
    // The outer VLAN scopes the lookup: customers may reuse private ranges.
    (
        rules.locate(r.orig_h, r.vlan),
        rules.locate(r.resp_h, r.vlan),
    )
}

/// [`annotate`] with the ends already located ([`locate`]).
pub fn annotate_located(rules: &Rules, r: &mut ConnRecord, o: Location, d: Location) {
    r.orig_enclave = Some(rules.enclave(o.enclave).name().to_owned());
    r.resp_enclave = Some(rules.enclave(d.enclave).name().to_owned());
    r.orig_host_group = o.host_group.map(|g| rules.host_group(g).name().to_owned());
    r.resp_host_group = d.host_group.map(|g| rules.host_group(g).name().to_owned());
}

/// The name strings of the enclave and host group columns, reused from
/// record to record: [`NamePool::annotate`] takes them, [`NamePool::reclaim`]
/// gives them back once the record is written, so the columns cost no
/// allocation, copy or free per record.
#[derive(Default)]
pub struct NamePool {
    /// Spare copies of each enclave's name, by enclave index.
    enclaves: Vec<Vec<String>>,
    /// Spare copies of each host group's name, by host group index.
    groups: Vec<Vec<String>>,
}

/// A spare copy of `name` from `spares[i]`, or a new one.
fn take_name(spares: &mut Vec<Vec<String>>, i: usize, name: &str) -> String {
    if spares.len() <= i {
        spares.resize_with(i + 1, Vec::new);
    }
    match spares[i].pop() {
        // (Another rule set may have left other names at this index.)
        Some(spare) if spare == name => spare,
        _ => name.to_owned(),
    }
}

/// Keeps `name` (taken for index `i`) as a spare; at most two are kept
/// (both ends of one record).
fn keep_name(spares: &mut [Vec<String>], i: usize, name: Option<String>) {
    if let (Some(name), Some(list)) = (name, spares.get_mut(i)) {
        if list.len() < 2 {
            list.push(name);
        }
    }
}

impl NamePool {
    /// [`annotate_located`], with names from the pool.
    pub fn annotate(&mut self, rules: &Rules, r: &mut ConnRecord, o: Location, d: Location) {
        let e = &mut self.enclaves;
        r.orig_enclave = Some(take_name(
            e,
            o.enclave.index(),
            rules.enclave(o.enclave).name(),
        ));
        r.resp_enclave = Some(take_name(
            e,
            d.enclave.index(),
            rules.enclave(d.enclave).name(),
        ));
        let g = &mut self.groups;
        r.orig_host_group = o
            .host_group
            .map(|i| take_name(g, i.index(), rules.host_group(i).name()));
        r.resp_host_group = d
            .host_group
            .map(|i| take_name(g, i.index(), rules.host_group(i).name()));
    }

    /// Takes back the names [`NamePool::annotate`] put on `r` (annotated
    /// with the same `o` and `d`).
    pub fn reclaim(&mut self, r: &mut ConnRecord, o: Location, d: Location) {
        keep_name(&mut self.enclaves, o.enclave.index(), r.orig_enclave.take());
        keep_name(&mut self.enclaves, d.enclave.index(), r.resp_enclave.take());
        if let Some(i) = o.host_group {
            keep_name(&mut self.groups, i.index(), r.orig_host_group.take());
        }
        if let Some(i) = d.host_group {
            keep_name(&mut self.groups, i.index(), r.resp_host_group.take());
        }
    }
}

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

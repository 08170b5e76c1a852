//! Host groups: named sets of addresses or networks inside one enclave,
//! such as the provider's jump hosts, monitoring or backup servers, or a
//! customer's domain controllers.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::enclave::EnclaveId;

/// Index of a host group in [`Rules::host_groups`](crate::Rules::host_groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HostGroupId(pub(crate) u32);

impl HostGroupId {
    /// The id of the host group at `index` in a list of host groups.
    pub fn new(index: u32) -> Self {
        HostGroupId(index)
    }

    /// The position in the host-group list.
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// A named set of addresses and networks, all inside one enclave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostGroup {
    pub(crate) name: String,
    pub(crate) enclave: EnclaveId,
    pub(crate) members: Vec<IpNet>,
    pub(crate) description: Option<String>,
}

impl HostGroup {
    /// Builds a host group (single addresses are /32 or /128 networks).
    pub fn new(name: impl Into<String>, enclave: EnclaveId, members: Vec<IpNet>) -> Self {
        HostGroup {
            name: name.into(),
            enclave,
            members,
            description: None,
        }
    }

    /// The name, unique among enclaves and host groups.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The enclave every member lies in.
    pub fn enclave(&self) -> EnclaveId {
        self.enclave
    }

    /// The members, as networks.
    pub fn members(&self) -> &[IpNet] {
        &self.members
    }

    /// The free-text description from the rule file.
    pub fn description(&self) -> Option<&str> {
        self.description.as_deref()
    }

    /// Whether `addr` is one of the members (by address only: whether the
    /// packet's VLAN puts it in this group's enclave is
    /// [`Location`](crate::Location)'s business).
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.members.iter().any(|n| n.contains(&addr))
    }
}

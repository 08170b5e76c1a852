//! A map for the detector's per-host sets (hosts and ports a source
//! reached, hosts a host pulled from): most stay at a handful of entries,
//! a few (scanners, busy servers) grow large.

use hashbrown::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

/// Entries kept in a plain vector, searched linearly, before the map
/// becomes a hash map.
const FEW: usize = 16;

/// A map that is a short vector (one allocation, no hashing) while it
/// holds at most [`FEW`] entries, and a hash map beyond. Same contents
/// and answers either way; there is no iteration, so no order to keep.
#[derive(Debug)]
pub(crate) enum SmallMap<K, V> {
    /// At most [`FEW`] entries.
    Few(Vec<(K, V)>),
    /// More.
    Many(HashMap<K, V>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        SmallMap::Few(Vec::new())
    }
}

impl<K: Eq + Hash + Copy, V> SmallMap<K, V> {
    /// Entries held.
    pub(crate) fn len(&self) -> usize {
        match self {
            SmallMap::Few(v) => v.len(),
            SmallMap::Many(m) => m.len(),
        }
    }

    /// Forgets every entry (a vector keeps its allocation).
    pub(crate) fn clear(&mut self) {
        match self {
            SmallMap::Few(v) => v.clear(),
            SmallMap::Many(_) => *self = SmallMap::default(),
        }
    }

    /// The value of `key`, inserted as `default()` if absent; and whether
    /// it was inserted.
    pub(crate) fn entry_or_insert_with(
        &mut self,
        key: K,
        default: impl FnOnce() -> V,
    ) -> (&mut V, bool) {
        if let SmallMap::Few(v) = self {
            if v.len() >= FEW && !v.iter().any(|(k, _)| *k == key) {
                let map: HashMap<K, V> = std::mem::take(v).into_iter().collect();
                *self = SmallMap::Many(map);
            }
        }
        match self {
            SmallMap::Few(v) => match v.iter().position(|(k, _)| *k == key) {
                Some(i) => (&mut v[i].1, false),
                None => {
                    v.push((key, default()));
                    let last = v.len() - 1;
                    (&mut v[last].1, true)
                }
            },
            SmallMap::Many(m) => {
                let mut inserted = false;
                let value = m.entry(key).or_insert_with(|| {
                    inserted = true;
                    default()
                });
                (value, inserted)
            }
        }
    }

    /// The value of `key`, if held.
    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        match self {
            SmallMap::Few(v) => v.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v),
            SmallMap::Many(m) => m.get_mut(key),
        }
    }

    /// Keeps the entries `keep` says to.
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(&K, &mut V) -> bool) {
        match self {
            SmallMap::Few(v) => v.retain_mut(|(k, v)| keep(k, v)),
            SmallMap::Many(m) => m.retain(|k, v| keep(k, v)),
        }
    }

    /// Inserts `key` (with `value`) if absent; whether it was.
    pub(crate) fn insert_new(&mut self, key: K, value: V) -> bool {
        self.entry_or_insert_with(key, || value).1
    }
}

/// An address as two machine words, for the keys of a [`SmallMap`]: a
/// linear search compares two integers per entry instead of matching on
/// [`IpAddr`]'s variants. IPv4 is stored in its IPv4-mapped IPv6 form
/// (`::ffff:a.b.c.d`), as Zeek stores it; a host that appears both as IPv4
/// and as the mapped IPv6 address is one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct HostBits([u64; 2]);

impl HostBits {
    pub(crate) fn of(addr: IpAddr) -> HostBits {
        // The bytes in memory order: equal bytes, equal words.
        let word = |b: [u8; 8]| u64::from_ne_bytes(b);
        match addr {
            IpAddr::V4(a) => {
                let [w, x, y, z] = a.octets();
                HostBits([0, word([0, 0, 0xff, 0xff, w, x, y, z])])
            }
            IpAddr::V6(a) => {
                let o = a.octets();
                HostBits([
                    word([o[0], o[1], o[2], o[3], o[4], o[5], o[6], o[7]]),
                    word([o[8], o[9], o[10], o[11], o[12], o[13], o[14], o[15]]),
                ])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn agrees_with_a_btree_map_across_the_switch_to_hashing() {
        let mut small: SmallMap<u16, u32> = SmallMap::default();
        let mut reference = BTreeMap::new();
        // A deterministic mix of repeats and new keys, past FEW, cleared
        // half-way.
        let mut x = 7u32;
        for step in 0..2000 {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let key = ((x >> 16) % 60) as u16;
            let (v, inserted) = small.entry_or_insert_with(key, || 0);
            *v += 1;
            let r = reference.entry(key).or_insert(0);
            assert_eq!(inserted, *r == 0, "step {step}, key {key}");
            *r += 1;
            assert_eq!(*v, *r);
            assert_eq!(small.len(), reference.len());
            if step == 1000 {
                small.clear();
                reference.clear();
                assert_eq!(small.len(), 0);
            }
            if step % 500 == 250 {
                small.retain(|k, _| k % 3 != 0);
                reference.retain(|k, _| k % 3 != 0);
                assert_eq!(small.len(), reference.len());
            }
            let probe = (step % 61) as u16;
            assert_eq!(
                small.get_mut(&probe).map(|v| *v),
                reference.get(&probe).copied()
            );
        }
        assert!(matches!(small, SmallMap::Many(_)), "60 keys outgrow FEW");
        assert!(!small.insert_new(3, 0), "3 is held");
    }

    #[test]
    fn host_bits_tell_addresses_apart_except_an_ipv4_and_its_mapped_form() {
        let addrs: Vec<IpAddr> = [
            "10.0.0.1",
            "10.0.0.2",
            "1.0.0.10",
            "0.0.0.0",
            "::",
            "::1",
            "::a00:1",
            "2001:db8::1",
            "2001:db8::1:0:0:1",
            "fe80::1",
        ]
        .iter()
        .map(|a| a.parse().unwrap())
        .collect();
        for a in &addrs {
            for b in &addrs {
                assert_eq!(HostBits::of(*a) == HostBits::of(*b), a == b, "{a} vs {b}");
            }
        }
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(HostBits::of(v4), HostBits::of(mapped));
    }
}

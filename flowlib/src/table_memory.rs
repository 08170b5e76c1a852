//! Where a [`FlowTable`](crate::FlowTable)'s memory goes: one row per part
//! (slabs, side slots, index, timer wheel...), each with the bytes its live
//! contents use and the bytes it holds (its capacity), so the cost of a
//! live flow can be read part by part.

use std::fmt;

/// One part of the table's memory.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct MemoryPart {
    /// What the part is.
    pub name: &'static str,
    /// Entries in use.
    pub entries: usize,
    /// Bytes of one entry.
    pub entry_bytes: usize,
    /// Bytes in use: `entries` x `entry_bytes`.
    pub used: usize,
    /// Bytes held (capacity), at least `used`.
    pub held: usize,
}

/// A breakdown of a table's memory at one instant.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableMemory {
    /// Live connections.
    pub live: usize,
    /// Live TCP connections (the others are UDP, ICMP or other protocols).
    pub live_tcp: usize,
    /// The parts.
    pub parts: Vec<MemoryPart>,
}

impl TableMemory {
    /// Bytes in use, all parts.
    pub fn used(&self) -> usize {
        self.parts.iter().map(|p| p.used).sum()
    }

    /// Bytes held, all parts.
    pub fn held(&self) -> usize {
        self.parts.iter().map(|p| p.held).sum()
    }
}

impl fmt::Display for TableMemory {
    /// A table: one line per part, bytes per live flow used and held.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = |b: usize| b as f64 / self.live.max(1) as f64;
        writeln!(
            f,
            "{} live flows ({} TCP); bytes per live flow, used / held:",
            self.live, self.live_tcp
        )?;
        for p in &self.parts {
            writeln!(
                f,
                "  {:<22} {:>9} x {:>3} B  {:>7.1} / {:>7.1}",
                p.name,
                p.entries,
                p.entry_bytes,
                per(p.used),
                per(p.held)
            )?;
        }
        write!(
            f,
            "  {:<22} {:>21}  {:>7.1} / {:>7.1}",
            "total",
            "",
            per(self.used()),
            per(self.held())
        )
    }
}

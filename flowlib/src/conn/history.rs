//! Zeek's `history` string: letters in order of first occurrence per
//! direction, upper case for the originator, with scaled repeats for
//! retransmissions, zero windows and gaps.

/// History bits, per role; the responder's are shifted left by 8.
pub(crate) mod bit {
    pub const SYN: u16 = 0x1;
    pub const FIN: u16 = 0x2;
    pub const RST: u16 = 0x4;
    pub const FIN_RST: u16 = 0x8;
    pub const DATA: u16 = 0x10;
    pub const ACK: u16 = 0x20;
    pub const MULTI_FLAG: u16 = 0x40;
}

/// Longest history kept; later letters are dropped (Zeek's histories of
/// real connections stay far below this).
const MAX_LEN: usize = 30;

/// Every letter a history can hold; a letter is stored as its 5-bit index
/// here, plus one (0 is never stored).
const ALPHABET: &[u8; 23] = b"^SHADFRIQTWGshadfriqtwg";

/// Bytes of packed letters: 5 bits each.
const PACKED: usize = (MAX_LEN * 5).div_ceil(8);

/// The history string, stored inline with 5 bits per letter.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct History {
    seen: u16,
    len: u8,
    letters: [u8; PACKED],
}

impl History {
    /// Appends `letter` (lower-cased for the responder) the first time `mask`
    /// is seen for that role; returns whether it had been seen before.
    pub(crate) fn check(&mut self, is_orig: bool, mask: u16, letter: u8) -> bool {
        let mask = if is_orig { mask } else { mask << 8 };
        if self.seen & mask != 0 {
            return true;
        }
        self.seen |= mask;
        self.push(cased(is_orig, letter));
        false
    }

    /// Appends a letter unconditionally (cased by role).
    pub(crate) fn add(&mut self, is_orig: bool, letter: u8) {
        self.push(cased(is_orig, letter));
    }

    /// Appends the flip marker.
    pub(crate) fn flip(&mut self) {
        self.push(b'^');
    }

    fn push(&mut self, c: u8) {
        let i = usize::from(self.len);
        if i >= MAX_LEN {
            return;
        }
        let Some(code) = ALPHABET.iter().position(|&a| a == c) else {
            debug_assert!(false, "history letter {c} outside the alphabet");
            return;
        };
        let code = code + 1;
        for k in 0..5 {
            if code >> k & 1 != 0 {
                let b = i * 5 + k;
                self.letters[b / 8] |= 1 << (b % 8);
            }
        }
        self.len += 1;
    }

    fn letter(&self, i: usize) -> u8 {
        let mut code = 0usize;
        for k in 0..5 {
            let b = i * 5 + k;
            code |= usize::from(self.letters[b / 8] >> (b % 8) & 1) << k;
        }
        ALPHABET[code - 1]
    }

    /// The letters so far.
    pub(crate) fn render(&self) -> String {
        let mut s = String::with_capacity(usize::from(self.len));
        for i in 0..usize::from(self.len) {
            s.push(char::from(self.letter(i)));
        }
        s
    }
}

fn cased(is_orig: bool, letter: u8) -> u8 {
    if is_orig {
        letter.to_ascii_uppercase()
    } else {
        letter.to_ascii_lowercase()
    }
}

/// A repeated event recorded at its 1st, 10th, 100th, ... occurrence.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct ScaledCounter {
    count: u32,
}

impl ScaledCounter {
    /// Counts one occurrence; returns whether it is one to record.
    pub(crate) fn bump(&mut self) -> bool {
        self.count = self.count.saturating_add(1);
        let mut c = self.count;
        while c % 10 == 0 {
            c /= 10;
        }
        c == 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_once_per_role_and_cased() {
        let mut h = History::default();
        h.check(true, bit::SYN, b'S');
        h.check(false, bit::SYN, b'H');
        h.check(true, bit::ACK, b'A');
        h.check(true, bit::ACK, b'A');
        h.check(false, bit::DATA, b'D');
        assert_eq!(h.render(), "ShAd");
    }

    #[test]
    fn scaled_counter_fires_at_powers_of_ten() {
        let mut c = ScaledCounter::default();
        let fired: Vec<u32> = (1..=1000).filter(|_| c.bump()).collect();
        assert_eq!(fired.len(), 4);
    }
}

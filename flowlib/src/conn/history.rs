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
pub(crate) const MAX_LEN: usize = 30;

/// Every letter a history can hold; a letter is stored as its 5-bit index
/// here, plus one (0 is never stored).
const ALPHABET: &[u8; 23] = b"^SHADFRIQTWGshadfriqtwg";

/// Each ASCII letter's code: its index in [`ALPHABET`] plus one; 0 for
/// anything outside it.
const CODES: [u8; 128] = {
    let mut t = [0u8; 128];
    let mut i = 0;
    while i < ALPHABET.len() {
        t[ALPHABET[i] as usize] = i as u8 + 1;
        i += 1;
    }
    t
};

/// The 5-bit code a history stores for `letter` (0: not a history letter).
pub(crate) fn letter_code(letter: u8) -> u8 {
    CODES.get(usize::from(letter)).copied().unwrap_or(0)
}

/// Bytes of packed letters: 5 bits each.
const PACKED: usize = (MAX_LEN * 5).div_ceil(8);

/// Letters [`History::split`] keeps in its 64-bit inline part (with the
/// seen bits and the length).
pub(crate) const INLINE_LETTERS: usize = 9;

/// Bytes of the letters past the inline ones, 5 bits each.
pub(crate) const MORE_BYTES: usize = ((MAX_LEN - INLINE_LETTERS) * 5).div_ceil(8);

/// Bits of the inline letters.
const INLINE_BITS: u32 = INLINE_LETTERS as u32 * 5;
const INLINE_MASK: u64 = (1 << INLINE_BITS) - 1;

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
    #[cfg(test)]
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
    #[cfg(test)]
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

    pub(crate) fn letter(&self, i: usize) -> u8 {
        let mut code = 0usize;
        for k in 0..5 {
            let b = i * 5 + k;
            code |= usize::from(self.letters[b / 8] >> (b % 8) & 1) << k;
        }
        ALPHABET[code - 1]
    }

    /// Letters so far.
    pub(crate) fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// The history as 64 bits (seen bits, length and the first
    /// [`INLINE_LETTERS`] letters) and the packed letters after those.
    pub(crate) fn split(&self) -> (u64, [u8; MORE_BYTES]) {
        // The letters are one little-endian bit stream of 5-bit codes; its
        // first 45 bits are the inline letters, the next 105 the others.
        let (lo, hi) = self.stream();
        let seen = u64::from(self.seen & 0x7f) | u64::from(self.seen >> 8 & 0x7f) << 7;
        let inline = seen | u64::from(self.len) << 14 | ((lo as u64) & INLINE_MASK) << 19;
        let mut more = [0; MORE_BYTES];
        if usize::from(self.len) > INLINE_LETTERS {
            let rest = lo >> INLINE_BITS | u128::from(hi) << (128 - INLINE_BITS);
            more.copy_from_slice(&rest.to_le_bytes()[..MORE_BYTES]);
        }
        (inline, more)
    }

    /// The history back from [`History::split`]'s parts.
    pub(crate) fn join(inline: u64, more: &[u8; MORE_BYTES]) -> History {
        let seen = (inline & 0x7f) as u16 | ((inline >> 7 & 0x7f) as u16) << 8;
        let len = ((inline >> 14 & 0x1f) as u8).min(MAX_LEN as u8);
        let mut rest = [0u8; 16];
        rest[..MORE_BYTES].copy_from_slice(more);
        let rest = u128::from_le_bytes(rest);
        let lo = u128::from(inline >> 19 & INLINE_MASK) | rest << INLINE_BITS;
        let hi = (rest >> (128 - INLINE_BITS)) as u32;
        let mut letters = [0; PACKED];
        letters[..16].copy_from_slice(&lo.to_le_bytes());
        letters[16..].copy_from_slice(&hi.to_le_bytes()[..PACKED - 16]);
        History { seen, len, letters }
    }

    /// The letters' bit stream: its first 128 bits, and the rest.
    fn stream(&self) -> (u128, u32) {
        let mut lo = [0u8; 16];
        lo.copy_from_slice(&self.letters[..16]);
        let mut hi = [0u8; 4];
        hi[..PACKED - 16].copy_from_slice(&self.letters[16..]);
        (u128::from_le_bytes(lo), u32::from_le_bytes(hi))
    }

    /// The letters so far.
    #[cfg(test)]
    pub(crate) fn render(&self) -> String {
        let mut s = String::with_capacity(usize::from(self.len));
        for i in 0..usize::from(self.len) {
            s.push(char::from(self.letter(i)));
        }
        s
    }
}

pub(crate) fn cased(is_orig: bool, letter: u8) -> u8 {
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
    /// A counter that has counted nothing.
    pub(crate) const ZERO: ScaledCounter = ScaledCounter { count: 0 };

    /// Whether it has counted anything.
    pub(crate) fn is_zero(self) -> bool {
        self.count == 0
    }

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
    fn split_and_join_give_back_every_history() {
        let mut h = History::default();
        for n in 0..=MAX_LEN + 2 {
            let (inline, more) = h.split();
            assert_eq!(History::join(inline, &more), h, "{n} letters");
            assert_eq!(more == [0; MORE_BYTES], h.len() <= INLINE_LETTERS);
            let letter = ALPHABET[n % ALPHABET.len()];
            h.check(n % 2 == 0, 1 << (n % 7), letter);
            h.add(n % 3 == 0, letter);
        }
        assert_eq!(h.len(), MAX_LEN);
    }

    #[test]
    fn letter_codes_follow_the_alphabet() {
        for (i, &c) in ALPHABET.iter().enumerate() {
            assert_eq!(usize::from(letter_code(c)), i + 1);
        }
        assert_eq!(letter_code(b'x'), 0);
        assert_eq!(letter_code(0xff), 0);
    }

    #[test]
    fn scaled_counter_fires_at_powers_of_ten() {
        let mut c = ScaledCounter::default();
        let fired: Vec<u32> = (1..=1000).filter(|_| c.bump()).collect();
        assert_eq!(fired.len(), 4);
    }
}

//! Zeek's `likely_server_ports`: when a connection's first packet comes
//! *from* one of these ports (and not to one), the roles are flipped so the
//! client is the originator.

/// TCP ports registered by Zeek's default protocol scripts.
const TCP: &[u16] = &[
    21, 22, 23, 25, 53, 80, 81, 88, 110, 135, 139, 143, 389, 443, 445, 502, 563, 585, 587, 614,
    631, 636, 989, 990, 992, 993, 995, 1080, 1883, 2811, 3128, 3268, 3306, 3389, 5222, 5223, 5269,
    6666, 6667, 6668, 6669, 8000, 8080, 8888, 20000,
];

/// UDP ports registered by Zeek's default protocol and tunnel scripts.
const UDP: &[u16] = &[
    53, 67, 88, 123, 137, 161, 162, 443, 514, 1812, 2123, 2152, 3478, 3544, 4789, 5060, 5072, 5247,
    5353, 5355, 6081, 20000,
];

/// Whether `port` of IP protocol `proto` (6 or 17) is a likely server port.
pub fn is_likely_server_port(proto: u8, port: u16) -> bool {
    match proto {
        6 => TCP.binary_search(&port).is_ok(),
        17 => UDP.binary_search(&port).is_ok(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_sorted_for_binary_search() {
        assert!(TCP.windows(2).all(|w| w[0] < w[1]));
        assert!(UDP.windows(2).all(|w| w[0] < w[1]));
        assert!(is_likely_server_port(6, 443));
        assert!(!is_likely_server_port(17, 80));
    }
}

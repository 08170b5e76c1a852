//! Parsers for the tshark and argus reference summaries in `expected/`.

/// Transport section of a tshark conversation table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Transport {
    Tcp,
    Udp,
    Sctp,
}

/// One row of `tshark -q -z conv,tcp -z conv,udp -z conv,sctp`.
///
/// tshark names the endpoints A and B; `<-` counts frames from B to A and
/// `->` from A to B. Byte counts are whole frame lengths printed with units
/// (`16 kB`), so they are lossy and kept only for display.
#[derive(Debug, Clone, PartialEq)]
pub struct TsharkConv {
    pub transport: Transport,
    /// `host:port`; IPv6 hosts are not bracketed (the port follows the last `:`).
    pub a: String,
    pub b: String,
    pub frames_b_to_a: u64,
    pub frames_a_to_b: u64,
    pub frames_total: u64,
    pub bytes_total: String,
}

/// A parsed `NAME.tshark-conv.txt`.
#[derive(Debug, Clone, Default)]
pub struct TsharkConvs {
    pub convs: Vec<TsharkConv>,
    /// `# tshark stderr:` lines (read errors such as a truncated file).
    pub errors: Vec<String>,
}

impl TsharkConvs {
    pub fn frames(&self, transport: Transport) -> u64 {
        self.convs
            .iter()
            .filter(|c| c.transport == transport)
            .map(|c| c.frames_total)
            .sum()
    }

    pub fn count(&self, transport: Transport) -> usize {
        self.convs
            .iter()
            .filter(|c| c.transport == transport)
            .count()
    }
}

pub fn parse_tshark_conv(text: &str) -> Result<TsharkConvs, String> {
    let mut out = TsharkConvs::default();
    let mut section = None;
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if let Some(error) = line.strip_prefix("# tshark stderr:") {
            out.errors.push(error.trim().to_owned());
            continue;
        }
        match line.trim() {
            "TCP Conversations" => section = Some(Transport::Tcp),
            "UDP Conversations" => section = Some(Transport::Udp),
            "SCTP Conversations" => section = Some(Transport::Sctp),
            _ => {}
        }
        if !line.contains("<->") {
            continue;
        }
        let transport =
            section.ok_or_else(|| format!("line {line_no}: conversation before any section"))?;
        let tokens: Vec<&str> = line.split_whitespace().collect();
        // A <-> B  f b unit  f b unit  f b unit  rel_start duration
        let [a, "<->", b, f_ba, _, _, f_ab, _, _, f_total, total_bytes, total_unit, _, _] =
            tokens[..]
        else {
            return Err(format!(
                "line {line_no}: unexpected conversation row: {line}"
            ));
        };
        let frames = |s: &str| {
            s.parse::<u64>()
                .map_err(|e| format!("line {line_no}: bad frame count {s:?}: {e}"))
        };
        let conv = TsharkConv {
            transport,
            a: a.to_owned(),
            b: b.to_owned(),
            frames_b_to_a: frames(f_ba)?,
            frames_a_to_b: frames(f_ab)?,
            frames_total: frames(f_total)?,
            bytes_total: format!("{total_bytes} {total_unit}"),
        };
        if conv.frames_a_to_b + conv.frames_b_to_a != conv.frames_total {
            return Err(format!("line {line_no}: directions do not add up: {line}"));
        }
        out.convs.push(conv);
    }
    if section.is_none() {
        return Err("no conversation table found".to_owned());
    }
    Ok(out)
}

/// One flow of `racluster ... -s stime ltime proto saddr sport dir daddr dport
/// spkts dpkts sbytes dbytes state`.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgusFlow {
    pub proto: String,
    pub src: String,
    pub sport: String,
    pub dst: String,
    pub dport: String,
    pub src_pkts: u64,
    pub dst_pkts: u64,
}

/// A parsed `NAME.argus-flows.tsv`.
#[derive(Debug, Clone, Default)]
pub struct ArgusFlows {
    pub flows: Vec<ArgusFlow>,
    /// True when argus could not read the capture (its error message is in
    /// the file instead of flows), e.g. for link types SLL2 and IPv4.
    pub unreadable: bool,
}

impl ArgusFlows {
    /// Flows and packets of the given protocols (argus' proto names).
    pub fn totals(&self, protos: &[&str]) -> (usize, u64) {
        self.flows
            .iter()
            .filter(|f| protos.contains(&f.proto.as_str()))
            .fold((0, 0), |(n, p), f| (n + 1, p + f.src_pkts + f.dst_pkts))
    }
}

pub fn parse_argus_flows(text: &str) -> Result<ArgusFlows, String> {
    let mut out = ArgusFlows::default();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        if line.starts_with("# argus/racluster stderr:") {
            out.unreadable = true;
        }
        if line.starts_with('#') || line.starts_with("StartTime\t") || line.trim().is_empty() {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let [_, _, proto, src, sport, _dir, dst, dport, spkts, dpkts, _, _, _] = cols[..] else {
            return Err(format!("line {line_no}: expected 13 columns: {line}"));
        };
        let pkts = |s: &str| {
            s.trim()
                .parse::<u64>()
                .map_err(|e| format!("line {line_no}: bad packet count {s:?}: {e}"))
        };
        out.flows.push(ArgusFlow {
            proto: proto.to_owned(),
            src: src.to_owned(),
            sport: sport.to_owned(),
            dst: dst.to_owned(),
            dport: dport.to_owned(),
            src_pkts: pkts(spkts)?,
            dst_pkts: pkts(dpkts)?,
        });
    }
    Ok(out)
}

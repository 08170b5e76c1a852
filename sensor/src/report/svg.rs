//! The report's charts as inline SVG: heat maps, the alert timeline and
//! bars. Every text that goes in is escaped.

use super::html::esc;
use crate::inventory::render::utc;
use rules::inventory::drift::human_bytes;
use rules::inventory::Verdict;
use std::fmt::Write;

/// One cell of a heat map.
pub struct Cell {
    /// The value (connections or bytes); 0 is an empty cell.
    pub value: f64,
    /// Whether a relationship allowed the cell's connections.
    pub verdict: Verdict,
    /// Tooltip.
    pub title: String,
}

/// Shade of a value on a log scale up to `max`: 0.15 (smallest) to 1.
fn shade(v: f64, max: f64) -> f64 {
    if v <= 0.0 || max <= 0.0 {
        return 0.0;
    }
    0.15 + 0.85 * ((1.0 + v).ln() / (1.0 + max).ln())
}

/// A heat map of `cells[row][col]`, originators down, responders across.
/// Allowed cells are blue, cells where some connections were not allowed
/// orange, cells where none was allowed red.
pub fn heat_map(id: &str, names: &[String], cells: &[Vec<Cell>], bytes: bool) -> String {
    let n = names.len();
    let (cw, ch, left, top) = (86.0, 34.0, 150.0, 120.0);
    let (w, h) = (left + cw * n as f64 + 50.0, top + ch * n as f64 + 10.0);
    let max = cells
        .iter()
        .flatten()
        .map(|c| c.value)
        .fold(0.0_f64, f64::max);
    let mut s = format!(
        r#"<svg id="{id}" class="heat" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img">"#
    );
    for (j, name) in names.iter().enumerate() {
        let x = left + cw * j as f64 + cw / 2.0;
        let _ = write!(
            s,
            r#"<text class="col" transform="translate({x},{}) rotate(-35)">{}</text>"#,
            top - 8.0,
            esc(name)
        );
    }
    for (i, name) in names.iter().enumerate() {
        let y = top + ch * i as f64;
        let _ = write!(
            s,
            r#"<text class="row" x="{}" y="{}" text-anchor="end">{}</text>"#,
            left - 8.0,
            y + ch / 2.0 + 4.0,
            esc(name)
        );
        for (j, c) in cells[i].iter().enumerate() {
            let x = left + cw * j as f64;
            let a = shade(c.value, max);
            let fill = if c.value <= 0.0 {
                "#f4f5f7".to_owned()
            } else {
                match c.verdict {
                    Verdict::Allowed | Verdict::Unknown => format!("rgba(31,111,191,{a:.3})"),
                    Verdict::Partly => format!("rgba(224,101,27,{a:.3})"),
                    Verdict::NotAllowed => format!("rgba(200,40,40,{a:.3})"),
                }
            };
            let label = if c.value <= 0.0 {
                String::new()
            } else if bytes {
                human_bytes(c.value)
            } else {
                format!("{}", c.value as u64)
            };
            let ink = if a > 0.6 { "#fff" } else { "#111" };
            let _ = write!(
                s,
                r##"<g><title>{}</title><rect x="{x}" y="{y}" width="{}" height="{}" fill="{fill}" stroke="#fff"/><text x="{}" y="{}" text-anchor="middle" fill="{ink}">{}</text></g>"##,
                esc(&c.title),
                cw - 1.0,
                ch - 1.0,
                x + cw / 2.0,
                y + ch / 2.0 + 4.0,
                esc(&label)
            );
        }
    }
    s.push_str("</svg>");
    s
}

/// One alert on the timeline.
pub struct Point {
    /// Capture time (seconds).
    pub ts: f64,
    /// Lane index (0 = critical).
    pub lane: usize,
    /// Connections folded into the alert.
    pub count: u64,
    /// Anchor of the alert's details.
    pub anchor: String,
    /// Tooltip.
    pub title: String,
}

/// The alerts over time, one lane per severity.
pub fn timeline(lanes: &[&str], points: &[Point], from: f64, to: f64) -> String {
    let (left, right, lane_h, top) = (90.0, 50.0, 34.0, 10.0);
    let width = 1000.0;
    let height = top + lane_h * lanes.len() as f64 + 40.0;
    let span = (to - from).max(1.0);
    let x_of = |t: f64| left + (width - left - right) * ((t - from) / span).clamp(0.0, 1.0);
    let mut s = format!(
        r#"<svg id="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">"#
    );
    for (i, lane) in lanes.iter().enumerate() {
        let y = top + lane_h * i as f64;
        let _ = write!(
            s,
            r#"<rect x="{left}" y="{y}" width="{}" height="{}" class="lane{}"/><text x="{}" y="{}" text-anchor="end" class="sev-{lane}">{}</text>"#,
            width - left - right,
            lane_h - 2.0,
            i % 2,
            left - 8.0,
            y + lane_h / 2.0 + 4.0,
            esc(lane)
        );
    }
    let axis_y = top + lane_h * lanes.len() as f64;
    for k in 0..=6 {
        let t = from + span * k as f64 / 6.0;
        let x = x_of(t);
        let _ = write!(
            s,
            r#"<line x1="{x}" x2="{x}" y1="{top}" y2="{}" class="tick"/><text x="{x}" y="{}" text-anchor="middle" class="axis">{}</text>"#,
            axis_y + 4.0,
            axis_y + 20.0,
            esc(&utc(t)[5..16])
        );
    }
    for p in points {
        let r = 4.0 + (p.count as f64).ln().max(0.0) * 1.5;
        let _ = write!(
            s,
            r##"<a href="#{}"><circle cx="{:.1}" cy="{}" r="{r:.1}" class="dot sev-{}"><title>{}</title></circle></a>"##,
            esc(&p.anchor),
            x_of(p.ts),
            top + lane_h * p.lane as f64 + lane_h / 2.0 - 1.0,
            lanes.get(p.lane).copied().unwrap_or("low"),
            esc(&p.title)
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal bars: (label, value, verdict).
pub fn bars(id: &str, items: &[(String, f64, Verdict)]) -> String {
    let (left, bar_h, width) = (400.0, 22.0, 1060.0);
    let height = bar_h * items.len() as f64 + 10.0;
    let max = items.iter().map(|i| i.1).fold(0.0_f64, f64::max).max(1.0);
    let mut s = format!(
        r#"<svg id="{id}" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">"#
    );
    for (i, (label, v, verdict)) in items.iter().enumerate() {
        let y = bar_h * i as f64 + 4.0;
        let w = (width - left - 110.0) * v / max;
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{left}" y="{y}" width="{w:.1}" height="{}" class="{}"/><text x="{:.1}" y="{}">{}</text>"#,
            left - 8.0,
            y + bar_h / 2.0 + 3.0,
            esc(label),
            bar_h - 6.0,
            match verdict {
                Verdict::Allowed | Verdict::Unknown => "bar-ok",
                Verdict::Partly => "bar-partly",
                Verdict::NotAllowed => "bar-bad",
            },
            left + w + 6.0,
            y + bar_h / 2.0 + 3.0,
            esc(&human_bytes(*v))
        );
    }
    s.push_str("</svg>");
    s
}

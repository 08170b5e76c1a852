//! The report page: one HTML document with inline CSS, script and SVG.
//! Every value from the input (names, addresses, reasons, file names) is
//! escaped with [`esc`].

use super::svg::{self, Cell, Point};
use super::Evidence;
use crate::inventory::render::{services_text, utc};
use rules::detector::Alert;
use rules::inventory::drift::{hours_text, human_bytes};
use rules::inventory::{Inventory, Verdict};
use rules::Rules;
use std::fmt::Write;

/// Severities, most severe first (the timeline's lanes).
pub const SEVERITIES: [&str; 4] = ["critical", "high", "medium", "low"];

/// What the page shows.
pub struct ReportInput<'a> {
    /// The page title.
    pub title: String,
    /// Names of the capture files.
    pub files: Vec<String>,
    /// The rules in force.
    pub rules: &'a Rules,
    /// The baseline file, if one was used.
    pub baseline: Option<String>,
    /// The relationship inventory (host-group level).
    pub inventory: &'a Inventory,
    /// The alerts and the records behind them.
    pub evidence: &'a Evidence,
    /// The replay summary.
    pub summary: String,
}

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            c => o.push(c),
        }
    }
    o
}

const STYLE: &str = r#"
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1d2330;background:#fafbfc}
header{background:#1d2b45;color:#fff;padding:18px 28px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;color:#c9d3e6}
main{padding:8px 28px 40px}
section{background:#fff;border:1px solid #e1e4ea;border-radius:6px;padding:14px 18px;margin:16px 0}
h2{font-size:17px;margin:0 0 10px}
.cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #e1e4ea;border-radius:6px;padding:8px 14px;min-width:110px;background:#fff}
.card b{display:block;font-size:22px}
.heat text{font-size:12px}.heat text.col,.heat text.row{fill:#333}
.maps{display:flex;gap:24px;flex-wrap:wrap}
.legend span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:-1px}
.lane0{fill:#f6f7f9}.lane1{fill:#eef0f3}.tick{stroke:#ccd;stroke-dasharray:2 3}.axis{font-size:11px;fill:#555}
.dot{stroke:#fff;stroke-width:1}
circle.sev-critical{fill:#b3122e}circle.sev-high{fill:#e0651b}circle.sev-medium{fill:#d9a400}circle.sev-low{fill:#5b8def}
.bar-ok{fill:#1f6fbf}.bar-partly{fill:#e0651b}.bar-bad{fill:#c82828}
svg text{font-size:12px;fill:#222}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #e7e9ee;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f2f4f7;position:sticky;top:0}
td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.v-not-allowed td.verdict,tr.v-partly td.verdict{color:#b3122e;font-weight:600}
tr.hidden{display:none}
input#inv-search{font-size:14px;padding:6px 10px;width:360px;border:1px solid #c5cad3;border-radius:4px}
details.alert{border:1px solid #e1e4ea;border-left:6px solid #888;border-radius:4px;margin:6px 0;padding:4px 10px;background:#fff}
details.alert.sev-critical{border-left-color:#b3122e}details.alert.sev-high{border-left-color:#e0651b}
details.alert.sev-medium{border-left-color:#d9a400}details.alert.sev-low{border-left-color:#5b8def}
details.alert summary{cursor:pointer;padding:3px 0}
.badge{display:inline-block;padding:0 7px;border-radius:9px;color:#fff;font-size:12px;margin-right:6px}
.badge.sev-critical{background:#b3122e}.badge.sev-high{background:#e0651b}.badge.sev-medium{background:#b58900}.badge.sev-low{background:#5b8def}
tr.raised td{background:#fff4d6}
code{font-size:12px}
.muted{color:#667}
"#;

const SCRIPT: &str = r#"
(function () {
  var input = document.getElementById('inv-search');
  var rows = Array.prototype.slice.call(document.querySelectorAll('#inventory tbody tr'));
  var shown = document.getElementById('inv-shown');
  function filter() {
    var words = input.value.toLowerCase().split(/\s+/).filter(function (w) { return w.length > 0; });
    var n = 0;
    rows.forEach(function (r) {
      var text = r.textContent.toLowerCase();
      var hit = words.every(function (w) { return text.indexOf(w) >= 0; });
      r.classList.toggle('hidden', !hit);
      if (hit) { n += 1; }
    });
    shown.textContent = n + ' of ' + rows.length + ' relationships shown';
  }
  input.addEventListener('input', filter);
  var q = new URLSearchParams(location.search).get('q');
  if (q) { input.value = q; }
  filter();
  var open = document.getElementById('alerts-open');
  var close = document.getElementById('alerts-close');
  function all(v) {
    document.querySelectorAll('details.alert').forEach(function (d) { d.open = v; });
  }
  open.addEventListener('click', function () { all(true); });
  close.addEventListener('click', function () { all(false); });
  if (location.hash) {
    var target = document.getElementById(location.hash.slice(1));
    if (target && target.tagName === 'DETAILS') { target.open = true; }
  }
  window.addEventListener('hashchange', function () {
    var t = document.getElementById(location.hash.slice(1));
    if (t && t.tagName === 'DETAILS') { t.open = true; }
  });
  document.body.setAttribute('data-ready', 'yes');
  console.log('flowmon-report-ready');
})();
"#;

fn severity_rank(s: &str) -> usize {
    SEVERITIES.iter().position(|x| *x == s).unwrap_or(3)
}

fn alert_anchor(a: &Alert) -> String {
    format!("alert-{}", a.alert_id)
}

fn side(enclave: &str, group: Option<&str>) -> String {
    match group {
        Some(g) => format!("{enclave}/{g}"),
        None => enclave.to_owned(),
    }
}

/// Renders the report.
pub fn render(input: &ReportInput<'_>) -> String {
    let inv = input.inventory;
    let ev = input.evidence;
    let mut p = String::with_capacity(1 << 16);
    let _ = write!(
        p,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{}</title><style>{STYLE}</style></head><body>
<header><h1>{}</h1><p>Captures: {} · rules: {}{} · {}</p></header><main>
"#,
        esc(&input.title),
        esc(&input.title),
        esc(&input.files.join(", ")),
        esc(input.rules.file_name()),
        match &input.baseline {
            Some(b) => format!(" · baseline: {}", esc(b)),
            None => String::new(),
        },
        esc(&crate::inventory::render::period(inv)),
    );
    overview(&mut p, input);
    matrix(&mut p, input);
    timeline(&mut p, input);
    top(&mut p, inv);
    inventory_table(&mut p, inv);
    alerts(&mut p, ev);
    let _ = write!(
        p,
        r#"<section><h2>Replay</h2><pre class="muted">{}</pre></section>
</main><script>{SCRIPT}</script></body></html>
"#,
        esc(&input.summary)
    );
    p
}

fn overview(p: &mut String, input: &ReportInput<'_>) {
    let inv = input.inventory;
    let ev = input.evidence;
    let not_allowed = inv
        .rows
        .iter()
        .filter(|r| matches!(r.verdict(), Verdict::NotAllowed | Verdict::Partly))
        .count();
    let _ = write!(
        p,
        r#"<section id="overview"><h2>Overview</h2><div class="cards">
<div class="card"><b id="relationship-count">{}</b>relationships</div>
<div class="card"><b id="not-allowed-count">{not_allowed}</b>not (fully) allowed</div>
<div class="card"><b id="connection-count">{}</b>connections across boundaries</div>
<div class="card"><b id="alert-count">{}</b>alerts</div>"#,
        inv.rows.len(),
        inv.connections,
        ev.alerts.len()
    );
    for s in SEVERITIES {
        let n = ev.alerts.iter().filter(|a| a.severity == s).count();
        let _ = write!(
            p,
            r#"<div class="card"><b id="alerts-{s}" data-severity="{s}">{n}</b>{s}</div>"#
        );
    }
    p.push_str("</div></section>\n");
}

fn matrix(p: &mut String, input: &ReportInput<'_>) {
    let by = input.inventory.by_enclave();
    // Every enclave of the rules, in file order, then any other name seen.
    let mut names: Vec<String> = input
        .rules
        .enclaves()
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    for r in &by.rows {
        for n in [&r.orig.enclave, &r.resp.enclave] {
            if !names.contains(n) {
                names.push(n.clone());
            }
        }
    }
    let idx = |n: &str| names.iter().position(|x| x == n).expect("listed above");
    let grid = |bytes: bool| -> Vec<Vec<Cell>> {
        let mut g: Vec<Vec<Cell>> = names
            .iter()
            .map(|_| {
                names
                    .iter()
                    .map(|_| Cell {
                        value: 0.0,
                        verdict: Verdict::Allowed,
                        title: String::new(),
                    })
                    .collect()
            })
            .collect();
        for r in &by.rows {
            let c = &mut g[idx(&r.orig.enclave)][idx(&r.resp.enclave)];
            c.value = if bytes {
                r.total_bytes() as f64
            } else {
                r.connections as f64
            };
            c.verdict = r.verdict();
            c.title = format!(
                "{} -> {}: {} connections, {} out, {} back, {}; services {}",
                r.orig.enclave,
                r.resp.enclave,
                r.connections,
                human_bytes(r.orig_bytes as f64),
                human_bytes(r.resp_bytes.unwrap_or(0) as f64),
                r.verdict().as_str(),
                services_text(r)
            );
        }
        g
    };
    let _ = write!(
        p,
        r#"<section id="matrix"><h2>Enclave to enclave</h2>
<p class="legend muted">Originators down, responders across.<span style="background:#1f6fbf"></span>every connection allowed by a relationship<span style="background:#e0651b"></span>some connections not allowed<span style="background:#c82828"></span>no connection allowed</p>
<div class="maps"><div><h3>Connections</h3>{}</div><div><h3>Bytes (both ways)</h3>{}</div></div></section>
"#,
        svg::heat_map("heat-connections", &names, &grid(false), false),
        svg::heat_map("heat-bytes", &names, &grid(true), true)
    );
}

fn timeline(p: &mut String, input: &ReportInput<'_>) {
    let ev = input.evidence;
    let inv = input.inventory;
    let (mut from, mut to) = (inv.first_ts, inv.last_ts);
    for a in &ev.alerts {
        let t = a.ts.as_secs_f64();
        if from == 0.0 || t < from {
            from = t;
        }
        to = to.max(a.last_ts.as_secs_f64());
    }
    let points: Vec<Point> = ev
        .alerts
        .iter()
        .map(|a| Point {
            ts: a.ts.as_secs_f64(),
            lane: severity_rank(a.severity),
            count: a.count,
            anchor: alert_anchor(a),
            title: format!(
                "{} {} {} -> {} ({})",
                utc(a.ts.as_secs_f64()),
                a.severity,
                a.orig_h,
                a.resp_h,
                a.reasons
                    .iter()
                    .map(|r| r.reason.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
        .collect();
    let _ = writeln!(
        p,
        r#"<section id="alert-timeline"><h2>Alerts over time</h2>{}</section>"#,
        svg::timeline(&SEVERITIES, &points, from, to)
    );
}

fn top(p: &mut String, inv: &Inventory) {
    let mut rows: Vec<_> = inv.rows.iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.total_bytes()));
    let items: Vec<(String, f64, Verdict)> = rows
        .iter()
        .take(12)
        .map(|r| {
            (
                format!("{} → {}", r.orig, r.resp),
                r.total_bytes() as f64,
                r.verdict(),
            )
        })
        .collect();
    let _ = writeln!(
        p,
        r#"<section id="top"><h2>Top relationships by volume</h2>{}</section>"#,
        svg::bars("top-volume", &items)
    );
}

fn inventory_table(p: &mut String, inv: &Inventory) {
    let _ = write!(
        p,
        r#"<section id="inventory-section"><h2>Relationship inventory</h2>
<p><input id="inv-search" type="search" placeholder="Filter: enclave, host group, service, verdict…" aria-label="Filter the inventory"> <span id="inv-shown" class="muted"></span></p>
<table id="inventory"><thead><tr><th>From</th><th>To</th><th>Services</th><th>Verdict</th><th>Relationships</th><th>Connections</th><th>Bytes out</th><th>Bytes back</th><th>First seen</th><th>Last seen</th><th>Hours of the week (UTC)</th></tr></thead><tbody>
"#
    );
    for r in &inv.rows {
        let v = r.verdict().as_str();
        let _ = writeln!(
            p,
            r#"<tr class="v-{}"><td>{}</td><td>{}</td><td>{}</td><td class="verdict">{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
            v.replace(' ', "-"),
            esc(&r.orig.to_string()),
            esc(&r.resp.to_string()),
            esc(&services_text(r)),
            esc(v),
            esc(&r
                .relationships
                .iter()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")),
            r.connections,
            esc(&human_bytes(r.orig_bytes as f64)),
            esc(&r.resp_bytes.map_or("-".into(), |b| human_bytes(b as f64))),
            esc(&utc(r.first_seen)),
            esc(&utc(r.last_seen)),
            esc(&hours_text(&r.hours)),
        );
    }
    p.push_str("</tbody></table><p class=\"muted\">A service marked ! had connections no relationship allowed.</p></section>\n");
}

fn alerts(p: &mut String, ev: &Evidence) {
    let _ = writeln!(
        p,
        r#"<section id="alerts"><h2>Alerts</h2><p><button id="alerts-open" type="button">Expand all</button> <button id="alerts-close" type="button">Collapse all</button></p>"#
    );
    if ev.alerts.is_empty() {
        p.push_str("<p class=\"muted\">No alerts.</p>");
    }
    // Most severe first, then in time order.
    let mut order: Vec<usize> = (0..ev.alerts.len()).collect();
    order.sort_by_key(|&i| (severity_rank(ev.alerts[i].severity), ev.alerts[i].ts));
    for &i in &order {
        let a = &ev.alerts[i];
        let primary = a.reasons.first().map_or("", |r| r.reason.as_str());
        let _ = write!(
            p,
            r#"<details class="alert sev-{sev}" id="{anchor}"><summary><span class="badge sev-{sev}">{sev} {score}</span>{ts} · <b>{primary}</b> · {o} ({oh}) → {d} ({dh}) {proto}/{port}{count}</summary>
<table class="reasons"><thead><tr><th>Reason</th><th>Weight</th><th>Detail</th></tr></thead><tbody>"#,
            sev = esc(a.severity),
            score = a.score,
            anchor = esc(&alert_anchor(a)),
            ts = esc(&utc(a.ts.as_secs_f64())),
            primary = esc(primary),
            o = esc(&side(&a.orig_enclave, a.orig_host_group.as_deref())),
            oh = esc(&a.orig_h.to_string()),
            d = esc(&side(&a.resp_enclave, a.resp_host_group.as_deref())),
            dh = esc(&a.resp_h.to_string()),
            proto = esc(&a.proto),
            port = a.resp_p,
            count = if a.count > 1 {
                format!(" · {} connections", a.count)
            } else {
                String::new()
            },
        );
        for r in &a.reasons {
            let _ = write!(
                p,
                r#"<tr><td>{}</td><td class="num">{}</td><td>{}</td></tr>"#,
                esc(r.reason.as_str()),
                r.weight,
                esc(&r.detail)
            );
        }
        let _ = write!(
            p,
            r#"</tbody></table><p class="muted">ATT&amp;CK: {} · relationship: {} · uid <code>{}</code> · community id <code>{}</code></p>
<table class="records"><thead><tr><th>Start (UTC)</th><th>uid</th><th>Originator</th><th>Responder</th><th>Proto</th><th>Duration</th><th>Bytes out</th><th>Bytes back</th><th>State</th><th>History</th><th>End</th></tr></thead><tbody>"#,
            esc(&a.techniques.join(", ")),
            esc(a.relationship.as_deref().unwrap_or("none")),
            esc(&a.uid),
            esc(&a.community_id)
        );
        for r in &ev.records[i] {
            let _ = write!(
                p,
                r#"<tr{}><td>{}</td><td><code>{}</code></td><td>{}:{}</td><td>{}:{}</td><td>{}</td><td class="num">{}</td><td class="num">{}</td><td class="num">{}</td><td>{}</td><td>{}</td><td>{}</td></tr>"#,
                if r.uid == a.uid {
                    r#" class="raised""#
                } else {
                    ""
                },
                esc(&utc(r.ts.as_secs_f64())),
                esc(&r.uid),
                esc(&r.orig_h.to_string()),
                r.orig_p,
                esc(&r.resp_h.to_string()),
                r.resp_p,
                esc(r.proto.name()),
                r.duration
                    .map_or("-".into(), |d| format!("{:.3}", d.as_secs_f64())),
                r.orig_bytes.map_or("-".into(), |b| b.to_string()),
                r.resp_bytes.map_or("-".into(), |b| b.to_string()),
                esc(r.conn_state.name()),
                esc(&r.history),
                esc(r.end_reason.name()),
            );
        }
        if ev.records[i].is_empty() {
            p.push_str(r#"<tr><td colspan="11" class="muted">no finished connection record of this pair (the connection was still open, or the alert came from another pair's evidence)</td></tr>"#);
        }
        if ev.more[i] > 0 {
            let _ = write!(
                p,
                r#"<tr><td colspan="11" class="muted">… and {} more connections of this pair</td></tr>"#,
                ev.more[i]
            );
        }
        p.push_str("</tbody></table></details>\n");
    }
    p.push_str("</section>\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc(r#"<script>"x" & 'y'</script>"#),
            "&lt;script&gt;&quot;x&quot; &amp; &#39;y&#39;&lt;/script&gt;"
        );
    }
}

//! The status web page: the last nights per flow, as a plain HTML table, every value
//! escaped.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::status::Status;

/// Escapes text for HTML element content and quoted attribute values: the register's
/// escaping, one rule for every page the hub writes.
pub use passerelle_policy::register::html_escape as escape_html;

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(
        || "–".to_owned(),
        |t| escape_html(&t.to_rfc3339_opts(SecondsFormat::Secs, true)),
    )
}

/// The whole page.
pub fn render(status: &Status) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<p>Version {} · up since {}",
        escape_html(&status.version),
        time(Some(status.started_at))
    );
    if let Some(s) = &status.schedule {
        let _ = write!(
            body,
            " · schedule <code>{}</code>, next run {}",
            escape_html(s),
            time(status.next_run)
        );
    }
    if status.skipped_ticks > 0 {
        let _ = write!(
            body,
            " · {} tick(s) skipped while a run was still going",
            status.skipped_ticks
        );
    }
    body.push_str("</p>\n");
    if status.nights.is_empty() {
        body.push_str("<p>No run yet.</p>\n");
    }
    for night in &status.nights {
        let _ = writeln!(
            body,
            "<h2>Run started {}{}</h2>",
            time(Some(night.started_at)),
            match night.ended_at {
                Some(e) => format!(", ended {}", time(Some(e))),
                None => " (running)".to_owned(),
            }
        );
        body.push_str(
            "<table>\n<tr><th>Flow</th><th>Outcome</th><th>Read</th><th>Sent</th>\
             <th>Unchanged</th><th>Applied</th><th>Rejected</th><th>Denied</th>\
             <th>Dead-lettered</th><th>Started</th><th>Ended</th><th>Error</th></tr>\n",
        );
        for f in &night.flows {
            let _ = writeln!(
                body,
                "<tr class=\"{o}\"><td>{}</td><td>{o}</td><td>{}</td><td>{}</td><td>{}</td>\
                 <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape_html(&f.flow),
                f.read,
                f.sent,
                f.unchanged,
                f.applied,
                f.rejected,
                f.denied,
                f.dead_lettered,
                time(f.started_at),
                time(f.ended_at),
                escape_html(f.error.as_deref().unwrap_or("")),
                o = f.outcome.as_str(),
            );
        }
        body.push_str("</table>\n");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"60\">\
         <title>Passerelle status</title><style>\
         body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #999;padding:.2em .6em;text-align:right}}\
         td:first-child,td:nth-child(2),td:last-child{{text-align:left}}\
         tr.failed{{background:#fdd}}tr.partial{{background:#ffd}}\
         </style></head><body>\n<h1>Passerelle status</h1>\n{body}\
         <p><a href=\"/api/status\">JSON</a> · <a href=\"/metrics\">metrics</a></p>\n\
         </body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{FlowOutcome, FlowStatus};

    #[test]
    fn escapes_everything_it_shows() {
        assert_eq!(
            escape_html(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let mut s = Status::new("0.1.0<b>", 3);
        s.schedule = Some("30 2 * * * (Europe/Paris)".into());
        s.begin_night(DateTime::from_timestamp(1_700_000_000, 0).unwrap());
        s.record_flow(FlowStatus {
            flow: "<script>alert(1)</script>".into(),
            outcome: FlowOutcome::Failed,
            read: 12,
            error: Some("peer said \"<nope>\"".into()),
            ..FlowStatus::default()
        });
        let html = render(&s);
        assert!(!html.contains("<script>"), "{html}");
        assert!(!html.contains("<b>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("peer said &quot;&lt;nope&gt;&quot;"));
        assert!(html.contains("<tr class=\"failed\">"));
        assert!(html.contains("<td>12</td>"));
        assert!(html.contains("2023-11-14T22:13:20Z (running)"));
    }

    #[test]
    fn empty_status() {
        let html = render(&Status::new("0.1.0", 3));
        assert!(html.contains("No run yet."));
        assert!(html.starts_with("<!doctype html>"));
    }
}

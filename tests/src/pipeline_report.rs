//! Writes a pipeline run's report: `pipeline.json`, `pipeline.md` (table), and PNG plots
//! (`pipeline-cdf.png`: latency CDF; `pipeline-timeline.png`: client 0's latency over time with
//! bursts shaded and faults marked), drawn with `plotters` (bitmap backend). Text uses DejaVu
//! Sans from fonts-dejavu-core when it is installed; without it the plots are drawn unlabelled.

use crate::pipeline::Report;
use plotters::prelude::*;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

fn font_ready() -> bool {
    static READY: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *READY.get_or_init(|| {
        let Ok(bytes) = std::fs::read(FONT) else {
            return false;
        };
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_ok()
    })
}

fn ms(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else if v < 10.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.0}")
    }
}

fn num(v: f64) -> serde_json::Value {
    serde_json::Number::from_f64(v).map_or(serde_json::Value::Null, serde_json::Value::Number)
}

/// Extra rows and notes for the Markdown (baselines, ceiling steps).
#[derive(Default)]
pub struct Extras {
    /// (figure, value, note)
    pub baselines: Vec<(String, String, String)>,
    pub notes: Vec<String>,
}

/// The Markdown table of a run (targets from SPEC/issue 9 beside each figure).
pub fn markdown(r: &Report, ceiling: &[Report], soak: Option<&Report>, extras: &Extras) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Pipeline: {} clients, {} msgs/s with {} msgs/s bursts, {:.0} s\n",
        r.clients, r.rate, r.burst_rate, r.seconds
    );
    let _ = writeln!(s, "| figure | measured | target |");
    let _ = writeln!(s, "|---|---|---|");
    let l = &r.latency;
    let st = &r.latency_steady;
    let c = &r.command_dispatch;
    let rows: Vec<(String, String, &str)> = vec![
        (
            "Gateway→SSE p50 / p95 / p99 (all events, ms)".into(),
            format!("{} / {} / {}", ms(l.p50_ms), ms(l.p95_ms), ms(l.p99_ms)),
            "p95 < 400",
        ),
        (
            "Gateway→SSE p50 / p95 / p99 (outside fault recovery, ms)".into(),
            format!("{} / {} / {}", ms(st.p50_ms), ms(st.p95_ms), ms(st.p99_ms)),
            "p95 < 400",
        ),
        (
            format!(
                "command dispatch p50 / p95 / p99 (ms, {} commands)",
                c.count
            ),
            format!("{} / {} / {}", ms(c.p50_ms), ms(c.p95_ms), ms(c.p99_ms)),
            "—",
        ),
        (
            "events emitted / delivered (all clients)".into(),
            format!("{} / {}", r.emitted, r.delivered),
            "emitted × clients",
        ),
        (
            "events lost / duplicated".into(),
            format!("{} / {}", r.lost, r.duplicated),
            "0 / 0",
        ),
        (
            "holder CPU s per 1,000 delivered events (per 1,000 gateway events)".into(),
            format!(
                "{:.5} ({:.4}; {:.1} s total)",
                r.holder.cpu_seconds_per_1000_events,
                r.holder.cpu_seconds_per_1000_emitted,
                r.holder.cpu_seconds
            ),
            "—",
        ),
        (
            "workerd CPU s per 1,000 delivered events (per 1,000 gateway events)".into(),
            format!(
                "{:.5} ({:.3}; {:.1} s total)",
                r.workerd.cpu_seconds_per_1000_events,
                r.workerd.cpu_seconds_per_1000_emitted,
                r.workerd.cpu_seconds
            ),
            "—",
        ),
        (
            "peak RSS holder / workerd (MB)".into(),
            format!("{:.1} / {:.1}", r.holder.peak_rss_mb, r.workerd.peak_rss_mb),
            "—",
        ),
    ];
    for (k, v, t) in rows {
        let _ = writeln!(s, "| {k} | {v} | {t} |");
    }
    for f in &r.faults {
        let _ = writeln!(
            s,
            "| reconnect after {:?} (fault → next event delivered, ms) | {} | — |",
            f.kind,
            f.recovery_ms.map_or("none".into(), ms)
        );
    }
    for (k, v, note) in &extras.baselines {
        let _ = writeln!(s, "| baseline: {k} | {v} | {note} |");
    }
    if !ceiling.is_empty() {
        let _ = writeln!(s, "\n### Ceiling\n");
        let _ = writeln!(
            s,
            "| clients | rate (msgs/s) | p50 / p95 / p99 (ms) | lost / dup | workerd CPU s/1k | holder CPU s/1k |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|");
        for c in ceiling {
            let _ = writeln!(
                s,
                "| {} | {} | {} / {} / {} | {} / {} | {:.5} | {:.5} |",
                c.clients,
                c.rate,
                ms(c.latency.p50_ms),
                ms(c.latency.p95_ms),
                ms(c.latency.p99_ms),
                c.lost,
                c.duplicated,
                c.workerd.cpu_seconds_per_1000_events,
                c.holder.cpu_seconds_per_1000_events
            );
        }
    }
    if let Some(k) = soak {
        let _ = writeln!(s, "\n### Soak\n");
        let _ = writeln!(s, "| figure | measured |");
        let _ = writeln!(s, "|---|---|");
        let _ = writeln!(
            s,
            "| length / clients / faults | {:.0} s / {} / {} |",
            k.seconds,
            k.clients,
            k.faults.len()
        );
        let _ = writeln!(
            s,
            "| emitted / lost / duplicated | {} / {} / {} |",
            k.emitted, k.lost, k.duplicated
        );
        let _ = writeln!(
            s,
            "| Gateway→SSE p50 / p95 / p99 (ms) | {} / {} / {} |",
            ms(k.latency.p50_ms),
            ms(k.latency.p95_ms),
            ms(k.latency.p99_ms)
        );
        let _ = writeln!(
            s,
            "| RSS slope holder / workerd (MB/min) | {:.2} / {:.2} |",
            k.holder.rss_slope_mb_per_min, k.workerd.rss_slope_mb_per_min
        );
        let _ = writeln!(
            s,
            "| peak RSS holder / workerd (MB) | {:.1} / {:.1} |",
            k.holder.peak_rss_mb, k.workerd.peak_rss_mb
        );
    }
    if !extras.notes.is_empty() {
        let _ = writeln!(s);
        for n in &extras.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

/// Writes pipeline.json, pipeline.md and the PNGs into `dir`; returns the paths written.
pub fn write(
    dir: &Path,
    r: &Report,
    ceiling: &[Report],
    soak: Option<&Report>,
    extras: &Extras,
) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let json = serde_json::json!({
        "version": "1.0",
        "load": r,
        "ceiling": ceiling,
        "soak": soak,
        "baselines": extras.baselines.iter().map(|(k, v, n)| serde_json::json!({"figure": k, "value": v, "note": n})).collect::<Vec<_>>(),
        "notes": extras.notes,
        "steady_p95_ms": num(r.latency_steady.p95_ms),
    });
    let mut out = Vec::new();
    let p = dir.join("pipeline.json");
    std::fs::write(
        &p,
        serde_json::to_string_pretty(&json).map_err(std::io::Error::other)?,
    )?;
    out.push(p);
    let p = dir.join("pipeline.md");
    std::fs::write(&p, markdown(r, ceiling, soak, extras))?;
    out.push(p);
    let p = dir.join("pipeline-cdf.png");
    cdf_plot(&p, r).map_err(|e| std::io::Error::other(e.to_string()))?;
    out.push(p);
    let p = dir.join("pipeline-timeline.png");
    timeline_plot(&p, r).map_err(|e| std::io::Error::other(e.to_string()))?;
    out.push(p);
    Ok(out)
}

type PlotResult = Result<(), Box<dyn std::error::Error>>;

fn cdf_plot(path: &Path, r: &Report) -> PlotResult {
    let root = BitMapBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let lat = &r.all_latencies_us;
    let max_ms = lat.last().map_or(1.0, |v| *v as f64 / 1000.0).max(1.0);
    let text = font_ready();
    let mut b = ChartBuilder::on(&root);
    b.margin(20)
        .x_label_area_size(if text { 40 } else { 5 })
        .y_label_area_size(if text { 50 } else { 5 });
    if text {
        b.caption(
            "Gateway→SSE latency CDF (every event at every client)",
            ("sans-serif", 20),
        );
    }
    let mut chart = b.build_cartesian_2d((0.1f64..max_ms * 1.1).log_scale(), 0f64..1f64)?;
    if text {
        chart
            .configure_mesh()
            .x_desc("latency (ms, log)")
            .y_desc("fraction of events")
            .draw()?;
    } else {
        chart.configure_mesh().x_labels(0).y_labels(0).draw()?;
    }
    // At most ~2,000 points.
    let n = lat.len();
    let step = (n / 2000).max(1);
    let pts = (0..n)
        .step_by(step)
        .map(|i| ((lat[i] as f64 / 1000.0).max(0.1), (i + 1) as f64 / n as f64));
    chart.draw_series(LineSeries::new(pts, BLUE.stroke_width(2)))?;
    root.present()?;
    Ok(())
}

fn timeline_plot(path: &Path, r: &Report) -> PlotResult {
    let root = BitMapBackend::new(path, (1100, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let t_max = r
        .timeline
        .iter()
        .map(|p| p.0)
        .fold(r.seconds, f64::max)
        .max(1.0);
    let y_max = r.timeline.iter().map(|p| p.1).fold(1.0, f64::max).max(1.0);
    let text = font_ready();
    let mut b = ChartBuilder::on(&root);
    b.margin(20)
        .x_label_area_size(if text { 40 } else { 5 })
        .y_label_area_size(if text { 60 } else { 5 });
    if text {
        b.caption(
            "Gateway→SSE latency over time (client 0; bursts shaded, faults red)",
            ("sans-serif", 20),
        );
    }
    let mut chart = b.build_cartesian_2d(0f64..t_max, (0.1f64..y_max * 1.2).log_scale())?;
    if text {
        chart
            .configure_mesh()
            .x_desc("seconds since start (event emitted)")
            .y_desc("latency (ms, log)")
            .draw()?;
    } else {
        chart.configure_mesh().x_labels(0).y_labels(0).draw()?;
    }
    chart.draw_series(r.bursts.iter().map(|(a, b)| {
        Rectangle::new(
            [(*a, 0.1), (*b, y_max * 1.2)],
            RGBColor(255, 220, 150).filled(),
        )
    }))?;
    chart.draw_series(
        r.fault_offsets.iter().map(|(t, _)| {
            PathElement::new(vec![(*t, 0.1), (*t, y_max * 1.2)], RED.stroke_width(2))
        }),
    )?;
    chart.draw_series(
        r.timeline
            .iter()
            .map(|(t, l)| Circle::new((*t, l.max(0.1)), 1, BLUE.filled())),
    )?;
    root.present()?;
    Ok(())
}

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

/// A latency in ms for a table: two decimals below 10 ms, whole ms above, `n/a` for none.
pub fn ms(v: f64) -> String {
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

/// What goes beside the load run: the baseline run and notes.
#[derive(Default)]
pub struct Extras {
    /// The same load through the `better-sse` Node fan-out (fed by the same real holder).
    pub baseline: Option<Report>,
    /// With a many-guild load run: the same total load on one guild and one shard, run in the
    /// same invocation (the many-guild run's baseline).
    pub one_guild: Option<Report>,
    pub notes: Vec<String>,
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("×{:.2}", a / b)
    } else {
        "—".into()
    }
}

fn triple(p: &crate::pipeline::Percentiles) -> String {
    format!("{} / {} / {}", ms(p.p50_ms), ms(p.p95_ms), ms(p.p99_ms))
}

fn triple_ratio(a: &crate::pipeline::Percentiles, b: &crate::pipeline::Percentiles) -> String {
    format!(
        "{} / {} / {}",
        ratio(a.p50_ms, b.p50_ms),
        ratio(a.p95_ms, b.p95_ms),
        ratio(a.p99_ms, b.p99_ms)
    )
}

/// The Markdown tables of a run: each figure, the target (issue 9: p95 < 400 ms, nothing lost,
/// memory flat), the baseline measured in the same invocation, and measured ÷ baseline.
pub fn markdown(r: &Report, ceiling: &[Report], soak: Option<&Report>, extras: &Extras) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "### Pipeline: {} clients, {} msgs/s with {} msgs/s bursts, {:.0} s\n",
        r.clients, r.rate, r.burst_rate, r.seconds
    );
    let b = extras.baseline.as_ref();
    let tw = r.twilight.as_ref();
    let na = || "—".to_string();
    let _ = writeln!(
        s,
        "| figure | measured | target | baseline (same invocation) | measured ÷ baseline |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    let l = &r.latency;
    let st = &r.latency_steady;
    let c = &r.command_dispatch;
    let mut rows: Vec<[String; 5]> = vec![
        [
            "Gateway→SSE p50 / p95 / p99, all events (ms)".into(),
            triple(l),
            "p95 < 400".into(),
            b.map_or_else(na, |b| format!("better-sse: {}", triple(&b.latency))),
            b.map_or_else(na, |b| triple_ratio(l, &b.latency)),
        ],
        [
            "Gateway→SSE p50 / p95 / p99, outside fault recovery (ms)".into(),
            triple(st),
            "p95 < 400".into(),
            b.map_or_else(na, |b| format!("better-sse: {}", triple(&b.latency))),
            b.map_or_else(na, |b| triple_ratio(st, &b.latency)),
        ],
        [
            format!(
                "command dispatch p50 / p95 / p99 ({} commands, ms)",
                c.count
            ),
            triple(c),
            "—".into(),
            "— (better-sse has no commands)".into(),
            "—".into(),
        ],
        [
            "events emitted / delivered (all clients)".into(),
            format!("{} / {}", r.emitted, r.delivered),
            "delivered = emitted × clients".into(),
            b.map_or_else(na, |b| {
                format!("better-sse: {} / {}", b.emitted, b.delivered)
            }),
            "—".into(),
        ],
        [
            "events lost / duplicated".into(),
            format!("{} / {}", r.lost, r.duplicated),
            "0 / 0".into(),
            b.map_or_else(na, |b| format!("better-sse: {} / {}", b.lost, b.duplicated)),
            "—".into(),
        ],
        [
            "holder CPU s per 1,000 gateway events".into(),
            format!(
                "{:.4} ({:.1} s total)",
                r.holder.cpu_seconds_per_1000_emitted, r.holder.cpu_seconds
            ),
            "—".into(),
            tw.map_or_else(na, |t| {
                format!(
                    "twilight-gateway bare receive: {:.4} ({:.1} s)",
                    t.cpu_seconds_per_1000_events, t.cpu_seconds
                )
            }),
            tw.map_or_else(na, |t| {
                ratio(
                    r.holder.cpu_seconds_per_1000_emitted,
                    t.cpu_seconds_per_1000_events,
                )
            }),
        ],
        [
            "holder CPU s per 1,000 delivered events".into(),
            format!("{:.6}", r.holder.cpu_seconds_per_1000_events),
            "—".into(),
            "—".into(),
            "—".into(),
        ],
        [
            "fan-out CPU s per 1,000 delivered events (workerd)".into(),
            format!(
                "{:.4} ({:.1} s total)",
                r.workerd.cpu_seconds_per_1000_events, r.workerd.cpu_seconds
            ),
            "—".into(),
            b.map_or_else(na, |b| {
                format!(
                    "better-sse (node): {:.4} ({:.1} s)",
                    b.workerd.cpu_seconds_per_1000_events, b.workerd.cpu_seconds
                )
            }),
            b.map_or_else(na, |b| {
                ratio(
                    r.workerd.cpu_seconds_per_1000_events,
                    b.workerd.cpu_seconds_per_1000_events,
                )
            }),
        ],
        [
            "peak RSS holder (MB)".into(),
            format!("{:.1}", r.holder.peak_rss_mb),
            "—".into(),
            tw.map_or_else(na, |t| format!("twilight-gateway: {:.1}", t.peak_rss_mb)),
            tw.map_or_else(na, |t| ratio(r.holder.peak_rss_mb, t.peak_rss_mb)),
        ],
        [
            "peak RSS fan-out (MB, workerd)".into(),
            format!("{:.1}", r.workerd.peak_rss_mb),
            "—".into(),
            b.map_or_else(na, |b| {
                format!("better-sse (node): {:.1}", b.workerd.peak_rss_mb)
            }),
            b.map_or_else(na, |b| ratio(r.workerd.peak_rss_mb, b.workerd.peak_rss_mb)),
        ],
    ];
    for f in &r.faults {
        rows.push([
            format!(
                "reconnect after {:?} (fault → next event delivered, ms)",
                f.kind
            ),
            f.recovery_ms.map_or("none".into(), ms),
            "—".into(),
            "—".into(),
            "—".into(),
        ]);
    }
    rows.push([
        "bench side: SSE clients' thread / whole bench process CPU (s per s of run)".into(),
        format!(
            "{:.2} / {:.2}",
            r.clients_cpu_seconds / r.seconds.max(1e-9),
            r.bench_cpu_seconds / r.seconds.max(1e-9)
        ),
        "clients' thread well under 1".into(),
        b.map_or_else(na, |b| {
            format!(
                "better-sse run: {:.2} / {:.2}",
                b.clients_cpu_seconds / b.seconds.max(1e-9),
                b.bench_cpu_seconds / b.seconds.max(1e-9)
            )
        }),
        "—".into(),
    ]);
    for [k, v, t, bl, ra] in rows {
        let _ = writeln!(s, "| {k} | {v} | {t} | {bl} | {ra} |");
    }
    if !ceiling.is_empty() {
        let _ = writeln!(
            s,
            "\n### Ceiling (until p95 > 400 ms or an event is lost)\n"
        );
        let _ = writeln!(
            s,
            "| clients | rate (msgs/s) | p50 / p95 / p99 (ms) | lost / dup | workerd CPU s/1k delivered | holder CPU s/1k gateway | clients' thread CPU s/s | verdict |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|---|");
        for c in ceiling {
            let ok = c.latency.p95_ms <= 400.0 && c.lost == 0 && c.duplicated == 0;
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} / {} | {:.4} | {:.4} | {:.2} | {} |",
                c.clients,
                c.rate,
                triple(&c.latency),
                c.lost,
                c.duplicated,
                c.workerd.cpu_seconds_per_1000_events,
                c.holder.cpu_seconds_per_1000_emitted,
                c.clients_cpu_seconds / c.seconds.max(1e-9),
                if ok { "within" } else { "past the ceiling" }
            );
        }
    }
    if let Some(k) = soak {
        let _ = writeln!(s, "\n### Soak\n");
        let _ = writeln!(s, "| figure | measured | target |");
        let _ = writeln!(s, "|---|---|---|");
        let mut kinds: Vec<String> = Vec::new();
        for f in &k.faults {
            let name = format!("{:?}", f.kind);
            if !kinds.contains(&name) {
                kinds.push(name);
            }
        }
        let counts: Vec<String> = kinds
            .iter()
            .map(|n| {
                let c = k
                    .faults
                    .iter()
                    .filter(|f| format!("{:?}", f.kind) == *n)
                    .count();
                format!("{n} {c}")
            })
            .collect();
        let _ = writeln!(
            s,
            "| length / clients / faults | {:.0} s / {} / {} ({}) | — |",
            k.seconds,
            k.clients,
            k.faults.len(),
            counts.join(", ")
        );
        let _ = writeln!(
            s,
            "| emitted / lost / duplicated (client reconnects) | {} / {} / {} ({}) | lost 0, duplicated 0 |",
            k.emitted, k.lost, k.duplicated, k.client_reconnects
        );
        let _ = writeln!(
            s,
            "| Gateway→SSE p50 / p95 / p99, all / outside fault recovery (ms) | {} / {} | — |",
            triple(&k.latency),
            triple(&k.latency_steady)
        );
        let _ = writeln!(
            s,
            "| RSS slope holder / workerd (MB/min) | {:.2} / {:.2} | flat (≈ 0) |",
            k.holder.rss_slope_mb_per_min, k.workerd.rss_slope_mb_per_min
        );
        let _ = writeln!(
            s,
            "| peak RSS holder / workerd (MB) | {:.1} / {:.1} | — |",
            k.holder.peak_rss_mb, k.workerd.peak_rss_mb
        );
    }
    if let (Some(one), true) = (&extras.one_guild, r.guilds > 1) {
        many_guilds(&mut s, r, one);
    }
    if !extras.notes.is_empty() {
        let _ = writeln!(s);
        for n in &extras.notes {
            let _ = writeln!(s, "- {n}");
        }
    }
    s
}

/// The many-guild run beside the one-guild run of the same total load: per guild, and the
/// targets (p95 within 20 %, holder CPU per event within 10 %, nothing lost).
fn many_guilds(s: &mut String, r: &Report, one: &Report) {
    let _ = writeln!(
        s,
        "\n### {} guilds on {} shards against one guild on one shard, same total load\n",
        r.guilds, r.shards
    );
    let _ = writeln!(
        s,
        "| run | clients | emitted | p50 / p95 / p99 (ms) | lost / dup |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    let _ = writeln!(
        s,
        "| one guild, one shard | {} | {} | {} | {} / {} |",
        one.clients,
        one.emitted,
        triple(&one.latency),
        one.lost,
        one.duplicated
    );
    let _ = writeln!(
        s,
        "| {} guilds, {} shards, all | {} | {} | {} | {} / {} |",
        r.guilds,
        r.shards,
        r.clients,
        r.emitted,
        triple(&r.latency),
        r.lost,
        r.duplicated
    );
    for g in &r.per_guild {
        let _ = writeln!(
            s,
            "| guild {} (shard {}) | {} | {} | {} | |",
            g.guild_id,
            g.shard,
            g.clients,
            g.emitted,
            triple(&g.latency)
        );
    }
    let p95 = r.latency.p95_ms / one.latency.p95_ms;
    let cpu = r.holder.cpu_seconds_per_1000_emitted / one.holder.cpu_seconds_per_1000_emitted;
    let _ = writeln!(
        s,
        "\n| figure | {} guilds | one guild | ratio | target |",
        r.guilds
    );
    let _ = writeln!(s, "|---|---|---|---|---|");
    let _ = writeln!(
        s,
        "| p95 (ms) | {:.1} | {:.1} | {} | ≤ ×1.20 |",
        r.latency.p95_ms,
        one.latency.p95_ms,
        ratio(r.latency.p95_ms, one.latency.p95_ms)
    );
    let _ = writeln!(
        s,
        "| holder CPU s per 1,000 gateway events | {:.4} | {:.4} | {} | ≤ ×1.10 |",
        r.holder.cpu_seconds_per_1000_emitted,
        one.holder.cpu_seconds_per_1000_emitted,
        ratio(
            r.holder.cpu_seconds_per_1000_emitted,
            one.holder.cpu_seconds_per_1000_emitted
        )
    );
    let met = p95 <= 1.2 && cpu <= 1.1 && r.lost == 0 && r.duplicated == 0;
    let _ = writeln!(s, "\nTargets {}.", if met { "met" } else { "**not** met" });
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
        "baseline_better_sse": extras.baseline,
        "one_guild": extras.one_guild,
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

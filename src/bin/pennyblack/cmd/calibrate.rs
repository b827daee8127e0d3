//! `pennyblack calibrate`: the bits that hit a target mint time on this machine, with predicted
//! percentiles for one part and for the chosen parts, and optionally a plot of both.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pennyblack::Backend;
use pennyblack::calibrate::{Prediction, choose_bits, predict, time_density};
use pennyblack::rate::measure;

use crate::Exit;
use crate::args::CalibrateArgs;

pub fn run(a: CalibrateArgs) -> Result<Exit> {
    let alg = a.alg.alg();
    let parts = a.parts.unwrap_or(alg.default_parts());
    if !(1..=alg.max_parts()).contains(&parts) {
        bail!(
            "--parts must be from 1 to {} for {alg}, got {parts}",
            alg.max_parts()
        );
    }
    if a.target.is_zero() {
        bail!("--target must be more than zero");
    }
    let threads = a
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    let backend = match a.backend.backend() {
        Some(b) => {
            crate::cmd::require_backend(b, alg)?;
            b
        }
        None => Backend::detect(alg),
    };
    let rate = match a.rate {
        Some(r) if r.is_finite() && r > 0.0 => r,
        Some(r) => bail!("--rate must be a positive number of hashes per second, got {r}"),
        None => {
            if !(a.seconds.is_finite() && a.seconds > 0.0 && a.seconds <= 600.0) {
                bail!("--seconds must be more than 0 and at most 600");
            }
            // Several samples, the choice on their median: one sample on a shared machine can be
            // off by a third, and flip the chosen bits.
            const SAMPLES: usize = 5;
            if !a.json {
                eprintln!(
                    "measuring {alg} on {backend} with {threads} threads: {SAMPLES} samples in {:.1}s...",
                    a.seconds
                );
            }
            let each = Duration::from_secs_f64(a.seconds / SAMPLES as f64);
            let mut rates = Vec::with_capacity(SAMPLES);
            for _ in 0..SAMPLES {
                rates.push(measure(alg, backend, threads, each)?.per_second);
            }
            rates.sort_by(f64::total_cmp);
            let median = rates[SAMPLES / 2];
            if !a.json {
                eprintln!(
                    "samples: {} M hashes/s (spread {:.0}%); choosing on the median",
                    rates
                        .iter()
                        .map(|r| format!("{:.1}", r / 1e6))
                        .collect::<Vec<_>>()
                        .join(", "),
                    100.0 * (rates[SAMPLES - 1] - rates[0]) / median
                );
            }
            median
        }
    };
    let bits = choose_bits(rate, a.target, parts, alg.output_bits());
    let chosen = predict(rate, bits, parts);
    let one_part = predict(rate, bits, 1);
    let around: Vec<Prediction> = (bits.saturating_sub(3)..=(bits + 2).min(alg.output_bits()))
        .map(|b| predict(rate, b, parts))
        .collect();

    if let Some(path) = &a.plot {
        // One part against the chosen parts; with one part chosen, against the default 16.
        let other = if parts == 1 && alg.max_parts() > 1 {
            predict(rate, bits, alg.default_parts())
        } else if parts == 1 {
            predict(rate, bits, 16)
        } else {
            one_part
        };
        let (one, many) = if other.parts < chosen.parts {
            (&other, &chosen)
        } else {
            (&chosen, &other)
        };
        plot(path, one, many).with_context(|| format!("writing {}", path.display()))?;
    }
    if a.json {
        println!(
            "{}",
            serde_json::json!({
                "alg": alg, "backend": backend, "threads": threads, "rate_per_second": rate,
                "target_s": a.target.as_secs_f64(), "bits": bits, "parts": parts,
                "chosen": chosen, "one_part": one_part, "around": around,
            })
        );
        return Ok(Exit::Ok);
    }
    println!(
        "rate: {:.1} M hashes/s ({alg}, {backend}, {threads} threads)",
        rate / 1e6
    );
    println!(
        "target mean {:.3}s -> --bits {bits} --parts {parts}  (each part {} bits; worth {:.2} bits)",
        a.target.as_secs_f64(),
        chosen.bits_per_part,
        chosen.value_bits
    );
    println!();
    println!(
        "{:>5} {:>6} {:>9} {:>10} {:>10} {:>10} {:>10}",
        "bits", "parts", "per part", "mean", "p50", "p90", "p99"
    );
    let row = |p: &Prediction, mark: &str| {
        println!(
            "{:>5} {:>6} {:>9} {:>10} {:>10} {:>10} {:>10} {mark}",
            p.bits,
            p.parts,
            p.bits_per_part,
            secs(p.mean_s),
            secs(p.p50_s),
            secs(p.p90_s),
            secs(p.p99_s)
        )
    };
    for p in &around {
        row(p, if p.bits == bits { "<- chosen" } else { "" });
    }
    if parts > 1 {
        row(&one_part, "<- same bits in one part, for comparison");
    }
    if let Some(path) = &a.plot {
        println!("\nplot written to {}", path.display());
    }
    Ok(Exit::Ok)
}

fn secs(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.0}us", s * 1e6)
    } else if s < 1.0 {
        format!("{:.0}ms", s * 1e3)
    } else if s < 600.0 {
        format!("{s:.2}s")
    } else if s < 86_400.0 {
        format!("{:.1}h", s / 3600.0)
    } else {
        format!("{:.1}d", s / 86_400.0)
    }
}

/// The two predicted mint-time densities, one part against the chosen parts, as SVG.
fn plot(path: &Path, one: &Prediction, chosen: &Prediction) -> Result<()> {
    use plotters::prelude::*;
    let x_max = one.p99_s.max(chosen.p99_s) * 1.1;
    let density = |p: &Prediction| -> Vec<(f64, f64)> {
        let part_mean = p.mean_s / f64::from(p.parts);
        (0..=400)
            .map(|i| {
                let t = x_max * f64::from(i) / 400.0;
                (t, time_density(p.parts, part_mean, t))
            })
            .collect()
    };
    let (d1, dk) = (density(one), density(chosen));
    let y_max = d1.iter().chain(&dk).map(|p| p.1).fold(0.0, f64::max) * 1.1;
    // Write to a temporary file beside the target and rename, so a failure leaves nothing half-written.
    let tmp = path.with_extension("svg.tmp");
    {
        let root = SVGBackend::new(&tmp, (800, 480)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("predicted mint time, {} bits of work", chosen.bits),
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
        chart
            .configure_mesh()
            .x_desc("seconds")
            .y_desc("density")
            .draw()?;
        chart
            .draw_series(LineSeries::new(d1, RED.stroke_width(2)))?
            .label(format!(
                "1 part of {} bits (p99 {:.2}s)",
                one.bits_per_part, one.p99_s
            ))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart
            .draw_series(LineSeries::new(dk, BLUE.stroke_width(2)))?
            .label(format!(
                "{} parts of {} bits (p99 {:.2}s)",
                chosen.parts, chosen.bits_per_part, chosen.p99_s
            ))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()?;
        root.present()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

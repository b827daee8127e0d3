//! `pennyblack calibrate`: the bits that hit a target mint time on this machine, with predicted
//! percentiles for one part and for the chosen parts, and optionally a plot of both.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pennyblack::calibrate::{Prediction, choose_bits_for, predict_for, time_density};
use pennyblack::rate::measure;
use pennyblack::verify::{
    DEFAULT_MAX_MEMORY_KIB, DEFAULT_MAX_WORK, DEFAULT_MIN_MEMORY_KIB, estimated_cost,
};
use pennyblack::{Algorithm, Backend, MintRequest, Minter};

use crate::Exit;
use crate::args::CalibrateArgs;

pub fn run(a: CalibrateArgs) -> Result<Exit> {
    let alg = a.argon2.apply(a.alg.alg())?;
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
    // A memory-hard stamp is minted on no more threads than the minter's memory limit allows.
    let threads = Minter::new()
        .threads(threads)
        .threads_for(&MintRequest::new("bob@example.org").alg(alg))?;
    let unit = |r: f64| {
        if alg.is_memory_hard() {
            format!("{r:.1} attempts/s")
        } else {
            format!("{:.1} M hashes/s", r / 1e6)
        }
    };
    let backend = match a.backend.backend() {
        Some(b) => {
            crate::cmd::require_backend(b, alg)?;
            b
        }
        None => Backend::detect(alg),
    };
    let rate = match a.rate {
        Some(r) if r.is_finite() && r > 0.0 => r,
        Some(r) => bail!("--rate must be a positive number of attempts per second, got {r}"),
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
                    "samples: {} (spread {:.0}%); choosing on the median",
                    rates
                        .iter()
                        .map(|&r| unit(r))
                        .collect::<Vec<_>>()
                        .join(", "),
                    100.0 * (rates[SAMPLES - 1] - rates[0]) / median
                );
            }
            median
        }
    };
    let bits = choose_bits_for(alg, rate, a.target, parts);
    let chosen = predict_for(alg, rate, bits, parts);
    let one_part = predict_for(alg, rate, bits, 1);
    let around: Vec<Prediction> = (bits.saturating_sub(3)..=(bits + 2).min(alg.output_bits()))
        .map(|b| predict_for(alg, rate, b, parts))
        .collect();
    // One part verified on one thread, measured (unless the rate was given): for Argon2id above
    // 16 MiB the verifier maps a fresh buffer a part, which the minter's attempts do not.
    let verified = match (a.rate, alg.is_memory_hard()) {
        (None, true) => {
            let each = Duration::from_secs_f64(a.seconds / 5.0);
            Some(pennyblack::rate::measure_verify(alg, 1, 1, each)?.per_part_s)
        }
        _ => None,
    };
    let receiver = ReceiverCost::of(alg, parts, rate, threads, verified);

    if let Some(path) = &a.plot {
        // One part against the chosen parts; with one part chosen, against the default 16.
        let other = if parts == 1 && alg.max_parts() > 1 {
            predict_for(alg, rate, bits, alg.default_parts())
        } else if parts == 1 {
            predict_for(alg, rate, bits, 16)
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
                "receiver": receiver,
            })
        );
        return Ok(Exit::Ok);
    }
    println!("rate: {} ({alg}, {backend}, {threads} threads)", unit(rate));
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
    if chosen.overhead_attempts > 0.0 {
        println!(
            "(each time counts the minter's re-evaluation of every part it keeps: {} attempts)",
            chosen.overhead_attempts
        );
    }
    println!();
    receiver.print();
    if let Some(path) = &a.plot {
        println!("\nplot written to {}", path.display());
    }
    Ok(Exit::Ok)
}

/// What checking the chosen stamp costs its receiver: the figure a memory-hard stamp's sender
/// trades against, since each part costs the receiver one whole evaluation.
#[derive(Debug, serde::Serialize)]
struct ReceiverCost {
    /// One part on one core, seconds: for a memory-hard stamp one evaluation, measured through
    /// the verifier, or with --rate the attempt time of one minting thread (`threads / rate`);
    /// for a hash stamp the cost model's figure (the hashing is noise beside parsing).
    per_part_s: f64,
    /// Where `per_part_s` comes from: "verifier" (measured), "rate" or "model".
    per_part_from: &'static str,
    /// `parts x per_part_s`: the whole stamp on one core.
    per_stamp_s: f64,
    /// With the parallel verifier on `verify_threads` cores (a memory-hard stamp's parts are
    /// evaluated at once; a hash stamp's on one thread).
    parallel_s: f64,
    verify_threads: usize,
    /// What the receiver's cost model (`pennyblack::verify::estimated_cost`) budgets for it.
    estimated_s: f64,
    /// Why a receiver with the default policy refuses it unchecked, if it does.
    default_policy_refuses: Option<String>,
    /// The most parts of this algorithm the default --max-work admits.
    default_policy_max_parts: u32,
    /// Whether the memory bounds apply (Argon2id).
    #[serde(skip)]
    argon2: bool,
}

impl ReceiverCost {
    fn of(
        alg: Algorithm,
        parts: u32,
        rate: f64,
        threads: usize,
        verified: Option<f64>,
    ) -> ReceiverCost {
        let estimated_s = estimated_cost(alg, parts).as_secs_f64();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (per_part_s, per_part_from, verify_threads) = match verified {
            _ if !alg.is_memory_hard() => (estimated_s / f64::from(parts), "model", 1),
            Some(v) => (v, "verifier", cores.min(parts as usize)),
            // An Equi-X check is not a solve (about 1% of one): the model, not the rate.
            None if alg == Algorithm::Equix => (
                estimated_s / f64::from(parts),
                "model",
                cores.min(parts as usize),
            ),
            None => (threads as f64 / rate, "rate", cores.min(parts as usize)),
        };
        let default_policy_max_parts = (1..=alg.max_parts())
            .take_while(|&k| estimated_cost(alg, k) <= DEFAULT_MAX_WORK)
            .last()
            .unwrap_or(0);
        let per_stamp_s = per_part_s * f64::from(parts);
        let rounds = (parts as usize).div_ceil(verify_threads);
        let refuses = match alg.argon2() {
            Some(p) if p.memory_kib < DEFAULT_MIN_MEMORY_KIB => Some(format!(
                "memory {} KiB is under the default --min-memory {} KiB",
                p.memory_kib, DEFAULT_MIN_MEMORY_KIB
            )),
            Some(p) if p.memory_kib > DEFAULT_MAX_MEMORY_KIB => Some(format!(
                "memory {} KiB is over the default --max-memory {} KiB",
                p.memory_kib, DEFAULT_MAX_MEMORY_KIB
            )),
            _ if estimated_s > DEFAULT_MAX_WORK.as_secs_f64() => Some(format!(
                "its estimated cost {} is over the default --max-work {} (which admits at most \
                 {default_policy_max_parts} of its parts)",
                secs(estimated_s),
                secs(DEFAULT_MAX_WORK.as_secs_f64())
            )),
            _ => None,
        };
        ReceiverCost {
            argon2: alg.argon2().is_some(),
            per_part_s,
            per_part_from,
            per_stamp_s,
            parallel_s: per_part_s * rounds as f64,
            verify_threads,
            estimated_s,
            default_policy_refuses: refuses,
            default_policy_max_parts,
        }
    }

    fn print(&self) {
        let from = match self.per_part_from {
            "verifier" => " (measured)",
            "rate" => " (one attempt at --rate)",
            _ => " (the cost model's)",
        };
        let parallel = if self.verify_threads > 1 {
            format!(
                " ({} on {} cores)",
                secs(self.parallel_s),
                self.verify_threads
            )
        } else {
            String::new()
        };
        println!(
            "receiver: {}{from} a part x parts = {} on one core{parallel}; the cost model \
             budgets {}",
            secs(self.per_part_s),
            secs(self.per_stamp_s),
            secs(self.estimated_s)
        );
        match &self.default_policy_refuses {
            Some(why) => println!("a receiver with the default policy refuses it unchecked: {why}"),
            None if self.argon2 => println!(
                "within the default policy (--min-memory {} KiB, --max-memory {} KiB, --max-work {})",
                DEFAULT_MIN_MEMORY_KIB,
                DEFAULT_MAX_MEMORY_KIB,
                secs(DEFAULT_MAX_WORK.as_secs_f64())
            ),
            None => println!(
                "within the default policy (--max-work {})",
                secs(DEFAULT_MAX_WORK.as_secs_f64())
            ),
        }
    }
}

fn secs(s: f64) -> String {
    if s < 1e-5 {
        format!("{:.1}us", s * 1e6)
    } else if s < 1e-3 {
        format!("{:.0}us", s * 1e6)
    } else if s < 1e-2 {
        format!("{:.2}ms", s * 1e3)
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

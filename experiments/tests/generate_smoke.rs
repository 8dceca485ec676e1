//! The `generate` experiment's smoke preset end to end: every mode-A system rolls out exactly
//! the real futures' number of events per horizon, mode B generates its own (within the cap),
//! the week holds at least the day's events, every metric is in its range, and the tables and
//! plots are written.

use experiments::cli::CommonArgs;
use experiments::generate::run;
use tch::Device;

#[test]
fn generate_smoke_preset_end_to_end() -> anyhow::Result<()> {
    tch::set_num_threads(2);
    let out = tempfile::tempdir()?;
    let common = CommonArgs::smoke(out.path(), "smoke");
    let o = run(&common, Device::Cpu, None, false)?;
    for f in [
        "config.toml",
        "manifest.json",
        "table.md",
        "rows.json",
        "tail_share_vs_temperature.svg",
        "hour_profiles.svg",
        "hour_profiles_mode_b.svg",
    ] {
        let p = o.dir.join(f);
        assert!(
            p.is_file() && std::fs::metadata(&p)?.len() > 0,
            "{} missing or empty",
            p.display()
        );
    }
    assert_eq!(o.sizes.len(), 2);
    let (day, week) = (o.sizes[0], o.sizes[1]);
    assert_eq!(day.1, week.1);
    assert!(day.2 > 0 && day.2 <= week.2, "{:?}", o.sizes);
    // real future + 2 count samplers + SASRec + 2 BehaveGPT rows + mode B, per horizon
    assert_eq!(o.rows.len(), 14);
    for r in &o.rows {
        let events = r.metrics["events"][0] as usize;
        let expect = if r.horizon_days == 1 { day.2 } else { week.2 };
        if r.system.contains("mode B") {
            // at least one event per user, at most the cap (48 a day)
            let users = day.1;
            let cap = 48 * r.horizon_days as usize * users;
            assert!(events >= users && events <= cap, "{events} of {cap}");
            assert!(r.metrics["JSD slot"][0] > 0.0);
        } else {
            assert_eq!(events, expect, "{}", r.system);
            if r.system != "real future" {
                assert_eq!(r.metrics["JSD slot"][0], 0.0, "{}", r.system);
            }
        }
        for (m, v) in &r.metrics {
            if m != "events" {
                assert!(
                    v.iter().all(|x| x.is_nan() || (0.0..=1.0).contains(x)),
                    "{} {m} {v:?}",
                    r.system
                );
            }
        }
    }
    Ok(())
}

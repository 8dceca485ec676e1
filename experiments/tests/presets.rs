//! Every preset of the BehaveGPT-family experiments is a valid config (`check()` passes) and
//! survives the TOML round trip that `config.toml` and `--config` rely on — including the `gpu`
//! presets, which CI never runs.

use experiments::behavegpt::BehaveGptExpConfig;
use experiments::cli::Preset;
use experiments::config::ExperimentConfig;
use experiments::dro::DroExpConfig;
use experiments::generate::GenerateExpConfig;
use experiments::new_behaviour::NewBehaviourExpConfig;
use experiments::scaling::ScalingExpConfig;
use experiments::transfer::TransferExpConfig;

fn roundtrip<C: ExperimentConfig + PartialEq + std::fmt::Debug>(name: &str, c: C) {
    c.check()
        .unwrap_or_else(|e| panic!("{name}: preset fails its own check: {e:#}"));
    let text = toml::to_string_pretty(&c).unwrap_or_else(|e| panic!("{name}: {e}"));
    let back: C = toml::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}\n{text}"));
    assert_eq!(back, c, "{name}");
}

#[test]
fn every_preset_checks_and_round_trips() {
    for p in [Preset::Smoke, Preset::Cpu, Preset::Gpu] {
        roundtrip(&format!("behavegpt {p:?}"), BehaveGptExpConfig::preset(p));
        roundtrip(&format!("scaling {p:?}"), ScalingExpConfig::preset(p));
        roundtrip(&format!("dro {p:?}"), DroExpConfig::preset(p));
        roundtrip(&format!("transfer {p:?}"), TransferExpConfig::preset(p));
        roundtrip(
            &format!("new-behaviour {p:?}"),
            NewBehaviourExpConfig::preset(p),
        );
        roundtrip(&format!("generate {p:?}"), GenerateExpConfig::preset(p));
    }
}

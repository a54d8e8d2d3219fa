//! Fuzz target: parsing and validating an aggregator config file. Run with
//! `scripts/fuzz.sh aggregator_config`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        sharpeyes_fuzz::aggregator_config(data);
    });
}

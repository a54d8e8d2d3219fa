//! Fuzz target: parsing and validating an edge-agent config file. Run with
//! `scripts/fuzz.sh agent_config`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        sharpeyes_fuzz::agent_config(data);
    });
}

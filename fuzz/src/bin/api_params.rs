//! Fuzz target: the HTTP API's parameter parsers and form reader. Run with
//! `scripts/fuzz.sh api_params`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        sharpeyes_fuzz::api_params(data);
    });
}

//! Fuzz target: the query parsers the CLI and the HTTP API share (`aggregator::query`:
//! times, person ids, bounding boxes). Run with `scripts/fuzz.sh query_parsers`.

fn main() {
    afl::fuzz!(|data: &[u8]| {
        sharpeyes_fuzz::query_parsers(data);
    });
}

//! Fuzz target: the wire decoder (with and without a zstd dictionary), the MessagePack schema
//! behind a valid header, and topic parsing. Run with `scripts/fuzz.sh wire_decode`.

fn main() {
    // Built once, before AFL++'s fork server starts (in `fuzz!`).
    let codecs = sharpeyes_fuzz::Codecs::default();
    afl::fuzz!(|data: &[u8]| {
        sharpeyes_fuzz::wire_decode(&codecs, data);
    });
}

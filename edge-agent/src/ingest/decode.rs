//! Decoder choice (`cameras[].decoder`), custom sources (`cameras[].source`) and credential
//! masking of what GStreamer says.
//!
//! The choice is made where decodebin picks an element: its `autoplug-select` signal skips the
//! video decoders the camera's [`Decoder`] does not allow; every other element (parsers,
//! demuxers, depayloaders) is left to GStreamer. `auto` filters nothing, so GStreamer's ranks
//! decide.

use gstreamer as gst;
use gstreamer::glib;
use gstreamer::prelude::*;

use super::IngestError;
use crate::config::Decoder;

/// GStreamer plugins whose decoders are hardware ones even when an element's class does not
/// say `Hardware`.
const HARDWARE_PLUGINS: &[&str] = &[
    "va",
    "vaapi",
    "nvcodec",
    "v4l2",
    "v4l2codecs",
    "msdk",
    "qsv",
    "omx",
    "d3d11",
    "d3d12",
    "amfcodec",
    "vulkan",
];

/// What one decoder kind looks for and how a person gets it.
struct Wanted {
    /// The element factories named to a person (the H.264/H.265 ones).
    factories: &'static str,
    /// The packages (and driver) that provide them.
    install: &'static str,
}

fn wanted(kind: Decoder) -> Option<Wanted> {
    match kind {
        Decoder::Vaapi => Some(Wanted {
            factories: "vah264dec, vah265dec (plugin va) or vaapih264dec, vaapih265dec (plugin vaapi)",
            install: "install gstreamer1.0-plugins-bad (its va plugin) or gstreamer1.0-vaapi, plus the \
                      VA driver for the GPU (intel-media-va-driver or i965-va-driver for Intel, \
                      mesa-va-drivers for AMD), and make /dev/dri/renderD128 readable by the agent's user \
                      (group render); `vainfo` (package vainfo) and `gst-inspect-1.0 va` show what works",
        }),
        Decoder::Nvdec => Some(Wanted {
            factories: "nvh264dec, nvh265dec (plugin nvcodec)",
            install: "install gstreamer1.0-plugins-bad (its nvcodec plugin) and the NVIDIA driver with \
                      its video decode library libnvcuvid.so.1 (Debian: nvidia-driver and \
                      libnvcuvid1); `gst-inspect-1.0 nvcodec` shows what works",
        }),
        Decoder::Auto | Decoder::Software => None,
    }
}

/// Whether `factory` is a video decoder.
pub fn is_video_decoder(factory: &gst::ElementFactory) -> bool {
    let klass = factory.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or("");
    klass.contains("Decoder") && klass.contains("Video")
}

/// Whether a video decoder `factory` decodes in hardware.
pub fn is_hardware(factory: &gst::ElementFactory) -> bool {
    let klass = factory.metadata(gst::ELEMENT_METADATA_KLASS).unwrap_or("");
    klass.contains("Hardware")
        || factory
            .plugin_name()
            .is_some_and(|p| HARDWARE_PLUGINS.contains(&p.as_str()))
}

/// Whether `kind` lets the camera use the video decoder `factory`.
fn allows(kind: Decoder, factory: &gst::ElementFactory) -> bool {
    let plugin = factory.plugin_name();
    let plugin = plugin.as_deref().unwrap_or("");
    match kind {
        Decoder::Auto => true,
        Decoder::Software => !is_hardware(factory),
        Decoder::Vaapi => matches!(plugin, "va" | "vaapi"),
        Decoder::Nvdec => plugin == "nvcodec",
    }
}

/// Checks that a decoder of `kind` is installed (always true for `auto` and `software`).
pub fn check_available(kind: Decoder) -> Result<(), IngestError> {
    let Some(w) = wanted(kind) else {
        return Ok(());
    };
    let found = gst::ElementFactory::factories_with_type(
        gst::ElementFactoryType::DECODER | gst::ElementFactoryType::MEDIA_VIDEO,
        gst::Rank::NONE,
    )
    .iter()
    .any(|f| is_video_decoder(f) && allows(kind, f));
    if found {
        Ok(())
    } else {
        Err(IngestError::DecoderUnavailable {
            decoder: kind.name(),
            looked_for: w.factories,
            install: w.install,
        })
    }
}

/// Makes `decodebin` (or `uridecodebin`) skip the video decoders `kind` does not allow.
pub fn restrict(decodebin: &gst::Element, kind: Decoder) {
    if kind == Decoder::Auto {
        return;
    }
    decodebin.connect("autoplug-select", false, move |vals| {
        // (bin, pad, caps, factory) -> GstAutoplugSelectResult: 0 try, 2 skip.
        let factory = vals.get(3)?.get::<gst::ElementFactory>().ok()?;
        let skip = is_video_decoder(&factory) && !allows(kind, &factory);
        select_result(if skip { 2 } else { 0 })
    });
}

/// A `GstAutoplugSelectResult` value (an enum type that decodebin registers).
fn select_result(v: i32) -> Option<glib::Value> {
    let ty = glib::Type::from_name("GstAutoplugSelectResult")?;
    glib::EnumClass::with_type(ty)?.to_value(v)
}

/// Parses a `cameras[].source` fragment into a bin: it must hold a source element (one
/// without sink pads) and end in one unlinked, always-present source pad, which becomes the
/// bin's ghost pad `src`.
pub fn source_bin(fragment: &str) -> Result<gst::Bin, IngestError> {
    let bin = gst::parse::bin_from_description(fragment, false)
        .map_err(|e| IngestError::Source(scrub(&e.to_string())))?;
    let elements: Vec<gst::Element> = bin.iterate_elements().into_iter().flatten().collect();
    let has_source = elements.iter().any(|e| {
        e.pad_template_list()
            .iter()
            .all(|t| t.direction() != gst::PadDirection::Sink)
    });
    if !has_source {
        return Err(IngestError::Source(
            "it has no source element: begin it with one (rtspsrc, filesrc, v4l2src, …)".into(),
        ));
    }
    let outputs: Vec<gst::Pad> = elements
        .iter()
        .flat_map(|e| e.src_pads())
        .filter(|p| !p.is_linked())
        .collect();
    let [output] = outputs.as_slice() else {
        return Err(IngestError::Source(format!(
            "it must end in one element with one always-present source pad, and {} were found; \
             after a demuxer or rtspsrc (whose pads appear later) add a parser or depayloader, \
             e.g. `… ! qtdemux ! h264parse` or `rtspsrc … ! rtph264depay ! h264parse`, and \
             write caps at its end as `capsfilter caps=…`",
            outputs.len()
        )));
    };
    let ghost = gst::GhostPad::builder_with_target(output)
        .map_err(|e| IngestError::Source(e.to_string()))?
        .name("src")
        .build();
    ghost
        .set_active(true)
        .map_err(|e| IngestError::Source(e.to_string()))?;
    bin.add_pad(&ghost)
        .map_err(|e| IngestError::Source(e.to_string()))?;
    Ok(bin)
}

/// `text` with the credentials of every URI or `key=value` secret in it masked
/// ([`sharpeyes_common::redact::uri`] word by word).
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, after) = rest.split_at(word_end);
        out.push_str(&sharpeyes_common::redact::uri(word));
        let space_end = after
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(after.len());
        out.push_str(&after[..space_end]);
        rest = &after[space_end..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_masks_every_uri_and_keeps_the_rest() {
        let s = scrub(
            "Could not open rtsp://admin:hunter2@10.0.0.5/s (x)\n  rtspsrc location=rtsp://u:p@h/a latency=200",
        );
        assert!(!s.contains("hunter2") && !s.contains("u:p@"), "{s}");
        assert!(s.contains("rtsp://***@10.0.0.5/s (x)\n  rtspsrc"), "{s}");
        assert_eq!(scrub("plain text"), "plain text");
    }

    /// Decodes 10 frames of H.264 that x264enc makes, through decodebin restricted to `kind`;
    /// the decoder used, or GStreamer's error.
    fn decode_with(kind: Decoder) -> Result<String, String> {
        gst::init().unwrap();
        let pipeline = gst::parse::launch(
            "videotestsrc num-buffers=10 ! video/x-raw,width=64,height=48 ! x264enc ! h264parse \
             ! decodebin name=d ! fakesink",
        )
        .unwrap()
        .downcast::<gst::Bin>()
        .unwrap();
        let decodebin = pipeline.by_name("d").unwrap();
        // (gst-launch links decodebin's decoded pad to the sink when it appears.)
        restrict(&decodebin, kind);
        pipeline.set_state(gst::State::Playing).unwrap();
        let msg = pipeline
            .bus()
            .unwrap()
            .timed_pop_filtered(
                gst::ClockTime::from_seconds(30),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
            .unwrap();
        let used = pipeline
            .iterate_recurse()
            .into_iter()
            .flatten()
            .filter_map(|e| e.factory())
            .find(is_video_decoder)
            .map(|f| f.name().to_string());
        pipeline.set_state(gst::State::Null).unwrap();
        match msg.view() {
            gst::MessageView::Eos(_) => used.ok_or_else(|| "no decoder".into()),
            gst::MessageView::Error(e) => Err(e.error().to_string()),
            _ => unreachable!(),
        }
    }

    #[test]
    fn restricted_decodebin_skips_the_decoders_a_kind_does_not_allow() {
        let sw = decode_with(Decoder::Software).unwrap();
        assert!(
            !is_hardware(&gst::ElementFactory::find(&sw).unwrap()),
            "{sw}"
        );
        assert!(decode_with(Decoder::Auto).is_ok());
        // Without VA-API decoders here, the software ones are skipped: nothing can decode.
        if check_available(Decoder::Vaapi).is_err() {
            let e = decode_with(Decoder::Vaapi).unwrap_err();
            assert!(e.contains("missing a plug-in"), "{e}");
        }
    }

    #[test]
    fn decoder_kinds_filter_by_plugin_and_class() {
        gst::init().unwrap();
        let sw = gst::ElementFactory::find("avdec_h264")
            .or_else(|| gst::ElementFactory::find("openh264dec"))
            .expect("a software H.264 decoder (gstreamer1.0-libav or -plugins-bad)");
        assert!(is_video_decoder(&sw) && !is_hardware(&sw));
        assert!(allows(Decoder::Software, &sw) && allows(Decoder::Auto, &sw));
        assert!(!allows(Decoder::Vaapi, &sw) && !allows(Decoder::Nvdec, &sw));
        let parser = gst::ElementFactory::find("h264parse").unwrap();
        assert!(!is_video_decoder(&parser));
        assert!(check_available(Decoder::Software).is_ok());
        // decodebin registers the enum its autoplug-select handler must return.
        let _bin = gst::ElementFactory::make("decodebin").build().unwrap();
        assert!(select_result(2).is_some());
    }
}

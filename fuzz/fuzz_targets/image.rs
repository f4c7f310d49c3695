//! An image file (PNG, JPEG, or anything that claims to be one) through a ViT image processor:
//! decoded within size limits, resized, rescaled and normalised.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use std::sync::OnceLock;
use tasklm_data::{ImageLimits, ImageProcessor};

fn processor() -> &'static ImageProcessor {
    static P: OnceLock<ImageProcessor> = OnceLock::new();
    P.get_or_init(|| {
        let cfg = serde_json::json!({
            "image_processor_type": "ViTImageProcessor",
            "size": {"height": 16, "width": 16},
            "resample": 2,
        });
        let mut p = ImageProcessor::from_json(&cfg, Path::new("fuzz.json")).expect("a processor");
        // Small limits keep each input fast; the limit checks themselves are what is fuzzed.
        p.limits = ImageLimits {
            max_width: 512,
            max_height: 512,
            max_bytes: 64 << 20,
        };
        p
    })
}

fuzz_target!(|bytes: &[u8]| {
    let _ = processor().process_bytes(bytes, Path::new("fuzz.png"));
});

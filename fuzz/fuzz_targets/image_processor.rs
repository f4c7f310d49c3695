//! A `preprocessor_config.json` (ViT or CLIP image processor), then a fixed 7 x 5 image through
//! whatever it configures.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use tasklm_data::Rgb8;

fuzz_target!(|bytes: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return;
    };
    let Ok(p) = tasklm_data::ImageProcessor::from_json(&json, Path::new("fuzz.json")) else {
        return;
    };
    // A configured output size past a small bound is valid but slow to fill: skip it.
    let (h, w) = p.output_size(5, 7);
    if h.saturating_mul(w) > 1 << 16 {
        return;
    }
    let img = Rgb8 {
        width: 7,
        height: 5,
        data: (0..7 * 5 * 3).map(|i| (i * 7 % 256) as u8).collect(),
    };
    let _ = p.process_rgb(&img, Path::new("fuzz.png"));
});

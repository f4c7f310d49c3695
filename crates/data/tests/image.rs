//! Images in, against transformers' PIL image processors (`scripts/golden/vision.py`):
//! `ViTImageProcessor` (exact size, bilinear or bicubic, downscaling and upscaling) and
//! `CLIPImageProcessor` (short edge, centre crop, with and without zero padding) on two small
//! derived fixtures (a JPEG re-encoded by PIL, a non-square PNG) and easy-VQA training images
//! 0-2 read in place from ../shared/data (skipped when absent). Tolerance: 1e-2 absolute after
//! normalisation; PNG and JPEG (decoded by libjpeg-turbo, as PIL does) both match to float rounding
//! (1e-5). Corrupt, truncated and huge images are errors naming the file.

use anyhow::{Context, Result};
use candle_core::{Device, Tensor};
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tasklm_data::image::{decode_rgb, ImageLimits, ImageProcessor, Resample, Resize};
use tasklm_hub::testing::shared_path;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f32> {
    anyhow::ensure!(
        a.dims() == b.dims(),
        "shapes {:?} vs {:?}",
        a.dims(),
        b.dims()
    );
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?)
}

#[test]
fn pixel_values_match_transformers_image_processors() -> Result<()> {
    let dir = fixtures().join("vision_images");
    let procs: HashMap<String, Value> =
        serde_json::from_str(&std::fs::read_to_string(dir.join("processors.json"))?)?;
    let golden = candle_core::safetensors::load(dir.join("golden.safetensors"), &Device::Cpu)?;
    let mut images = vec![
        ("shape_jpg".to_string(), dir.join("shape.jpg")),
        ("wide_png".to_string(), dir.join("wide.png")),
    ];
    if let Some(easy) = shared_path("easy_vqa/train/images")? {
        for i in 0..3 {
            images.push((format!("easy_vqa_{i}"), easy.join(format!("{i}.png"))));
        }
    }
    let mut diffs = Vec::new();
    for (pname, cfg) in &procs {
        let proc = ImageProcessor::from_json(cfg, Path::new(pname))?;
        for (iname, path) in &images {
            let got = proc.process_file(path)?;
            let want = golden
                .get(&format!("{pname}.{iname}"))
                .with_context(|| format!("no golden values for {pname}.{iname}"))?;
            let d = max_abs_diff(&got, want).with_context(|| format!("{pname} {iname}"))?;
            eprintln!("{pname} {iname}: max abs diff {d:.2e}");
            diffs.push((pname.clone(), iname.clone(), d));
        }
    }
    assert!(
        diffs.len() >= procs.len() * 2,
        "{} comparisons",
        diffs.len()
    );
    for (pname, iname, d) in diffs {
        assert!(
            d <= 1e-2,
            "{pname} on {iname}: differs from transformers by {d}"
        );
        // PNGs decode to PIL's bytes exactly, and JPEGs too (libjpeg-turbo is PIL's decoder):
        // only float rounding remains.
        assert!(d <= 1e-5, "{pname} on {iname}: {d} beyond float rounding");
    }
    Ok(())
}

#[test]
fn model_directories_preprocessor_configs_are_read() -> Result<()> {
    let vit = ImageProcessor::from_dir(&fixtures().join("tiny_vit"))?;
    assert_eq!(
        vit.resize,
        Some(Resize::Exact {
            height: 32,
            width: 32
        })
    );
    assert_eq!((vit.resample, vit.crop), (Resample::Bilinear, None));
    let clip = ImageProcessor::from_dir(&fixtures().join("tiny_clip_vision"))?;
    assert_eq!(clip.resize, Some(Resize::ShortestEdge(36)));
    assert_eq!(
        (clip.resample, clip.crop),
        (Resample::Bicubic, Some((32, 32)))
    );
    assert_eq!(clip.output_size(37, 50), (32, 32));
    assert_eq!(vit.output_size(37, 50), (32, 32));
    let px = clip.process_file(&fixtures().join("vision_images/wide.png"))?;
    assert_eq!(px.dims(), &[3, 32, 32]);
    Ok(())
}

#[test]
fn bad_configs_are_refused_by_field() {
    let p = Path::new("m/preprocessor_config.json");
    let err = |v: Value| {
        ImageProcessor::from_json(&v, p)
            .err()
            .map(|e| e.to_string())
    };
    let vit = |k: &str, v: Value| {
        let mut j = serde_json::json!({"image_processor_type": "ViTImageProcessor"});
        j[k] = v;
        j
    };
    assert_eq!(
        err(vit("resample", 0.into())).as_deref(),
        Some("m/preprocessor_config.json: `resample` 0 is not supported (2 bilinear, 3 bicubic)")
    );
    assert!(err(vit("size", serde_json::json!({"height": 3})))
        .is_some_and(|e| e.contains("`size` must be")));
    assert!(err(vit("image_std", serde_json::json!([0.5, 0.0, 0.5])))
        .is_some_and(|e| e.contains("`image_std` must be positive")));
    assert!(
        err(serde_json::json!({"image_processor_type": "SiglipImageProcessor"}))
            .is_some_and(|e| e.contains("`SiglipImageProcessor` is not supported"))
    );
}

/// A PNG with a header (IHDR) claiming `w` x `h` RGB pixels, an empty image data chunk and an
/// end chunk.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = w.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB, no interlace
    chunk(&mut out, b"IHDR", &ihdr);
    // A few bytes of image data: a header is read up to the first IDAT chunk.
    chunk(
        &mut out,
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    );
    chunk(&mut out, b"IEND", &[]);
    out
}

#[test]
fn a_huge_header_is_refused_before_decoding() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("huge.png");
    std::fs::write(&path, png_header_only(100_000, 100_000))?;
    let proc = ImageProcessor::from_dir(&fixtures().join("tiny_vit"))?;
    let err = proc.process_file(&path).err().map(|e| e.to_string());
    let err = err.context("a 100,000 x 100,000 image was accepted")?;
    assert!(err.contains("huge.png"), "{err}");
    assert!(
        err.contains("100000 x 100000 pixels, more than the 8192 x 8192 allowed"),
        "{err}"
    );
    // Within the size limits, the same header-only file fails in decoding, not in allocation.
    let small = decode_rgb(
        &png_header_only(64, 64),
        Path::new("s.png"),
        &ImageLimits::default(),
    )
    .err()
    .map(|e| e.to_string());
    assert!(
        small
            .as_deref()
            .is_some_and(|e| e.starts_with("s.png: cannot decode the PNG image")),
        "{small:?}"
    );
    // Lower limits apply to the header too.
    let limits = ImageLimits {
        max_width: 32,
        max_height: 32,
        max_bytes: 1 << 20,
    };
    let bytes = std::fs::read(fixtures().join("vision_images/wide.png"))?;
    let err = decode_rgb(&bytes, Path::new("w.png"), &limits)
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("w.png: the PNG header says 50 x 37 pixels, more than the 32 x 32 allowed")
    );
    Ok(())
}

#[test]
fn corrupt_and_truncated_images_are_errors_naming_the_file() -> Result<()> {
    let limits = ImageLimits::default();
    let dir = fixtures().join("vision_images");
    for file in ["wide.png", "shape.jpg"] {
        let bytes = std::fs::read(dir.join(file))?;
        let cut = &bytes[..bytes.len() / 2];
        let err = decode_rgb(cut, Path::new(file), &limits)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.starts_with(&format!("{file}: cannot"))),
            "{file} truncated: {err:?}"
        );
    }
    let err = decode_rgb(b"GIF89a not really", Path::new("x.gif"), &limits).err();
    assert!(err.is_some_and(|e| e
        .to_string()
        .contains("x.gif: a Gif image; PNG and JPEG are read")));
    let err = decode_rgb(b"hello", Path::new("x.txt"), &limits).err();
    assert_eq!(
        err.map(|e| e.to_string()).as_deref(),
        Some("x.txt: not a PNG or JPEG image")
    );
    Ok(())
}

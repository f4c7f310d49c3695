//! Images in: PNG (the `image` crate) and JPEG (libjpeg-turbo, [`jpeg`]) decoded and prepared as a model directory's
//! `preprocessor_config.json` says, giving (3, H, W) f32 pixel values as transformers' image
//! processors do.
//!
//! - `ViTImageProcessor`: resize to `size` {height, width} with `resample` (2 bilinear,
//!   3 bicubic), rescale by `rescale_factor` (1/255), normalise with `image_mean` /
//!   `image_std`.
//! - `CLIPImageProcessor`: resize so the short edge is `size.shortest_edge` (the long edge
//!   `int(shortest * long / short)`), centre-crop `crop_size` (zero-padded when the image is
//!   smaller), then rescale and normalise.
//!
//! Every image is converted to RGB first (alpha dropped, grey and palette expanded), as PIL's
//! `convert("RGB")`. Resizing is PIL's ([`resample`]), which transformers' PIL processors
//! call, so the values match them to float rounding. A file that is not a PNG or JPEG, is
//! corrupt or truncated, or whose header claims more than [`ImageLimits`] allow is an error
//! naming the file, raised from the header before any pixel buffer is allocated.

mod jpeg;
pub mod resample;

use crate::{DataError, Result};
use candle_core::{Device, Tensor};
use image::{ImageFormat, ImageReader};
pub use resample::{Resample, Rgb8};
use serde_json::Value;
use std::io::Cursor;
use std::path::Path;

/// The file transformers keeps an image processor's settings in.
pub const PREPROCESSOR_CONFIG: &str = "preprocessor_config.json";

/// The largest image accepted, checked against the header before decoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImageLimits {
    pub max_width: u32,
    pub max_height: u32,
    /// Bytes the decoder may allocate, and the largest file read.
    pub max_bytes: u64,
}

impl Default for ImageLimits {
    /// 8192 x 8192 pixels, 256 MiB.
    fn default() -> Self {
        Self {
            max_width: 8192,
            max_height: 8192,
            max_bytes: 256 << 20,
        }
    }
}

/// How an image is resized before cropping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resize {
    /// To exactly `height` x `width` (ViT).
    Exact { height: usize, width: usize },
    /// The short edge to this length, keeping the aspect ratio (CLIP).
    ShortestEdge(usize),
}

/// The steps of an image processor, read from `preprocessor_config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageProcessor {
    pub resize: Option<Resize>,
    pub resample: Resample,
    /// Centre crop to (height, width).
    pub crop: Option<(usize, usize)>,
    pub rescale: Option<f32>,
    /// Per-channel (mean, std).
    pub normalize: Option<([f32; 3], [f32; 3])>,
    pub limits: ImageLimits,
}

/// transformers' `IMAGENET_STANDARD_MEAN` / `_STD` (ViT's defaults).
const STANDARD: [f32; 3] = [0.5, 0.5, 0.5];
/// transformers' `OPENAI_CLIP_MEAN` / `_STD` (CLIP's defaults).
const CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// The image processor classes read here.
const SUPPORTED: &str = "ViTImageProcessor, CLIPImageProcessor";

impl ImageProcessor {
    /// Reads `dir/preprocessor_config.json`.
    pub fn from_dir(dir: &Path) -> Result<Self> {
        Self::from_file(&dir.join(PREPROCESSOR_CONFIG))
    }

    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| file_err(path, e))?;
        let json: Value = serde_json::from_str(&text)
            .map_err(|e| file_err(path, format!("invalid JSON: {e}")))?;
        Self::from_json(&json, path)
    }

    /// From a parsed config; `path` names it in errors. Absent keys take the class's
    /// defaults, as transformers does.
    pub fn from_json(json: &Value, path: &Path) -> Result<Self> {
        let bad = |m: String| file_err(path, m);
        let class = json
            .get("image_processor_type")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                bad(format!(
                    "no `image_processor_type` (supported: {SUPPORTED})"
                ))
            })?;
        let clip = match class.trim_end_matches("Pil").trim_end_matches("Fast") {
            "ViTImageProcessor" => false,
            "CLIPImageProcessor" => true,
            other => {
                return Err(bad(format!(
                    "image_processor_type `{other}` is not supported ({SUPPORTED})"
                )))
            }
        };
        let flag = |key: &str, default: bool| -> Result<bool> {
            match json.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v
                    .as_bool()
                    .ok_or_else(|| bad(format!("`{key}` must be true or false, got {v}"))),
            }
        };
        let resize = if flag("do_resize", true)? {
            Some(match json.get("size") {
                None | Some(Value::Null) if clip => Resize::ShortestEdge(224),
                None | Some(Value::Null) => Resize::Exact {
                    height: 224,
                    width: 224,
                },
                Some(v) => parse_size(v, clip).ok_or_else(|| {
                    bad(format!(
                        "`size` must be {{\"height\", \"width\"}}, {{\"shortest_edge\"}} or a \
                         positive integer, got {v}"
                    ))
                })?,
            })
        } else {
            None
        };
        let resample = match json.get("resample") {
            None | Some(Value::Null) if clip => Resample::Bicubic,
            None | Some(Value::Null) => Resample::Bilinear,
            Some(v) => v.as_u64().and_then(Resample::from_code).ok_or_else(|| {
                bad(format!(
                    "`resample` {v} is not supported (2 bilinear, 3 bicubic)"
                ))
            })?,
        };
        let crop = if flag("do_center_crop", clip)? {
            let v = json.get("crop_size").cloned().unwrap_or(Value::from(224));
            match parse_size(&v, false) {
                Some(Resize::Exact { height, width }) => Some((height, width)),
                _ => {
                    return Err(bad(format!(
                        "`crop_size` must be {{\"height\", \"width\"}} or a positive integer, \
                         got {v}"
                    )))
                }
            }
        } else {
            None
        };
        let rescale = if flag("do_rescale", true)? {
            let f = match json.get("rescale_factor") {
                None | Some(Value::Null) => 1.0 / 255.0,
                Some(v) => v
                    .as_f64()
                    .ok_or_else(|| bad(format!("`rescale_factor` must be a number, got {v}")))?,
            };
            Some(f as f32)
        } else {
            None
        };
        let normalize = if flag("do_normalize", true)? {
            let (m, s) = if clip {
                (CLIP_MEAN, CLIP_STD)
            } else {
                (STANDARD, STANDARD)
            };
            let mean =
                triple(json.get("image_mean"), m).map_err(|m| bad(format!("`image_mean` {m}")))?;
            let std =
                triple(json.get("image_std"), s).map_err(|m| bad(format!("`image_std` {m}")))?;
            if std.iter().any(|&x| x <= 0.0 || !x.is_finite()) {
                return Err(bad(format!("`image_std` must be positive, got {std:?}")));
            }
            Some((mean, std))
        } else {
            None
        };
        Ok(Self {
            resize,
            resample,
            crop,
            rescale,
            normalize,
            limits: ImageLimits::default(),
        })
    }

    /// The (height, width) of the pixel values this processor gives for an image of
    /// `height` x `width`.
    pub fn output_size(&self, height: usize, width: usize) -> (usize, usize) {
        if let Some((h, w)) = self.crop {
            return (h, w);
        }
        match self.resize {
            Some(r) => resize_target(r, height, width),
            None => (height, width),
        }
    }

    /// Pixel values (3, H, W) for the PNG or JPEG at `path`.
    pub fn process_file(&self, path: &Path) -> Result<Tensor> {
        let img = read_rgb(path, &self.limits)?;
        self.process_rgb(&img, path)
    }

    /// Pixel values (3, H, W) for an image's encoded bytes; `name` names it in errors.
    pub fn process_bytes(&self, bytes: &[u8], name: &Path) -> Result<Tensor> {
        let img = decode_rgb(bytes, name, &self.limits)?;
        self.process_rgb(&img, name)
    }

    /// Pixel values (3, H, W) for a decoded RGB image.
    pub fn process_rgb(&self, img: &Rgb8, name: &Path) -> Result<Tensor> {
        if img.width == 0 || img.height == 0 {
            return Err(file_err(name, "the image has no pixels"));
        }
        let resized;
        let mut cur = img;
        if let Some(r) = self.resize {
            let (h, w) = resize_target(r, img.height, img.width);
            if h == 0 || w == 0 {
                return Err(file_err(
                    name,
                    format!(
                        "resizing {} x {} gives an empty image",
                        img.width, img.height
                    ),
                ));
            }
            resized = resample::resize(img, w, h, self.resample);
            cur = &resized;
        }
        let cropped;
        if let Some((h, w)) = self.crop {
            cropped = center_crop(cur, h, w);
            cur = &cropped;
        }
        let (h, w) = (cur.height, cur.width);
        let scale = self.rescale.unwrap_or(1.0);
        let (mean, std) = self.normalize.unwrap_or(([0.0; 3], [1.0; 3]));
        let mut out = vec![0f32; 3 * h * w];
        // Interleaved (H, W, 3) bytes to planes (3, H, W).
        for (c, plane) in out.chunks_exact_mut(h * w).enumerate() {
            for (o, px) in plane.iter_mut().zip(cur.data.chunks_exact(3)) {
                *o = (f32::from(px[c]) * scale - mean[c]) / std[c];
            }
        }
        Ok(Tensor::from_vec(out, (3, h, w), &Device::Cpu)?)
    }
}

/// The (height, width) transformers resizes an image of `height` x `width` to.
fn resize_target(r: Resize, height: usize, width: usize) -> (usize, usize) {
    match r {
        Resize::Exact { height, width } => (height, width),
        Resize::ShortestEdge(s) => {
            // get_resize_output_image_size(default_to_square=False): int() floors.
            let (short, long) = (height.min(width), height.max(width));
            let new_long = (s as f64 * long as f64 / short as f64) as usize;
            if width <= height {
                (new_long, s)
            } else {
                (s, new_long)
            }
        }
    }
}

/// transformers' `center_crop`: top-left at ((H - h) // 2, (W - w) // 2), padding with zeros
/// (centred, the extra row or column at the top / left) when the image is smaller.
fn center_crop(img: &Rgb8, h: usize, w: usize) -> Rgb8 {
    let (ih, iw) = (img.height as i64, img.width as i64);
    let (ch, cw) = (h as i64, w as i64);
    // Python's floor division.
    let top = (ih - ch).div_euclid(2);
    let left = (iw - cw).div_euclid(2);
    let (nh, nw) = (ch.max(ih), cw.max(iw));
    let top_pad = (nh - ih + 1) / 2;
    let left_pad = (nw - iw + 1) / 2;
    // In the padded canvas the image sits at (top_pad, left_pad) and the crop at
    // (top + top_pad, left + left_pad) (when nothing is padded both pads are 0).
    let (ct, cl) = (top + top_pad, left + left_pad);
    let mut data = vec![0u8; h * w * 3];
    for y in 0..ch {
        let sy = ct + y - top_pad;
        if sy < 0 || sy >= ih {
            continue;
        }
        for x in 0..cw {
            let sx = cl + x - left_pad;
            if sx < 0 || sx >= iw {
                continue;
            }
            let s = ((sy * iw + sx) * 3) as usize;
            let d = ((y * cw + x) * 3) as usize;
            data[d..d + 3].copy_from_slice(&img.data[s..s + 3]);
        }
    }
    Rgb8 {
        width: w,
        height: h,
        data,
    }
}

fn parse_size(v: &Value, int_is_shortest: bool) -> Option<Resize> {
    let pos = |v: Option<&Value>| {
        v.and_then(Value::as_u64)
            .filter(|&n| n > 0)
            .map(|n| n as usize)
    };
    if let Some(n) = pos(Some(v)) {
        return Some(if int_is_shortest {
            Resize::ShortestEdge(n)
        } else {
            Resize::Exact {
                height: n,
                width: n,
            }
        });
    }
    if let Some(s) = pos(v.get("shortest_edge")) {
        return Some(Resize::ShortestEdge(s));
    }
    Some(Resize::Exact {
        height: pos(v.get("height"))?,
        width: pos(v.get("width"))?,
    })
}

fn triple(v: Option<&Value>, default: [f32; 3]) -> std::result::Result<[f32; 3], String> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(default);
    };
    if let Some(x) = v.as_f64() {
        return Ok([x as f32; 3]);
    }
    let list: Option<Vec<f32>> = v
        .as_array()
        .and_then(|a| a.iter().map(|x| x.as_f64().map(|x| x as f32)).collect());
    match list.as_deref() {
        Some(&[a, b, c]) => Ok([a, b, c]),
        _ => Err(format!("must be a number or three numbers, got {v}")),
    }
}

fn file_err(path: &Path, msg: impl std::fmt::Display) -> DataError {
    DataError::File {
        path: path.into(),
        msg: msg.to_string(),
    }
}

/// Reads and decodes the PNG or JPEG at `path` to RGB, within `limits`.
pub fn read_rgb(path: &Path, limits: &ImageLimits) -> Result<Rgb8> {
    let len = std::fs::metadata(path)
        .map_err(|e| file_err(path, e))?
        .len();
    if len > limits.max_bytes {
        return Err(file_err(
            path,
            format!(
                "the file is {len} bytes, more than the {} an image may have",
                limits.max_bytes
            ),
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| file_err(path, e))?;
    decode_rgb(&bytes, path, limits)
}

/// Decodes PNG or JPEG bytes to RGB. The header's size is checked against `limits` before
/// any pixel buffer exists; `name` names the image in errors.
pub fn decode_rgb(bytes: &[u8], name: &Path, limits: &ImageLimits) -> Result<Rgb8> {
    let format = match image::guess_format(bytes) {
        Ok(f @ (ImageFormat::Png | ImageFormat::Jpeg)) => f,
        Ok(other) => {
            return Err(file_err(
                name,
                format!("a {other:?} image; PNG and JPEG are read"),
            ))
        }
        Err(_) => return Err(file_err(name, "not a PNG or JPEG image")),
    };
    let what = if format == ImageFormat::Png {
        "PNG"
    } else {
        "JPEG"
    };
    let (w, h) = ImageReader::with_format(Cursor::new(bytes), format)
        .into_dimensions()
        .map_err(|e| file_err(name, format!("cannot read the {what} header: {e}")))?;
    if w > limits.max_width || h > limits.max_height {
        return Err(file_err(
            name,
            format!(
                "the {what} header says {w} x {h} pixels, more than the {} x {} allowed",
                limits.max_width, limits.max_height
            ),
        ));
    }
    if format == ImageFormat::Jpeg {
        let (width, height, data) = jpeg::decode(bytes)
            .map_err(|e| file_err(name, format!("cannot decode the JPEG image: {e}")))?;
        return Ok(Rgb8 {
            width,
            height,
            data,
        });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut l = image::Limits::default();
    l.max_image_width = Some(limits.max_width);
    l.max_image_height = Some(limits.max_height);
    l.max_alloc = Some(limits.max_bytes);
    reader.limits(l);
    let img = reader
        .decode()
        .map_err(|e| file_err(name, format!("cannot decode the {what} image: {e}")))?;
    let rgb = img.to_rgb8();
    Ok(Rgb8 {
        width: rgb.width() as usize,
        height: rgb.height() as usize,
        data: rgb.into_raw(),
    })
}

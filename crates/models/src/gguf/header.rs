//! A validating pass over a GGUF header, run before candle's reader sees the file.
//!
//! candle's reader bounds each count by the bytes left in the file, but allocates from some
//! header fields unchecked (a `general.alignment` of 0 divides by zero, a tensor shape whose
//! element count overflows panics) and its errors do not say which key or tensor is at fault.
//! This pass walks the same layout with limits, against the file's real length, reading only
//! keys and tensor names into memory (each at most [`MAX_NAME_LEN`] bytes), and refuses the
//! file with an error naming the entry before anything sized by the header is allocated.

use std::io::{BufRead, Read};

/// Longest metadata key or tensor name accepted (GGUF keys are at most 65,535 bytes).
pub const MAX_NAME_LEN: u64 = 65_535;
/// Longest string value accepted (candle's own cap, and llama.cpp's).
pub const MAX_STRING_LEN: u64 = 1 << 30;
/// Most entries in one metadata array: far above any vocabulary (the largest have ~260k
/// tokens), and at 32 bytes a parsed value, a bound of 512 MB on what one array can cost.
pub const MAX_ARRAY_LEN: u64 = 1 << 24;
/// Most tensors, and most metadata entries, in one file.
pub const MAX_ENTRIES: u64 = 1 << 20;
/// Deepest nesting of arrays of arrays (candle's own cap).
pub const MAX_DEPTH: usize = 64;
/// Most dimensions of a tensor (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;

const DEFAULT_ALIGNMENT: u64 = 32;

/// What the header says about one tensor, after validation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorSpan {
    pub name: String,
    /// Dimensions as GGUF stores them (innermost first).
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    /// Absolute byte range of the tensor's data in the file.
    pub start: u64,
    pub bytes: u64,
}

/// The header's layout: version, where tensor data starts, and every tensor's span.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeaderSummary {
    pub version: u32,
    pub metadata_entries: u64,
    pub data_offset: u64,
    pub tensors: Vec<TensorSpan>,
}

/// (block size in elements, bytes per block) of the ggml types candle reads.
fn ggml_type_layout(t: u32) -> Option<(u64, u64)> {
    use candle_core::quantized::GgmlDType as G;
    let dt = match t {
        0 => G::F32,
        1 => G::F16,
        2 => G::Q4_0,
        3 => G::Q4_1,
        6 => G::Q5_0,
        7 => G::Q5_1,
        8 => G::Q8_0,
        9 => G::Q8_1,
        10 => G::Q2K,
        11 => G::Q3K,
        12 => G::Q4K,
        13 => G::Q5K,
        14 => G::Q6K,
        15 => G::Q8K,
        30 => G::BF16,
        _ => return None,
    };
    Some((dt.block_size() as u64, dt.type_size() as u64))
}

/// Bytes one value of GGUF type `t` needs at least on disk; None for an unknown type.
fn min_value_size(t: u32, len_size: u64) -> Option<u64> {
    Some(match t {
        0 | 1 | 7 => 1,
        2 | 3 => 2,
        4..=6 => 4,
        10..=12 => 8,
        8 => len_size,
        9 => 4 + len_size,
        _ => return None,
    })
}

struct Walker<R> {
    r: R,
    pos: u64,
    len: u64,
    /// 4 bytes (v1) or 8 bytes (v2, v3) per length or count.
    len_size: u64,
}

impl<R: BufRead> Walker<R> {
    fn remaining(&self) -> u64 {
        self.len.saturating_sub(self.pos)
    }

    fn bytes<const N: usize>(&mut self, what: &dyn Fn() -> String) -> Result<[u8; N], String> {
        let mut b = [0u8; N];
        if self.remaining() < N as u64 {
            return Err(format!(
                "{}: needs {N} bytes at offset {}, the file ends at {} (truncated?)",
                what(),
                self.pos,
                self.len
            ));
        }
        self.r
            .read_exact(&mut b)
            .map_err(|e| format!("{}: read failed at offset {}: {e}", what(), self.pos))?;
        self.pos += N as u64;
        Ok(b)
    }

    fn u32(&mut self, what: &dyn Fn() -> String) -> Result<u32, String> {
        Ok(u32::from_le_bytes(self.bytes::<4>(what)?))
    }

    fn u64(&mut self, what: &dyn Fn() -> String) -> Result<u64, String> {
        Ok(u64::from_le_bytes(self.bytes::<8>(what)?))
    }

    /// A length or count: u32 in GGUF v1, u64 after.
    fn length(&mut self, what: &dyn Fn() -> String) -> Result<u64, String> {
        if self.len_size == 4 {
            Ok(u64::from(self.u32(what)?))
        } else {
            self.u64(what)
        }
    }

    /// Skips `n` bytes that must lie inside the file.
    fn skip(&mut self, n: u64, what: &dyn Fn() -> String) -> Result<(), String> {
        if n > self.remaining() {
            return Err(format!(
                "{}: needs {n} bytes at offset {}, only {} remain in the file",
                what(),
                self.pos,
                self.remaining()
            ));
        }
        let mut left = n;
        while left > 0 {
            let avail = self
                .r
                .fill_buf()
                .map_err(|e| format!("{}: read failed at offset {}: {e}", what(), self.pos))?
                .len() as u64;
            if avail == 0 {
                return Err(format!("{}: the file ends early at {}", what(), self.pos));
            }
            let step = avail.min(left);
            self.r.consume(step as usize);
            left -= step;
            self.pos += step;
        }
        Ok(())
    }

    /// A length-prefixed string of at most `max` bytes, read into memory (keys, names).
    fn name(&mut self, max: u64, what: &dyn Fn() -> String) -> Result<String, String> {
        let n = self.length(what)?;
        if n > max {
            return Err(format!("{}: length {n} exceeds the limit of {max}", what()));
        }
        if n > self.remaining() {
            return Err(format!(
                "{}: length {n}, only {} bytes remain in the file",
                what(),
                self.remaining()
            ));
        }
        let mut v = vec![0u8; n as usize];
        self.r
            .read_exact(&mut v)
            .map_err(|e| format!("{}: read failed at offset {}: {e}", what(), self.pos))?;
        self.pos += n;
        while v.last() == Some(&0) {
            v.pop();
        }
        Ok(String::from_utf8_lossy(&v).into_owned())
    }

    /// Checks one value of type `t`; returns it as u64 when it is an integer of at most 32 bits
    /// (what `general.alignment` may be).
    fn value(&mut self, t: u32, depth: usize, key: &str) -> Result<Option<i64>, String> {
        let at = || format!("metadata `{key}`");
        if depth > MAX_DEPTH {
            return Err(format!("{}: arrays nested deeper than {MAX_DEPTH}", at()));
        }
        Ok(match t {
            0 => Some(i64::from(self.bytes::<1>(&at)?[0])),
            1 => Some(i64::from(i8::from_le_bytes(self.bytes::<1>(&at)?))),
            2 => Some(i64::from(u16::from_le_bytes(self.bytes::<2>(&at)?))),
            3 => Some(i64::from(i16::from_le_bytes(self.bytes::<2>(&at)?))),
            4 => Some(i64::from(self.u32(&at)?)),
            5 => Some(i64::from(i32::from_le_bytes(self.bytes::<4>(&at)?))),
            6 => {
                self.bytes::<4>(&at)?;
                None
            }
            7 => match self.bytes::<1>(&at)?[0] {
                0 | 1 => None,
                b => return Err(format!("{}: bool byte {b}, expected 0 or 1", at())),
            },
            10..=12 => {
                self.bytes::<8>(&at)?;
                None
            }
            8 => {
                let n = self.length(&at)?;
                if n > MAX_STRING_LEN {
                    return Err(format!(
                        "{}: string of {n} bytes exceeds the limit of {MAX_STRING_LEN}",
                        at()
                    ));
                }
                self.skip(n, &|| format!("metadata `{key}`: string of {n} bytes"))?;
                None
            }
            9 => {
                let et = self.u32(&at)?;
                let min = min_value_size(et, self.len_size)
                    .ok_or_else(|| format!("{}: unknown array element type {et}", at()))?;
                let n = self.length(&at)?;
                if n > MAX_ARRAY_LEN {
                    return Err(format!(
                        "{}: array of {n} entries exceeds the limit of {MAX_ARRAY_LEN}",
                        at()
                    ));
                }
                let needed = n.saturating_mul(min);
                if needed > self.remaining() {
                    return Err(format!(
                        "{}: array of {n} entries needs at least {needed} bytes, only {} remain \
                         in the file",
                        at(),
                        self.remaining()
                    ));
                }
                if et == 8 || et == 9 || et == 7 {
                    // Variable-size elements (and bools, whose byte is checked) one by one.
                    for _ in 0..n {
                        self.value(et, depth + 1, key)?;
                    }
                } else {
                    self.skip(needed, &at)?;
                }
                None
            }
            t => return Err(format!("{}: unknown value type {t}", at())),
        })
    }
}

/// Walks the GGUF header in `r` (positioned at the file's start), for a file of `file_len`
/// bytes, and checks every count, length and tensor span against the limits above and the file.
pub fn check_header<R: Read>(r: R, file_len: u64) -> Result<HeaderSummary, String> {
    let mut w = Walker {
        r: std::io::BufReader::new(r),
        pos: 0,
        len: file_len,
        len_size: 8,
    };
    let magic = w.u32(&|| "GGUF magic".to_string())?;
    if magic != 0x4655_4747 && magic != 0x4747_5546 {
        return Err(format!(
            "not a GGUF file: magic {magic:#010x}, expected {:#010x} (\"GGUF\")",
            0x4655_4747
        ));
    }
    let version = w.u32(&|| "GGUF version".to_string())?;
    match version {
        1 => w.len_size = 4,
        2 | 3 => {}
        v => return Err(format!("GGUF version {v}: supported are 1, 2 and 3")),
    }
    let n_tensors = w.length(&|| "tensor count".to_string())?;
    let n_kv = w.length(&|| "metadata count".to_string())?;
    for (n, what) in [(n_tensors, "tensors"), (n_kv, "metadata entries")] {
        if n > MAX_ENTRIES {
            return Err(format!(
                "header claims {n} {what}, more than the limit of {MAX_ENTRIES}"
            ));
        }
    }
    let min_kv = w.len_size + 4 + 1;
    let min_tensor = w.len_size + 4 + 4 + 8;
    let needed = n_kv
        .saturating_mul(min_kv)
        .saturating_add(n_tensors.saturating_mul(min_tensor));
    if needed > w.remaining() {
        return Err(format!(
            "header claims {n_tensors} tensors and {n_kv} metadata entries, which need at least \
             {needed} bytes; the file has {} after the counts",
            w.remaining()
        ));
    }
    let mut alignment = DEFAULT_ALIGNMENT;
    for i in 0..n_kv {
        let key = w.name(MAX_NAME_LEN, &|| format!("metadata entry {i}: key"))?;
        let t = w.u32(&|| format!("metadata `{key}`: value type"))?;
        let v = w.value(t, 0, &key)?;
        if key == "general.alignment" {
            // candle reads the alignment from any integer type of at most 32 bits (the last
            // entry wins), and uses the default for anything else.
            alignment = match v.filter(|&a| a >= 0) {
                Some(a) if a == 0 || !(a as u64).is_power_of_two() => {
                    return Err(format!(
                        "metadata `general.alignment` is {a}: expected a power of two"
                    ))
                }
                Some(a) => a as u64,
                None => DEFAULT_ALIGNMENT,
            };
        }
    }
    let mut infos = Vec::with_capacity(n_tensors as usize);
    for i in 0..n_tensors {
        let name = w.name(MAX_NAME_LEN, &|| format!("tensor {i}: name"))?;
        let at = || format!("tensor `{name}`");
        let n_dims = w.u32(&at)?;
        if n_dims > MAX_DIMS {
            return Err(format!(
                "{}: {n_dims} dimensions, at most {MAX_DIMS} are allowed",
                at()
            ));
        }
        let mut dims = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            dims.push(w.length(&at)?);
        }
        let ggml_type = w.u32(&at)?;
        let offset = w.u64(&at)?;
        infos.push((name, dims, ggml_type, offset));
    }
    let data_offset = w.pos.div_ceil(alignment).saturating_mul(alignment);
    let mut tensors = Vec::with_capacity(infos.len());
    for (name, dims, ggml_type, offset) in infos {
        let (block, block_bytes) = ggml_type_layout(ggml_type)
            .ok_or_else(|| format!("tensor `{name}`: unknown ggml type {ggml_type}"))?;
        let elems = dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .filter(|&e| usize::try_from(e).is_ok())
            .ok_or_else(|| format!("tensor `{name}`: shape {dims:?} has too many elements"))?;
        if elems == 0 {
            // candle builds a typed slice over the (dangling) buffer of an empty tensor, a
            // misaligned pointer: its debug builds panic. No real checkpoint has one.
            return Err(format!("tensor `{name}`: shape {dims:?} has no elements"));
        }
        if elems % block != 0 {
            return Err(format!(
                "tensor `{name}`: {elems} elements (shape {dims:?}) are not a whole number of \
                 blocks of {block} for ggml type {ggml_type}"
            ));
        }
        let bytes = (elems / block).saturating_mul(block_bytes);
        let start = data_offset.saturating_add(offset);
        if start.saturating_add(bytes) > file_len {
            return Err(format!(
                "tensor `{name}`: shape {dims:?} of ggml type {ggml_type} needs {bytes} bytes \
                 at offset {start}, but the file has only {file_len} bytes (truncated, or a \
                 corrupt header)"
            ));
        }
        tensors.push(TensorSpan {
            name,
            dims,
            ggml_type,
            start,
            bytes,
        });
    }
    Ok(HeaderSummary {
        version,
        metadata_entries: n_kv,
        data_offset,
        tensors,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A GGUF v3 header: the counts, then `kvs` and `tensors` as already-encoded bytes.
    fn gguf(n_tensors: u64, n_kv: u64, body: &[u8]) -> Vec<u8> {
        let mut v = b"GGUF".to_vec();
        v.extend(3u32.to_le_bytes());
        v.extend(n_tensors.to_le_bytes());
        v.extend(n_kv.to_le_bytes());
        v.extend(body);
        v
    }

    fn string(s: &str) -> Vec<u8> {
        let mut v = (s.len() as u64).to_le_bytes().to_vec();
        v.extend(s.as_bytes());
        v
    }

    fn kv_u32(key: &str, x: u32) -> Vec<u8> {
        let mut v = string(key);
        v.extend(4u32.to_le_bytes());
        v.extend(x.to_le_bytes());
        v
    }

    fn tensor(name: &str, dims: &[u64], ggml_type: u32, offset: u64) -> Vec<u8> {
        let mut v = string(name);
        v.extend((dims.len() as u32).to_le_bytes());
        for d in dims {
            v.extend(d.to_le_bytes());
        }
        v.extend(ggml_type.to_le_bytes());
        v.extend(offset.to_le_bytes());
        v
    }

    fn check(bytes: &[u8]) -> Result<HeaderSummary, String> {
        check_header(bytes, bytes.len() as u64)
    }

    #[test]
    fn an_array_of_2_pow_40_entries_is_refused_naming_its_key() {
        let mut body = string("tokenizer.ggml.tokens");
        body.extend(9u32.to_le_bytes()); // array
        body.extend(8u32.to_le_bytes()); // of strings
        body.extend((1u64 << 40).to_le_bytes());
        body.extend([0u8; 64]);
        let err = check(&gguf(0, 1, &body)).expect_err("2^40 entries");
        assert!(err.contains("`tokenizer.ggml.tokens`"), "{err}");
        assert!(err.contains("1099511627776 entries"), "{err}");
        // Under the entry limit but more than the file holds: refused by size.
        let mut body = string("tokenizer.ggml.scores");
        body.extend(9u32.to_le_bytes());
        body.extend(6u32.to_le_bytes()); // of f32
        body.extend(1_000_000u64.to_le_bytes());
        let err = check(&gguf(0, 1, &body)).expect_err("1M floats in a tiny file");
        assert!(
            err.contains("`tokenizer.ggml.scores`") && err.contains("4000000 bytes"),
            "{err}"
        );
    }

    #[test]
    fn a_10_gb_tensor_in_a_small_file_is_refused_naming_it() {
        // 65536 x 40960 f32 = 10 GiB.
        let body = tensor("blk.0.attn_q.weight", &[65536, 40960], 0, 0);
        let mut file = gguf(1, 0, &body);
        file.resize(file.len() + 4096, 0);
        let err = check(&file).expect_err("10 GiB tensor");
        assert!(err.contains("`blk.0.attn_q.weight`"), "{err}");
        assert!(err.contains("10737418240 bytes"), "{err}");
    }

    #[test]
    fn element_counts_that_overflow_are_refused() {
        // candle's reader multiplies the dimensions unchecked (a panic in debug builds).
        let body = tensor("t", &[u64::MAX, 3], 0, 0);
        let err = check(&gguf(1, 0, &body)).expect_err("overflow");
        assert!(
            err.contains("`t`") && err.contains("too many elements"),
            "{err}"
        );
        // Found by fuzzing: an empty tensor made candle slice a dangling pointer.
        let body = tensor("empty", &[0, 4], 0, 0);
        let err = check(&gguf(1, 0, &body)).expect_err("no elements");
        assert!(
            err.contains("`empty`") && err.contains("no elements"),
            "{err}"
        );
        let body = tensor("t", &[1, 2, 3, 4, 5], 0, 0);
        let err = check(&gguf(1, 0, &body)).expect_err("5 dims");
        assert!(err.contains("5 dimensions"), "{err}");
    }

    #[test]
    fn an_alignment_of_zero_is_refused() {
        // candle divides by the alignment: 0 panicked before this check.
        let err = check(&gguf(0, 1, &kv_u32("general.alignment", 0))).expect_err("alignment 0");
        assert!(err.contains("`general.alignment` is 0"), "{err}");
        let err = check(&gguf(0, 1, &kv_u32("general.alignment", 48))).expect_err("not 2^k");
        assert!(err.contains("power of two"), "{err}");
    }

    #[test]
    fn counts_lengths_and_types_are_checked_against_the_file() {
        let err = check(&gguf(1 << 30, 0, &[])).expect_err("2^30 tensors");
        assert!(err.contains("1073741824 tensors"), "{err}");
        let err = check(&gguf(0, 1000, &[0; 64])).expect_err("1000 kvs in 64 bytes");
        assert!(err.contains("1000 metadata entries"), "{err}");
        let mut body = string("general.name");
        body.extend(8u32.to_le_bytes());
        body.extend((1u64 << 32).to_le_bytes());
        let err = check(&gguf(0, 1, &body)).expect_err("4 GB string");
        assert!(
            err.contains("`general.name`") && err.contains("exceeds the limit"),
            "{err}"
        );
        let mut body = string("general.name");
        body.extend(8u32.to_le_bytes());
        body.extend((1u64 << 20).to_le_bytes());
        let err = check(&gguf(0, 1, &body)).expect_err("1 MB string in a tiny file");
        assert!(
            err.contains("`general.name`") && err.contains("remain"),
            "{err}"
        );
        let mut body = string("general.x");
        body.extend(77u32.to_le_bytes());
        let err = check(&gguf(0, 1, &body)).expect_err("type 77");
        assert!(err.contains("`general.x`: unknown value type 77"), "{err}");
        let err = check(b"GGUF\x07\0\0\0").expect_err("version 7");
        assert!(err.contains("version 7"), "{err}");
        let err = check(b"PK\x03\x04 not gguf").expect_err("magic");
        assert!(err.contains("not a GGUF file"), "{err}");
        let mut body = string("k");
        body.extend(10u32.to_le_bytes()); // u64, but only 4 bytes follow
        body.extend([0u8; 4]);
        let err = check(&gguf(0, 1, &body)).expect_err("truncated");
        assert!(err.contains("`k`") && err.contains("truncated"), "{err}");
    }

    #[test]
    fn arrays_nested_too_deep_are_refused() {
        let mut body = string("deep");
        body.extend(9u32.to_le_bytes());
        for _ in 0..100 {
            body.extend(9u32.to_le_bytes()); // element type: array
            body.extend(1u64.to_le_bytes()); // one of them
        }
        body.extend([0u8; 16]);
        let err = check(&gguf(0, 1, &body)).expect_err("deep");
        assert!(
            err.contains("`deep`") && err.contains("nested deeper"),
            "{err}"
        );
    }

    #[test]
    fn a_valid_file_gives_its_tensor_spans() -> candle_core::Result<()> {
        use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
        use candle_core::{Device, Tensor};
        let t = Tensor::arange(0f32, 64., &Device::Cpu)?.reshape((2, 32))?;
        let q = QTensor::quantize(&t, GgmlDType::Q8_0)?;
        let f = QTensor::quantize(&t.flatten_all()?, GgmlDType::F32)?;
        let name = gguf_file::Value::String("x".into());
        let mut buf = std::io::Cursor::new(Vec::new());
        gguf_file::write(
            &mut buf,
            &[("general.name", &name)],
            &[("q", &q), ("f", &f)],
        )?;
        let bytes = buf.into_inner();
        let s = check(&bytes).map_err(candle_core::Error::msg)?;
        assert_eq!((s.version, s.metadata_entries, s.tensors.len()), (2, 1, 2));
        assert_eq!(s.data_offset % 32, 0);
        assert_eq!(
            (s.tensors[0].name.as_str(), s.tensors[0].bytes),
            ("q", 2 * 34)
        );
        assert_eq!(s.tensors[0].dims, [32, 2]);
        assert_eq!(
            (s.tensors[1].start, s.tensors[1].bytes),
            (s.data_offset + 96, 256)
        );
        // One byte short: the last tensor no longer fits.
        let err =
            check_header(&bytes[..bytes.len() - 1], bytes.len() as u64 - 1).expect_err("cut file");
        assert!(err.contains("`f`") && err.contains("truncated"), "{err}");
        Ok(())
    }
}

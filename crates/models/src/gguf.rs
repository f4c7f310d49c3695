//! Reading GGUF checkpoints (llama.cpp's format): metadata, a config, and the tensors
//! dequantized under the Hugging Face names our model files use.
//!
//! The renames from llama.cpp's tensor names live here and only here.

use crate::decoder::llama::LlamaConfig;
use crate::registry::Architecture;
use crate::{ModelError, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::quantized::{GgmlDType, QStorage, QTensor};
use candle_core::{DType, Device, Tensor};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tasklm_nn::QuantizedWeights;

mod header;
pub use header::{
    check_header, HeaderSummary, TensorSpan, MAX_ARRAY_LEN, MAX_DEPTH, MAX_DIMS, MAX_ENTRIES,
    MAX_NAME_LEN, MAX_STRING_LEN,
};

/// A GGUF file's metadata and dequantized tensors.
pub struct GgufCheckpoint {
    pub path: PathBuf,
    pub architecture: Architecture,
    pub metadata: HashMap<String, Value>,
    pub config: LlamaConfig,
    /// Tensors under Hugging Face names, dequantized to the requested dtype.
    pub tensors: HashMap<String, Tensor>,
    /// With `keep_quantized`: the quantized weight matrices, as stored (Q/K rows unpermuted).
    pub quantized: QuantizedWeights,
}

/// Reads only the header (metadata and tensor index) of a GGUF file.
pub fn read_header(path: &Path) -> Result<(Content, std::fs::File)> {
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::Io {
        path: path.into(),
        source: e,
    })?;
    let content = read_header_from(&mut file, path)?;
    Ok((content, file))
}

/// Reads the header of the GGUF file in `reader` (`path` names it in errors). The header is
/// first walked by [`check_header`] against the reader's real length, so a count, length or
/// tensor size the file cannot hold is refused, naming the entry, before candle allocates.
pub fn read_header_from<R: Read + Seek>(reader: &mut R, path: &Path) -> Result<Content> {
    let io = |e: std::io::Error| ModelError::Io {
        path: path.into(),
        source: e,
    };
    let len = reader.seek(SeekFrom::End(0)).map_err(io)?;
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    check_header(&mut *reader, len)
        .map_err(|m| ModelError::invalid(path, format!("not a readable GGUF file: {m}")))?;
    reader.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut buffered = std::io::BufReader::new(&mut *reader);
    Content::read(&mut buffered)
        .map_err(|e| ModelError::invalid(path, format!("not a readable GGUF file: {e}")))
}

fn meta_u32(md: &HashMap<String, Value>, key: &str, path: &Path) -> Result<usize> {
    md.get(key)
        .ok_or_else(|| ModelError::invalid(path, format!("missing GGUF metadata `{key}`")))?
        .to_u64()
        .map_err(|e| ModelError::invalid(path, format!("GGUF metadata `{key}`: {e}")))
        .and_then(|v| {
            u32::try_from(v).map(|v| v as usize).map_err(|_| {
                ModelError::invalid(path, format!("GGUF metadata `{key}` is {v}: too large"))
            })
        })
}

fn meta_f32(md: &HashMap<String, Value>, key: &str) -> Option<f64> {
    md.get(key).and_then(|v| v.to_f32().ok()).map(f64::from)
}

/// The llama.cpp tensor name for a Hugging Face one, or None for names it does not map.
fn hf_name(gguf: &str) -> Option<String> {
    if let Some(rest) = gguf.strip_prefix("blk.") {
        let (layer, name) = rest.split_once('.')?;
        let (base, suffix) = name.rsplit_once('.')?; // suffix: weight | bias
        let hf = match base {
            "attn_norm" => "input_layernorm",
            "ffn_norm" => "post_attention_layernorm",
            "attn_q" => "self_attn.q_proj",
            "attn_k" => "self_attn.k_proj",
            "attn_v" => "self_attn.v_proj",
            "attn_output" => "self_attn.o_proj",
            "ffn_gate" => "mlp.gate_proj",
            "ffn_up" => "mlp.up_proj",
            "ffn_down" => "mlp.down_proj",
            _ => return None,
        };
        return Some(format!("model.layers.{layer}.{hf}.{suffix}"));
    }
    Some(
        match gguf {
            "token_embd.weight" => "model.embed_tokens.weight",
            "output_norm.weight" => "model.norm.weight",
            "output.weight" => "lm_head.weight",
            _ => return None,
        }
        .to_string(),
    )
}

/// llama.cpp's converter interleaves the rows of Q and K of llama-architecture models for its
/// rotary kernel (`permute` in convert_hf_to_gguf.py). This undoes it, as transformers'
/// `reverse_permute_weights` does: rows (n_head, hd/2, 2) -> (n_head, 2, hd/2).
fn unpermute_rows(t: &Tensor, n_head: usize) -> candle_core::Result<Tensor> {
    let dims = t.dims().to_vec();
    let rows = dims.first().copied().unwrap_or(0);
    check_head_rows(rows, n_head, t.dims())?;
    let rest: usize = dims[1..].iter().product();
    t.reshape((n_head, rows / n_head / 2, 2, rest))? // (nh, hd/2, 2, in)
        .transpose(1, 2)? // (nh, 2, hd/2, in)
        .contiguous()?
        .reshape(dims)
}

/// Q and K have `n_head` heads of an even number of rows each.
fn check_head_rows(rows: usize, n_head: usize, dims: &[usize]) -> candle_core::Result<()> {
    if n_head == 0 || rows == 0 || !rows.is_multiple_of(2 * n_head) {
        candle_core::bail!(
            "shape {dims:?}: expected a matrix whose {rows} rows split into {n_head} heads of \
             an even number of rows"
        );
    }
    Ok(())
}

/// Block types with a vectorised CPU dot product: Q4_0, Q4_1 and Q8_0 on tasklm's integer-dot
/// kernels (`tasklm_nn::quant`), the k-quants on candle's (AVX2).
fn has_fast_cpu_kernel(dt: GgmlDType) -> bool {
    use GgmlDType::*;
    matches!(dt, Q4_0 | Q4_1 | Q8_0 | Q2K | Q3K | Q4K | Q5K | Q6K | Q8K)
}

/// [`unpermute_rows`] on a quantized matrix: rows are whole runs of blocks, so they move as bytes.
fn unpermute_quantized_rows(
    q: &QTensor,
    n_head: usize,
    device: &Device,
) -> candle_core::Result<QTensor> {
    let (rows, cols) = q.shape().dims2()?;
    check_head_rows(rows, n_head, q.shape().dims())?;
    let data = q.data()?;
    let row_bytes = data.len() / rows;
    let half = rows / n_head / 2;
    let mut out = vec![0u8; data.len()];
    for h in 0..n_head {
        for s in 0..2 {
            for i in 0..half {
                let new = h * 2 * half + s * half + i;
                let old = h * 2 * half + i * 2 + s;
                out[new * row_bytes..(new + 1) * row_bytes]
                    .copy_from_slice(&data[old * row_bytes..(old + 1) * row_bytes]);
            }
        }
    }
    QTensor::new(
        QStorage::from_data(Cow::Owned(out), device, q.dtype())?,
        (rows, cols),
    )
}

/// One tensor as the model uses it: dense in `dtype`, and/or kept quantized (with
/// `keep_quantized`, for weight matrices and the embedding table); Q/K rows unpermuted.
fn convert_tensor(
    q: QTensor,
    hf: &str,
    heads: Option<usize>,
    keep_quantized: bool,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<(Option<Tensor>, Option<Arc<QTensor>>)> {
    let is_quantized = !matches!(q.dtype(), GgmlDType::F32 | GgmlDType::F16 | GgmlDType::BF16);
    let is_matrix = hf.ends_with("_proj.weight") || hf == "lm_head.weight";
    let is_embedding = hf == "model.embed_tokens.weight";
    if keep_quantized && is_quantized && (is_matrix || is_embedding) {
        let kept = match (has_fast_cpu_kernel(q.dtype()), heads) {
            (true, Some(n)) => unpermute_quantized_rows(&q, n, device)?,
            (true, None) => q,
            // Q5_0 and Q5_1 have only candle's scalar dot product: requantize to Q8_0, whose
            // kernel is vectorised (1.06 bytes a weight instead of 4 in f32).
            (false, _) => {
                let mut t = q.dequantize(device)?;
                if let Some(n) = heads {
                    t = unpermute_rows(&t, n)?;
                }
                QTensor::quantize(&t, GgmlDType::Q8_0)?
            }
        };
        let kept = Arc::new(kept);
        let dense = if is_embedding {
            Some(kept.dequantize(device)?.to_dtype(dtype)?)
        } else {
            None
        };
        return Ok((dense, Some(kept)));
    }
    let mut t = q.dequantize(device)?.to_dtype(dtype)?;
    if let Some(n) = heads {
        t = unpermute_rows(&t, n)?;
    }
    Ok((Some(t), None))
}

/// Builds the config from `{arch}.*` metadata.
fn config_from_metadata(
    md: &HashMap<String, Value>,
    arch: Architecture,
    has_output: bool,
    path: &Path,
) -> Result<LlamaConfig> {
    let a = arch.gguf_name();
    let vocab = match md.get(&format!("{a}.vocab_size")) {
        Some(_) => meta_u32(md, &format!("{a}.vocab_size"), path)?,
        None => md
            .get("tokenizer.ggml.tokens")
            .and_then(|v| v.to_vec().ok())
            .map(|v| v.len())
            .ok_or_else(|| {
                ModelError::invalid(path, "no vocab_size and no tokenizer.ggml.tokens")
            })?,
    };
    let heads = meta_u32(md, &format!("{a}.attention.head_count"), path)?;
    let hidden = meta_u32(md, &format!("{a}.embedding_length"), path)?;
    let head_dim = md
        .get(&format!("{a}.attention.key_length"))
        .and_then(|v| v.to_u32().ok())
        .map(|v| v as usize);
    let cfg = LlamaConfig {
        vocab_size: vocab,
        hidden_size: hidden,
        intermediate_size: meta_u32(md, &format!("{a}.feed_forward_length"), path)?,
        num_hidden_layers: meta_u32(md, &format!("{a}.block_count"), path)?,
        num_attention_heads: heads,
        num_key_value_heads: Some(
            md.get(&format!("{a}.attention.head_count_kv"))
                .map(|_| meta_u32(md, &format!("{a}.attention.head_count_kv"), path))
                .transpose()?
                .unwrap_or(heads),
        ),
        head_dim,
        rms_norm_eps: meta_f32(md, &format!("{a}.attention.layer_norm_rms_epsilon"))
            .unwrap_or(1e-6),
        rope_theta: meta_f32(md, &format!("{a}.rope.freq_base")).unwrap_or(10_000.0),
        max_position_embeddings: meta_u32(md, &format!("{a}.context_length"), path)?,
        tie_word_embeddings: !has_output,
        attention_bias: false,
        qkv_bias: arch == Architecture::Qwen2,
        attention_dropout: 0.0,
        bos_token_id: md
            .get("tokenizer.ggml.bos_token_id")
            .and_then(|v| v.to_u32().ok()),
        eos_token_id: md
            .get("tokenizer.ggml.eos_token_id")
            .and_then(|v| v.to_u32().ok())
            .map(serde_json::Value::from),
        rope_scaling: None,
        architectures: vec![arch.hf_class().to_string()],
        model_type: Some(arch.model_type().to_string()),
    };
    cfg.validate().map_err(|m| ModelError::invalid(path, m))?;
    Ok(cfg)
}

/// Reads a GGUF checkpoint and dequantizes every tensor to `dtype`.
pub fn load(path: &Path, dtype: DType, device: &Device) -> Result<GgufCheckpoint> {
    load_with(path, dtype, device, false)
}

/// Like [`load`]; with `keep_quantized`, quantized weight matrices stay quantized (for fast
/// inference through quantized matmuls) and only norms and embeddings are dequantized. The
/// embedding table is kept in both forms: dense for lookups, quantized for a tied LM head.
pub fn load_with(
    path: &Path,
    dtype: DType,
    device: &Device,
    keep_quantized: bool,
) -> Result<GgufCheckpoint> {
    let mut file = std::fs::File::open(path).map_err(|e| ModelError::Io {
        path: path.into(),
        source: e,
    })?;
    load_from(&mut file, path, dtype, device, keep_quantized)
}

/// [`load_with`] over any reader (a file, or bytes in memory); `path` names it in errors.
pub fn load_from<R: Read + Seek>(
    file: &mut R,
    path: &Path,
    dtype: DType,
    device: &Device,
    keep_quantized: bool,
) -> Result<GgufCheckpoint> {
    let content = read_header_from(file, path)?;
    let md = content.metadata.clone();
    let arch_name = md
        .get("general.architecture")
        .and_then(|v| v.to_string().ok())
        .cloned()
        .ok_or_else(|| ModelError::invalid(path, "missing GGUF metadata `general.architecture`"))?;
    let arch = Architecture::from_gguf_metadata(&arch_name, path)?;
    let has_output = content.tensor_infos.contains_key("output.weight");
    let config = config_from_metadata(&md, arch, has_output, path)?;

    let mut tensors = HashMap::new();
    let mut quantized = QuantizedWeights::new();
    for name in content.tensor_infos.keys() {
        let Some(hf) = hf_name(name) else { continue };
        let q = content.tensor(file, name, device).map_err(|e| {
            ModelError::invalid(path, format!("tensor `{name}`: {e} (file truncated?)"))
        })?;
        let heads = match arch {
            Architecture::Llama if name.contains(".attn_q.") => Some(config.num_attention_heads),
            Architecture::Llama if name.contains(".attn_k.") => Some(config.n_kv_heads()),
            _ => None,
        };
        let (dense, kept) = convert_tensor(q, &hf, heads, keep_quantized, dtype, device)
            .map_err(|e| ModelError::invalid(path, format!("tensor `{name}`: {e}")))?;
        if let Some(t) = dense {
            tensors.insert(hf.clone(), t);
        }
        if let Some(k) = kept {
            quantized.insert(hf, k);
        }
    }
    Ok(GgufCheckpoint {
        path: path.into(),
        architecture: arch,
        metadata: md,
        config,
        tensors,
        quantized,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unpermute_inverts_llama_cpp_permute() -> candle_core::Result<()> {
        // llama.cpp: w.reshape(nh, 2, hd/2, in).swapaxes(1, 2).reshape(out, in)
        let (nh, hd, inp) = (2, 4, 3);
        let w =
            Tensor::arange(0f32, (nh * hd * inp) as f32, &Device::Cpu)?.reshape((nh * hd, inp))?;
        let permuted = w
            .reshape((nh, 2, hd / 2, inp))?
            .transpose(1, 2)?
            .contiguous()?
            .reshape((nh * hd, inp))?;
        let back = unpermute_rows(&permuted, nh)?;
        assert_eq!(back.to_vec2::<f32>()?, w.to_vec2::<f32>()?);
        Ok(())
    }

    #[test]
    fn unpermute_refuses_shapes_that_do_not_split_into_heads() -> candle_core::Result<()> {
        // A GGUF whose attn_q was a vector (or had no rows) indexed out of bounds or divided
        // by zero here before.
        let scalar = Tensor::new(1f32, &Device::Cpu)?;
        assert!(unpermute_rows(&scalar, 2).is_err());
        let odd = Tensor::zeros((6, 4), DType::F32, &Device::Cpu)?;
        let err = unpermute_rows(&odd, 2)
            .expect_err("6 rows, 2 heads")
            .to_string();
        assert!(err.contains("2 heads"), "{err}");
        let empty = QTensor::quantize(
            &Tensor::zeros((0, 32), DType::F32, &Device::Cpu)?,
            GgmlDType::Q8_0,
        )?;
        assert!(unpermute_quantized_rows(&empty, 2, &Device::Cpu).is_err());
        let q = QTensor::quantize(
            &Tensor::zeros((4, 32), DType::F32, &Device::Cpu)?,
            GgmlDType::Q8_0,
        )?;
        assert!(unpermute_quantized_rows(&q, 0, &Device::Cpu).is_err());
        assert!(unpermute_quantized_rows(&q, 2, &Device::Cpu).is_ok());
        Ok(())
    }

    #[test]
    fn hostile_headers_are_refused_naming_the_file() {
        let mut v = b"GGUF".to_vec();
        v.extend(3u32.to_le_bytes());
        v.extend(0u64.to_le_bytes());
        v.extend(1u64.to_le_bytes());
        v.extend(21u64.to_le_bytes());
        v.extend(b"tokenizer.ggml.tokens");
        v.extend(9u32.to_le_bytes());
        v.extend(8u32.to_le_bytes());
        v.extend((1u64 << 40).to_le_bytes());
        let path = Path::new("evil.gguf");
        let err = read_header_from(&mut std::io::Cursor::new(&v), path)
            .expect_err("2^40 entries")
            .to_string();
        assert!(
            err.starts_with("evil.gguf: ") && err.contains("`tokenizer.ggml.tokens`"),
            "{err}"
        );
        let err = load_from(
            &mut std::io::Cursor::new(&v),
            path,
            DType::F32,
            &Device::Cpu,
            false,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("1099511627776 entries"), "{err}");
    }

    #[test]
    fn a_gguf_with_an_empty_tensor_is_refused() {
        // Found by fuzzing (fuzz/regressions): candle sliced the dangling buffer of an empty
        // tensor through a misaligned pointer, a panic in debug builds.
        let bytes = include_bytes!("../../../fuzz/regressions/gguf_empty_tensor.gguf");
        let err = load_from(
            &mut std::io::Cursor::new(&bytes[..]),
            Path::new("e.gguf"),
            DType::F32,
            &Device::Cpu,
            false,
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(err.contains("no elements"), "{err}");
    }

    #[test]
    fn names_map_to_hf() {
        assert_eq!(
            hf_name("blk.3.attn_q.weight").as_deref(),
            Some("model.layers.3.self_attn.q_proj.weight")
        );
        assert_eq!(
            hf_name("token_embd.weight").as_deref(),
            Some("model.embed_tokens.weight")
        );
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }
}

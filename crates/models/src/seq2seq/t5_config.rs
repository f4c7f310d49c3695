//! `config.json` of a T5-family checkpoint (T5, T5 v1.1, Flan-T5), with transformers' key names,
//! and T5's relative position buckets.

use serde::{Deserialize, Serialize};

fn default_buckets() -> usize {
    32
}
fn default_max_distance() -> usize {
    128
}
fn default_dropout() -> f32 {
    0.1
}
fn default_eps() -> f64 {
    1e-6
}
fn default_ff() -> String {
    "relu".into()
}
fn default_true() -> bool {
    true
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    /// Width of one attention head (the inner width is `num_heads * d_kv`, not `d_model`).
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_layers: usize,
    /// Decoder layers; `num_layers` when absent.
    #[serde(default)]
    pub num_decoder_layers: Option<usize>,
    pub num_heads: usize,
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
    #[serde(default = "default_max_distance")]
    pub relative_attention_max_distance: usize,
    #[serde(default = "default_dropout")]
    pub dropout_rate: f32,
    #[serde(default = "default_eps")]
    pub layer_norm_epsilon: f64,
    /// `relu` (T5) or `gated-gelu` (v1.1, Flan-T5: `gelu_new(wi_0 x) * wi_1 x`).
    #[serde(default = "default_ff")]
    pub feed_forward_proj: String,
    /// T5 ties the LM head to the shared embeddings (and scales the decoder output by
    /// `d_model^-0.5`); v1.1 and Flan-T5 have their own `lm_head`.
    #[serde(default = "default_true")]
    pub tie_word_embeddings: bool,
    /// Whether the decoder output is scaled by `d_model^-0.5` before the head. transformers 5
    /// writes it (and always `tie_word_embeddings: true`); older configs imply it by
    /// `tie_word_embeddings`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_decoder_outputs: Option<bool>,
    #[serde(default)]
    pub decoder_start_token_id: Option<u32>,
    #[serde(default)]
    pub pad_token_id: Option<u32>,
    #[serde(default)]
    pub eos_token_id: Option<u32>,
    #[serde(default)]
    pub architectures: Vec<String>,
    #[serde(default)]
    pub model_type: Option<String>,
}

impl T5Config {
    /// Checks the shape constraints a forward pass relies on.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let positive = [
            ("vocab_size", self.vocab_size),
            ("d_model", self.d_model),
            ("d_kv", self.d_kv),
            ("d_ff", self.d_ff),
            ("num_layers", self.num_layers),
            ("num_heads", self.num_heads),
            (
                "relative_attention_num_buckets",
                self.relative_attention_num_buckets,
            ),
        ];
        if let Some((name, _)) = positive.iter().find(|(_, v)| *v == 0) {
            return Err(format!("`{name}` must be positive"));
        }
        if !matches!(
            self.feed_forward_proj.as_str(),
            "relu" | "gated-gelu" | "gated-relu"
        ) {
            return Err(format!(
                "`feed_forward_proj` {:?}: expected relu, gated-gelu or gated-relu",
                self.feed_forward_proj
            ));
        }
        Ok(())
    }

    pub fn decoder_layers(&self) -> usize {
        self.num_decoder_layers.unwrap_or(self.num_layers)
    }

    /// Whether the decoder output is scaled by `d_model^-0.5` before the head.
    pub fn scales_decoder_output(&self) -> bool {
        self.scale_decoder_outputs
            .unwrap_or(self.tie_word_embeddings)
    }

    /// Whether the feed-forward block is gated (`gated-gelu`, `gated-relu`).
    pub fn gated(&self) -> bool {
        self.feed_forward_proj.starts_with("gated-")
    }

    /// The token the decoder starts from (T5: the pad token, 0).
    pub fn decoder_start(&self) -> u32 {
        self.decoder_start_token_id
            .or(self.pad_token_id)
            .unwrap_or(0)
    }
}

/// T5's bucket of a relative position `key - query` (transformers'
/// `T5Attention._relative_position_bucket`, with its f32 logarithm): exact buckets for small
/// distances, logarithmic ones up to `max_distance`; bidirectional (encoder) buckets keep the
/// sign, unidirectional (decoder) ones see only the past.
pub fn relative_position_bucket(
    relative: i64,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
) -> usize {
    let mut buckets = num_buckets as i64;
    let mut base = 0i64;
    let distance = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            base += buckets;
        }
        relative.abs()
    } else {
        (-relative).max(0)
    };
    let max_exact = buckets / 2;
    if distance < max_exact {
        return (base + distance) as usize;
    }
    let scaled = ((distance as f32 / max_exact as f32).ln()
        / (max_distance as f32 / max_exact as f32).ln()
        * (buckets - max_exact) as f32) as i64;
    (base + (max_exact + scaled).min(buckets - 1)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_as_transformers_computes_them() {
        // Values from transformers' _relative_position_bucket(32 buckets, max distance 128).
        let bi = |r| relative_position_bucket(r, true, 32, 128);
        assert_eq!(
            [bi(0), bi(1), bi(-1), bi(7), bi(8), bi(-8)],
            [0, 17, 1, 23, 24, 8]
        );
        assert_eq!([bi(20), bi(-100), bi(500)], [26, 15, 31]);
        let uni = |r| relative_position_bucket(r, false, 32, 128);
        assert_eq!(
            [uni(0), uni(3), uni(-3), uni(-15), uni(-16)],
            [0, 0, 3, 15, 16]
        );
        assert_eq!([uni(-40), uni(-127), uni(-1000)], [23, 31, 31]);
    }
}

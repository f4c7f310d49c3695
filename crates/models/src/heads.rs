//! Task heads, generic over the backbone: they read hidden states (or a pooled vector) and are
//! stored under the names transformers' `...ForSequenceClassification`,
//! `...ForTokenClassification` and `...ForQuestionAnswering` use (`classifier`, `qa_outputs`).

use candle_core::{Module, Result, Tensor};
use candle_nn::VarBuilder;
use tasklm_nn::{dropout, Linear};

/// Dropout then a linear layer to `n_labels` logits (`classifier.weight`, `classifier.bias`).
/// Serves sequence classification (over a pooled (B, H) vector) and token classification
/// (over (B, T, H) hidden states) alike.
#[derive(Clone, Debug)]
pub struct ClassifierHead {
    classifier: Linear,
    dropout: f32,
}

impl ClassifierHead {
    /// `vb` is the model root: the head loads `classifier.weight` (n_labels, H) and its bias.
    pub fn new(hidden: usize, n_labels: usize, dropout: f32, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            classifier: Linear::new(hidden, n_labels, true, vb.pp("classifier"))?,
            dropout,
        })
    }

    /// Logits (.., n_labels) for features (.., H).
    pub fn forward_t(&self, features: &Tensor, train: bool) -> Result<Tensor> {
        self.classifier
            .forward(&dropout(features, self.dropout, train)?)
    }
}

/// Extractive QA: start and end logits per token from `qa_outputs` (2, H).
#[derive(Clone, Debug)]
pub struct SpanHead {
    qa_outputs: Linear,
}

impl SpanHead {
    pub fn new(hidden: usize, vb: VarBuilder) -> Result<Self> {
        Ok(Self {
            qa_outputs: Linear::new(hidden, 2, true, vb.pp("qa_outputs"))?,
        })
    }

    /// (start, end) logits, each (B, T), for hidden states (B, T, H).
    pub fn forward(&self, hidden: &Tensor) -> Result<(Tensor, Tensor)> {
        let logits = self.qa_outputs.forward(hidden)?; // (B, T, 2)
        let start = logits.narrow(2, 0, 1)?.squeeze(2)?; // (B, T)
        let end = logits.narrow(2, 1, 1)?.squeeze(2)?; // (B, T)
        Ok((start, end))
    }
}

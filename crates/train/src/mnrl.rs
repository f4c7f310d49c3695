//! Multiple-negatives ranking loss, as sentence-transformers' `MultipleNegativesRankingLoss`
//! computes it (its defaults: cosine similarity, scale 20, query-to-document direction): each
//! query's scores against every candidate of the batch (all positives, then all hard
//! negatives), scaled, and the cross-entropy of the query's own positive among them.

use crate::Result;
use candle_core::{DType, Tensor};

/// sentence-transformers' default scale (the inverse temperature, 1 / 0.05).
pub const MNRL_SCALE: f64 = 20.0;

/// `x / max(||x||, 1e-12)` row by row, as `torch.nn.functional.normalize(x, p=2, dim=1)`.
/// Differentiable.
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12f64, f64::MAX)?; // (N, 1)
    Ok(x.broadcast_div(&norm)?)
}

/// The summed loss over the `B` rows of `queries` (B, H) and how many it scored (`B`):
/// `candidates` (M, H) with M >= B holds query i's positive at row i, then any other
/// candidates (hard negatives). The mean (`sum / B`) is sentence-transformers' loss.
pub fn mnrl_loss(queries: &Tensor, candidates: &Tensor, scale: f64) -> Result<(Tensor, usize)> {
    let (b, _) = queries.dims2()?;
    let (m, _) = candidates.dims2()?;
    if m < b {
        return Err(crate::TrainError::Setting(format!(
            "multiple-negatives ranking loss: {m} candidates for {b} queries (each query needs its positive)"
        )));
    }
    let q = l2_normalize(queries)?;
    let c = l2_normalize(candidates)?;
    let scores = (q.matmul(&c.t()?)? * scale)?; // (B, M)
    let labels = Tensor::arange(0u32, b as u32, queries.device())?.to_dtype(DType::I64)?;
    let per_query = tasklm_nn::ops::per_token_cross_entropy(&scores, &labels)?; // (B)
    Ok((per_query.sum_all()?, b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The loss by hand: -log softmax(20 cos)[i], averaged.
    fn reference(q: &[[f32; 2]], c: &[[f32; 2]]) -> f64 {
        let cos = |a: &[f32; 2], b: &[f32; 2]| {
            let d = f64::from(a[0] * b[0] + a[1] * b[1]);
            let na = f64::from(a[0].hypot(a[1]));
            let nb = f64::from(b[0].hypot(b[1]));
            d / (na * nb)
        };
        let mut total = 0.0;
        for (i, qi) in q.iter().enumerate() {
            let s: Vec<f64> = c.iter().map(|cj| 20.0 * cos(qi, cj)).collect();
            let lse = s.iter().map(|x| x.exp()).sum::<f64>().ln();
            total += lse - s[i];
        }
        total / q.len() as f64
    }

    #[test]
    fn matches_the_loss_written_out_and_has_a_gradient() -> anyhow::Result<()> {
        let q = [[1.0f32, 0.5], [-0.3, 2.0]];
        let c = [[0.9f32, 0.7], [0.1, 1.0], [1.0, -1.0]];
        let qv = Var::from_tensor(&Tensor::new(&q, &Device::Cpu)?)?;
        let ct = Tensor::new(&c, &Device::Cpu)?;
        let (sum, n) = mnrl_loss(qv.as_tensor(), &ct, MNRL_SCALE)?;
        assert_eq!(n, 2);
        let mean = sum.to_scalar::<f32>()? as f64 / n as f64;
        assert!((mean - reference(&q, &c)).abs() < 1e-5, "{mean}");
        let grads = sum.backward()?;
        let g = grads
            .get(qv.as_tensor())
            .map(|g| g.abs()?.sum_all()?.to_scalar::<f32>());
        assert!(
            g.transpose()?.is_some_and(|s| s > 0.0),
            "no gradient reached the queries"
        );
        Ok(())
    }

    #[test]
    fn fewer_candidates_than_queries_is_an_error() -> anyhow::Result<()> {
        let q = Tensor::ones((3, 2), DType::F32, &Device::Cpu)?;
        let c = Tensor::ones((2, 2), DType::F32, &Device::Cpu)?;
        let err = mnrl_loss(&q, &c, MNRL_SCALE).err().map(|e| e.to_string());
        assert!(err.is_some_and(|m| m.contains("2 candidates for 3 queries")));
        Ok(())
    }
}

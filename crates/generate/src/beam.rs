//! Beam search over the step contract ([`crate::steps`]), with the semantics of transformers'
//! `generate(num_beams=...)` (its vectorized `_beam_search`, transformers 5): per step, the
//! top `max(2, 1 + n_eos) * num_beams` continuations over all beams by accumulated
//! log-probability; those ending in EOS (or at the maximum length) among the top `num_beams`
//! become finished hypotheses scored `sum / generated_len ^ length_penalty`; the best
//! `num_beams` others keep running (each forked from its parent's cache by
//! [`StepModel::select`]); `early_stopping` decides when to stop. Arithmetic is f32, as
//! transformers' on CPU, so sequence scores match to rounding.
//!
//! Each prompt's beams are `num_beams` consecutive rows of one batch, so several prompts are
//! searched together.

use crate::beam_params::{process_beam_row, BeamParams, EarlyStopping};
use crate::steps::{log_softmax_rows, RowInput, StepModel};
use crate::Result;

/// transformers' stand-in for minus infinity in beam scores.
const NEG: f32 = -1.0e9;

/// One finished (or, at the length limit, cut) hypothesis.
#[derive(Clone, Debug, PartialEq)]
pub struct BeamHypothesis {
    /// Generated ids, including a final end-of-sequence token when it ended with one.
    pub token_ids: Vec<u32>,
    /// `sum(logprobs) / generated_len ^ length_penalty` (transformers' `sequences_scores`).
    pub score: f32,
    /// Whether it ended with an end-of-sequence token.
    pub ended_with_eos: bool,
}

/// One prompt's search state.
struct Search {
    prompt: Vec<u32>,
    /// Running beams: generated ids and accumulated log-probability.
    running: Vec<(Vec<u32>, f32)>,
    /// `num_beams` slots, best first: generated ids, score, finished.
    finished: Vec<(Vec<u32>, f32, bool)>,
    improvable: bool,
    done: bool,
}

/// A continuation: its rank among the top K, parent beam, token, accumulated log-probability.
struct Candidate {
    parent: usize,
    token: u32,
    logprob: f32,
    hits_stop: bool,
}

/// The indices of the `k` largest values, largest first (ties: the lower index first).
fn top_k(values: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    let k = k.min(idx.len());
    let by_value = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    if k < idx.len() {
        idx.select_nth_unstable_by(k, by_value);
        idx.truncate(k);
    }
    idx.sort_by(by_value);
    idx
}

impl Search {
    fn new(prompt: Vec<u32>, beams: usize) -> Self {
        let mut running = vec![(Vec::new(), NEG); beams];
        running[0].1 = 0.0;
        Self {
            prompt,
            running,
            finished: vec![(Vec::new(), NEG, false); beams],
            improvable: true,
            done: false,
        }
    }

    /// Advances by one token given each running beam's log-probabilities; returns the parent
    /// of each new running beam and the token it takes.
    fn advance(
        &mut self,
        p: &BeamParams,
        (eos, never): (&[u32], &[u32]),
        max_new: usize,
        mut logprobs: Vec<Vec<f32>>,
    ) -> Vec<(usize, u32)> {
        let beams = p.num_beams;
        let generated = self.running[0].0.len();
        let max_length = self.prompt.len() + max_new;
        let vocab = logprobs.first().map_or(0, Vec::len);
        let mut flat = Vec::with_capacity(beams * vocab);
        for (b, row) in logprobs.iter_mut().enumerate() {
            let seq: Vec<u32> = self
                .prompt
                .iter()
                .chain(&self.running[b].0)
                .copied()
                .collect();
            process_beam_row(p, &seq, (generated, max_length), (eos, never), row);
            let acc = self.running[b].1;
            flat.extend(row.iter().map(|&x| x + acc));
        }
        let keep = beams * 2.max(1 + eos.len());
        let at_max = self.prompt.len() + generated + 1 >= max_length;
        let cands: Vec<Candidate> = top_k(&flat, keep)
            .into_iter()
            .map(|i| {
                let token = (i % vocab) as u32;
                Candidate {
                    parent: i / vocab,
                    token,
                    logprob: flat[i],
                    hits_stop: at_max || eos.contains(&token),
                }
            })
            .collect();
        // The best `beams` continuations that did not stop keep running.
        let running_scores: Vec<f32> = cands
            .iter()
            .map(|c| c.logprob + if c.hits_stop { NEG } else { 0.0 })
            .collect();
        let next: Vec<usize> = top_k(&running_scores, beams);
        let extend = |c: &Candidate, running: &[(Vec<u32>, f32)]| {
            let mut ids = running[c.parent].0.clone();
            ids.push(c.token);
            ids
        };
        // Finished hypotheses: stopped continuations among the top `beams`, length-penalised.
        let all_finished = self.finished.iter().all(|f| f.2);
        let len_pen = ((generated + 1) as f32).powf(p.length_penalty);
        let mut merged = self.finished.clone();
        for (rank, c) in cands.iter().enumerate() {
            let just_finished = c.hits_stop && rank < beams;
            let mut score = c.logprob / len_pen;
            if all_finished && p.early_stopping == EarlyStopping::Done {
                score += NEG;
            }
            if !self.improvable {
                score += NEG;
            }
            if !just_finished {
                score += NEG;
            }
            merged.push((extend(c, &self.running), score, just_finished));
        }
        let merged_scores: Vec<f32> = merged.iter().map(|m| m.1).collect();
        self.finished = top_k(&merged_scores, beams)
            .into_iter()
            .map(|i| merged[i].clone())
            .collect();
        let forks: Vec<(usize, u32)> = next
            .iter()
            .map(|&j| (cands[j].parent, cands[j].token))
            .collect();
        self.running = next
            .iter()
            .map(|&j| (extend(&cands[j], &self.running), running_scores[j]))
            .collect();
        // Can a running beam still beat the worst finished one?
        let cur = generated + 1;
        let best_len = if p.early_stopping == EarlyStopping::Never && p.length_penalty > 0.0 {
            max_new
        } else {
            cur
        };
        let best_possible = self.running[0].1 / (best_len as f32).powf(p.length_penalty);
        let worst = self
            .finished
            .iter()
            .map(|f| f.1)
            .fold(f32::INFINITY, f32::min);
        self.improvable &= self
            .finished
            .iter()
            .any(|f| best_possible > if f.2 { worst } else { NEG });
        let all_finished = self.finished.iter().all(|f| f.2);
        self.done = !self.improvable
            || (all_finished && p.early_stopping == EarlyStopping::Done)
            || cands.iter().all(|c| c.hits_stop);
        forks
    }

    fn results(&self, p: &BeamParams, eos: &[u32]) -> Vec<BeamHypothesis> {
        self.finished
            .iter()
            .take(p.num_return_sequences)
            .map(|(ids, score, _)| BeamHypothesis {
                token_ids: ids.clone(),
                score: *score,
                ended_with_eos: ids.last().is_some_and(|t| eos.contains(t)),
            })
            .collect()
    }
}

/// Beam search for each prompt; returns each prompt's best `num_return_sequences` hypotheses,
/// best first. `eos` are the end-of-sequence ids (transformers' `eos_token_id` list).
pub fn beam_search<M: StepModel + ?Sized>(
    model: &M,
    eos: &[u32],
    prompts: &[RowInput],
    params: &BeamParams,
) -> Result<Vec<Vec<BeamHypothesis>>> {
    params.validate()?;
    let beams = params.num_beams;
    crate::steps::check_prompts(model, prompts)?;
    let max_new: Vec<usize> = prompts
        .iter()
        .map(|p| params.max_new_tokens.min(model.max_new_tokens(p.ids.len())))
        .collect();
    let mut searches: Vec<Search> = prompts
        .iter()
        .map(|p| Search::new(model.decoder_prompt(p), beams))
        .collect();
    // Prompts with no room to generate have nothing to search.
    let mut live: Vec<usize> = (0..prompts.len()).filter(|&i| max_new[i] > 0).collect();
    if live.is_empty() {
        return Ok(searches.iter().map(|s| s.results(params, eos)).collect());
    }
    let mut batch = model.new_batch();
    let inputs: Vec<RowInput> = live.iter().map(|&i| prompts[i].clone()).collect();
    let first = log_softmax_rows(&model.prefill(&mut batch, &inputs)?)?;
    // Every beam starts as a copy of its prompt's row.
    let rows: Vec<usize> = (0..live.len()).flat_map(|r| vec![r; beams]).collect();
    model.select(&mut batch, &rows)?;
    let mut logprobs: Vec<Vec<f32>> = rows.iter().map(|&r| first[r].clone()).collect();
    loop {
        let mut select = Vec::new();
        let mut tokens = Vec::new();
        let mut still = Vec::new();
        for (slot, &pi) in live.iter().enumerate() {
            let rows = logprobs[slot * beams..(slot + 1) * beams].to_vec();
            let forks =
                searches[pi].advance(params, (eos, model.never_generated()), max_new[pi], rows);
            if searches[pi].done {
                continue;
            }
            for (parent, token) in forks {
                select.push(slot * beams + parent);
                tokens.push(token);
            }
            still.push(pi);
        }
        if still.is_empty() {
            break;
        }
        model.select(&mut batch, &select)?;
        live = still;
        logprobs = log_softmax_rows(&model.step(&mut batch, &tokens)?)?;
    }
    Ok(searches.iter().map(|s| s.results(params, eos)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_orders_by_value_then_index() {
        assert_eq!(top_k(&[1.0, 3.0, 3.0, -1.0, 2.0], 3), vec![1, 2, 4]);
        assert_eq!(top_k(&[0.5], 4), vec![0]);
    }
}

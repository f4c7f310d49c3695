//! Evaluating a generative task: batched generation over every record, `--samples` per
//! record, scored with the metric its field reports (SQuAD F1, ROUGE, sacreBLEU/chrF, pass@k by
//! running the tests, final-number match).

use super::{GenData, GenTask};
use crate::common::best_beam::best_beam_texts;
use crate::{Result, TaskError};
use serde_json::{json, Value};
use std::path::Path;
use tasklm_data::GenRecord;
use tasklm_generate::SamplingParams;
use tasklm_generate::{generate, BeamParams, DecoderSteps, RowInput};

/// How eval generates.
#[derive(Clone, Debug)]
pub struct GenEvalOptions {
    pub sampling: SamplingParams,
    /// Samples per record (code: pass@k over them).
    pub samples: usize,
    pub limit: Option<usize>,
    pub batch_size: usize,
    pub python: String,
    pub progress: bool,
    /// Beam search instead of sampling (one sequence per record).
    pub beam: Option<BeamParams>,
}

/// Metrics by name, and each record's prediction.
pub type Scored = (Vec<(String, Value)>, Vec<Prediction>);

/// One scored record, as `--predictions` writes it.
#[derive(Clone, Debug)]
pub struct Prediction {
    pub id: String,
    pub prediction: String,
    pub references: Vec<String>,
    pub score: f64,
}

impl Prediction {
    pub fn to_json(&self) -> Value {
        json!({"id": self.id, "prediction": self.prediction, "references": self.references, "score": self.score})
    }
}

/// The generations for `prompts`, `samples` per prompt, in batches, with a progress bar.
fn generate_all(
    m: &tasklm_hub::LoadedDecoder,
    prompts: &[String],
    opts: &GenEvalOptions,
) -> Result<Vec<Vec<String>>> {
    let bar = crate::common::progress::eval_bar(prompts.len() * opts.samples, opts.progress);
    let mut out = vec![Vec::new(); prompts.len()];
    let ids = prompts
        .iter()
        .map(|p| Ok(m.tokenizer.encode(p, true)?))
        .collect::<Result<Vec<Vec<u32>>>>()?;
    if let Some(beam) = &opts.beam {
        let steps = DecoderSteps::new(m.model.as_ref(), m.tokenizer.pad_id());
        let max_new = opts.sampling.max_new_tokens;
        for (chunk, rows) in ids.chunks(opts.batch_size.max(1)).enumerate() {
            let rows: Vec<RowInput> = rows.iter().cloned().map(RowInput::from_ids).collect();
            let texts = best_beam_texts(&steps, &m.tokenizer, &rows, beam, max_new)?;
            for (k, text) in texts.into_iter().enumerate() {
                let i = chunk * opts.batch_size.max(1) + k;
                out[i].push(cut_at_stop(&text, &opts.sampling.stop));
            }
            bar.inc(rows.len() as u64);
        }
        bar.finish_and_clear();
        return Ok(out);
    }
    for s in 0..opts.samples {
        let params = SamplingParams {
            seed: opts.sampling.seed.wrapping_add(s as u64 * 1_000_003),
            ..opts.sampling.clone()
        };
        let idx: Vec<usize> = (0..prompts.len()).collect();
        for chunk in idx.chunks(opts.batch_size.max(1)) {
            let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
            let gens = generate(
                m.model.as_ref(),
                &m.tokenizer,
                &batch,
                &params,
                &mut |_, _| {},
            )?;
            for (&i, g) in chunk.iter().zip(gens) {
                out[i].push(g.text);
            }
            bar.inc(chunk.len() as u64);
        }
    }
    bar.finish_and_clear();
    Ok(out)
}

/// The text before the first stop string (beam search runs to EOS or the length limit; the
/// task's stop strings then cut its text as sampling would have stopped).
pub(crate) fn cut_at_stop(text: &str, stops: &[String]) -> String {
    let end = stops
        .iter()
        .filter_map(|s| text.find(s.as_str()))
        .min()
        .unwrap_or(text.len());
    text[..end].to_string()
}

/// Generates for every record of `data` with `model` and scores with the task's metric.
pub fn evaluate(model: &str, data: &GenData, opts: &GenEvalOptions) -> Result<Scored> {
    if opts.samples == 0 {
        return Err(TaskError::Invalid("--samples must be at least 1".into()));
    }
    if opts.beam.is_some() && opts.samples > 1 {
        return Err(TaskError::Invalid(
            "--samples draws several samples per record; beam search gives one sequence".into(),
        ));
    }
    let mut records = data.read()?;
    records.truncate(opts.limit.unwrap_or(usize::MAX));
    let m = tasklm_hub::load_decoder(model, opts.progress)?;
    let prompts: Vec<String> = records.iter().map(|r| data.prompt(r)).collect();
    let gens = generate_all(&m, &prompts, opts)?;
    score(data, &records, &gens, opts)
}

/// Scores generations (`gens[i]` are record `i`'s samples) with the task's metric.
pub fn score(
    data: &GenData,
    records: &[GenRecord],
    gens: &[Vec<String>],
    opts: &GenEvalOptions,
) -> Result<Scored> {
    let first: Vec<String> = gens
        .iter()
        .map(|g| g.first().map_or(String::new(), |s| s.trim().to_string()))
        .collect();
    let refs: Vec<Vec<String>> = records.iter().map(|r| r.references.clone()).collect();
    let n = records.len();
    // Each record's own score, on its metric's 0-100 scale: SQuAD F1, ROUGE-L, sentence chrF,
    // the share of passing samples, or final-number match.
    let mut per = vec![0.0; n];
    let metrics: Vec<(String, Value)> = match data.task {
        GenTask::GenQa => {
            for (i, (p, r)) in first.iter().zip(&refs).enumerate() {
                per[i] = 100.0 * tasklm_eval::squad::best_over(tasklm_eval::squad::f1, p, r);
            }
            let (em, f1) = tasklm_eval::squad_scores(&first, &refs);
            vec![("exact_match".into(), json!(em)), ("f1".into(), json!(f1))]
        }
        GenTask::Summarize => {
            for (i, (p, r)) in first.iter().zip(&refs).enumerate() {
                per[i] = 100.0 * tasklm_eval::rouge_multi(r, p).rouge_l.fmeasure;
            }
            let (r1, r2, rl) = tasklm_eval::mean_rouge(&first, &refs);
            vec![
                ("rouge1".into(), json!(r1)),
                ("rouge2".into(), json!(r2)),
                ("rougeL".into(), json!(rl)),
            ]
        }
        GenTask::Translate => {
            for (i, (p, r)) in first.iter().zip(&refs).enumerate() {
                per[i] =
                    tasklm_eval::corpus_chrf(std::slice::from_ref(p), std::slice::from_ref(r)).0;
            }
            let b = tasklm_eval::corpus_bleu(&first, &refs);
            let (c, csig) = tasklm_eval::corpus_chrf(&first, &refs);
            vec![
                ("bleu".into(), json!(b.score)),
                ("chrf".into(), json!(c)),
                ("bleu_signature".into(), json!(b.signature)),
                ("chrf_signature".into(), json!(csig)),
            ]
        }
        GenTask::Reasoning => {
            for (i, (g, r)) in gens.iter().zip(&refs).enumerate() {
                let p = g.first().map_or("", |s| s.as_str());
                per[i] = 100.0 * tasklm_eval::number_match(p, &r[0]);
            }
            vec![("exact_match".into(), json!(mean(&per)))]
        }
        GenTask::Code => {
            let mut pass_1 = 0.0;
            let mut pass_k = 0.0;
            let k = opts.samples;
            for (i, (r, g)) in records.iter().zip(gens).enumerate() {
                let (test, entry) = r.test.clone().unwrap_or_default();
                let mut c = 0;
                for s in g {
                    let src = super::code_exec::program(r.field("prompt"), s, &test, &entry);
                    let out = super::code_exec::run_python(&opts.python, &src, Default::default())?;
                    c += usize::from(out.passed);
                }
                per[i] = 100.0 * c as f64 / g.len().max(1) as f64;
                pass_1 += tasklm_eval::pass_at_k(g.len(), c, 1);
                pass_k += tasklm_eval::pass_at_k(g.len(), c, k);
            }
            let d = n.max(1) as f64;
            let mut m = vec![("pass@1".to_string(), json!(100.0 * pass_1 / d))];
            if k > 1 {
                m.push((format!("pass@{k}"), json!(100.0 * pass_k / d)));
            }
            m
        }
    };
    let preds = records
        .iter()
        .zip(&first)
        .zip(&per)
        .map(|((r, p), &s)| Prediction {
            id: r.id.clone(),
            prediction: p.clone(),
            references: r.references.clone(),
            score: s,
        })
        .collect();
    Ok((metrics, preds))
}

fn mean(v: &[f64]) -> f64 {
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// Writes `--predictions FILE`: one JSON object per record.
pub fn write_predictions(path: &Path, preds: &[Prediction]) -> Result<()> {
    crate::common::predictions::write_predictions(path, preds.iter().map(Prediction::to_json))
}

#[cfg(test)]
mod tests {
    #[test]
    fn beam_text_is_cut_at_the_first_stop_string() {
        let stops = vec!["\n\n".to_string(), "###".to_string()];
        assert_eq!(super::cut_at_stop("a b\n\nc ### d", &stops), "a b");
        assert_eq!(super::cut_at_stop("x ### y\n\n", &stops), "x ");
        assert_eq!(super::cut_at_stop("plain", &stops), "plain");
    }

    use super::*;
    use std::path::PathBuf;

    fn record(id: &str, refs: &[&str]) -> GenRecord {
        GenRecord {
            id: id.into(),
            fields: Vec::new(),
            target: refs[0].into(),
            references: refs.iter().map(|r| r.to_string()).collect(),
            test: None,
        }
    }

    fn scored(task: GenTask, records: &[GenRecord], outputs: &[&str]) -> Result<Scored> {
        let data = GenData {
            task,
            path: PathBuf::new(),
            langs: None,
        };
        let gens: Vec<Vec<String>> = outputs.iter().map(|o| vec![o.to_string()]).collect();
        let opts = GenEvalOptions {
            sampling: SamplingParams::default(),
            samples: 1,
            limit: None,
            batch_size: 1,
            python: "python3".into(),
            progress: false,
            beam: None,
        };
        score(&data, records, &gens, &opts)
    }

    #[test]
    fn record_scores_share_the_metric_scale() -> Result<()> {
        let qa = [record("a", &["Paris"]), record("b", &["blue sky"])];
        let (m, preds) = scored(GenTask::GenQa, &qa, &["Paris", "sky"])?;
        assert_eq!(m[0], ("exact_match".to_string(), json!(50.0)));
        assert_eq!(preds[0].score, 100.0);
        assert!((preds[1].score - 100.0 * 2.0 / 3.0).abs() < 1e-9);

        let gsm = [record("1", &["so 6 #### 6"]), record("2", &["#### 10"])];
        let (m, preds) = scored(GenTask::Reasoning, &gsm, &["3+3=6 #### 6", "it is 9"])?;
        assert_eq!(m[0], ("exact_match".to_string(), json!(50.0)));
        assert_eq!((preds[0].score, preds[1].score), (100.0, 0.0));

        let sum = [record("s", &["the cat sat on the mat"])];
        let (m, preds) = scored(GenTask::Summarize, &sum, &["the cat sat on the mat"])?;
        assert_eq!(m[2].0, "rougeL");
        assert!((preds[0].score - 100.0).abs() < 1e-9);
        assert_eq!(m[2].1.as_f64(), Some(preds[0].score));
        Ok(())
    }
}

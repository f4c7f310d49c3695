//! One pass's micro-batches: the shuffled order cut into runs of `batch_size`, or the
//! objective's own batches ([`super::Objective::train_batches`]) laid end to end, so the
//! trainer's data cursor (examples into the pass) stays what a checkpoint records.

/// The examples of one pass in order, and where each micro-batch ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochPlan {
    order: Vec<usize>,
    /// Sorted end positions of the objective's batches; None: every `batch_size` examples.
    ends: Option<Vec<usize>>,
    batch_size: usize,
}

/// What an objective answers for its own batches (`Objective::train_batches`).
pub type BatchesOf<'a> = &'a dyn Fn(&[usize], usize) -> Option<Vec<Vec<usize>>>;

impl EpochPlan {
    /// The plan of a pass over `order`: `batches` of it when the objective has them.
    pub fn new(order: Vec<usize>, batch_size: usize, batches: BatchesOf) -> Self {
        let batch_size = batch_size.max(1);
        match batches(&order, batch_size) {
            None => Self {
                order,
                ends: None,
                batch_size,
            },
            Some(list) => {
                let mut flat = Vec::with_capacity(order.len());
                let mut ends = Vec::with_capacity(list.len());
                for b in list.into_iter().filter(|b| !b.is_empty()) {
                    flat.extend(b);
                    ends.push(flat.len());
                }
                Self {
                    order: flat,
                    ends: Some(ends),
                    batch_size,
                }
            }
        }
    }

    /// Examples in the pass.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Micro-batches in the pass.
    pub fn batches(&self) -> usize {
        match &self.ends {
            None => self.order.len().div_ceil(self.batch_size),
            Some(e) => e.len(),
        }
    }

    /// The micro-batch that starts at `cursor` (examples into the pass) and where it ends.
    pub fn batch_at(&self, cursor: usize) -> (&[usize], usize) {
        let n = self.order.len();
        let cursor = cursor.min(n);
        let end = match &self.ends {
            None => (cursor + self.batch_size).min(n),
            Some(ends) => ends.iter().copied().find(|&e| e > cursor).unwrap_or(n),
        };
        (&self.order[cursor..end], end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_plan_cuts_runs_of_batch_size() {
        let p = EpochPlan::new((0..5).collect(), 2, &|_, _| None);
        assert_eq!(p.batches(), 3);
        assert_eq!(p.batch_at(0), (&[0, 1][..], 2));
        assert_eq!(p.batch_at(4), (&[4][..], 5));
    }

    #[test]
    fn an_objectives_batches_are_laid_end_to_end() {
        let p = EpochPlan::new(vec![3, 1, 0, 2], 3, &|_, _| {
            Some(vec![vec![3, 0], vec![], vec![1], vec![2]])
        });
        assert_eq!(p.len(), 4);
        assert_eq!(p.batches(), 3, "empty batches are dropped");
        assert_eq!(p.batch_at(0), (&[3, 0][..], 2));
        assert_eq!(p.batch_at(2), (&[1][..], 3));
        assert_eq!(p.batch_at(3), (&[2][..], 4));
    }
}

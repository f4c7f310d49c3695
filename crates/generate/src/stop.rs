//! Stop strings: generation ends before the first occurrence of any, and streamed text holds
//! back any tail that could still grow into one.

#[derive(Clone, Debug, Default)]
pub struct StopChecker {
    stops: Vec<String>,
    text: String,
    emitted: usize,
    stopped: bool,
}

impl StopChecker {
    pub fn new(stops: &[String]) -> Self {
        Self {
            stops: stops.to_vec(),
            ..Self::default()
        }
    }

    /// Adds decoded text; returns the text safe to emit now. After a stop string is found,
    /// [`Self::stopped`] is true and nothing more is emitted.
    pub fn push(&mut self, delta: &str) -> String {
        if self.stopped {
            return String::new();
        }
        let search_from = self
            .emitted
            .saturating_sub(self.stops.iter().map(|s| s.len()).max().unwrap_or(0));
        self.text.push_str(delta);
        let mut first: Option<usize> = None;
        for s in &self.stops {
            let from = floor_char_boundary(&self.text, search_from);
            if let Some(i) = self.text[from..].find(s.as_str()) {
                first = Some(first.map_or(from + i, |f: usize| f.min(from + i)));
            }
        }
        let end = match first {
            Some(i) => {
                self.stopped = true;
                self.text.truncate(i);
                i
            }
            None => self.text.len() - self.held_back(),
        };
        let out = self.text.get(self.emitted..end).unwrap_or("").to_string();
        self.emitted = end.max(self.emitted);
        out
    }

    /// The longest tail of the text that is a proper prefix of a stop string.
    fn held_back(&self) -> usize {
        let mut hold = 0;
        for s in &self.stops {
            for k in (1..s.len()).rev() {
                if k <= hold {
                    break;
                }
                if s.is_char_boundary(k) && self.text.ends_with(&s[..k]) {
                    hold = k;
                    break;
                }
            }
        }
        hold
    }

    /// Emits whatever was held back (call when generation ends for another reason).
    pub fn flush(&mut self) -> String {
        let out = self.text.get(self.emitted..).unwrap_or("").to_string();
        self.emitted = self.text.len();
        out
    }

    pub fn stopped(&self) -> bool {
        self.stopped
    }

    /// All text accepted so far (truncated before the stop string once stopped).
    pub fn text(&self) -> &str {
        &self.text
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_before_stop_string_split_across_pushes() {
        let mut c = StopChecker::new(&["\n\nUser:".to_string()]);
        let mut out = c.push("Paris is");
        out += &c.push(" nice.\n");
        assert_eq!(out, "Paris is nice."); // "\n" held back: it may start the stop string
        out += &c.push("\nUs");
        out += &c.push("er: hi");
        assert!(c.stopped());
        assert_eq!(out, "Paris is nice.");
        assert_eq!(c.text(), "Paris is nice.");
    }

    #[test]
    fn held_text_is_released_when_it_stops_matching() {
        let mut c = StopChecker::new(&["END".to_string()]);
        assert_eq!(c.push("the EN"), "the ");
        assert_eq!(c.push("ERGY"), "ENERGY");
        assert_eq!(c.flush(), "");
    }
}

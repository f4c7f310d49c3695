//! The panic hook the targets share: tasklm's entry points catch panics raised inside some
//! dependencies (minijinja, tokenizers) and return them as errors, so a panic whose location is
//! in one of those crates is let through; any other panic still reaches libFuzzer's hook and
//! aborts the run as a crash.

use std::sync::OnceLock;

/// Installs the hook once. `crates` are path fragments such as `"/tokenizers-"`.
pub fn let_through_panics_in(crates: &'static [&'static str]) {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let abort = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let caught = info
                .location()
                .is_some_and(|l| crates.iter().any(|c| l.file().contains(c)));
            if !caught {
                abort(info);
            }
        }));
    });
}

//! Progress of `fcx image pull` and `fcx image import` on stderr. The milestones (what is
//! fetched, each layer done, unpacking, already cached) are always printed as lines, so CI
//! logs show them; on a terminal a live bar under those lines shows the bytes as they come.

use std::collections::{HashMap, HashSet};
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use fcx_image::Progress;
use indicatif::{ProgressBar, ProgressStyle};

use super::format::{bytes, short_digest};

/// Layers at least this big also get 25/50/75% lines in logs (small ones finish at once).
const BIG_LAYER: u64 = 8_000_000;

/// Turns [`Progress`] events into lines (and a bar on a terminal).
pub struct Reporter {
    verb: &'static str,
    subject: String,
    /// Whether Layer events carry download bytes (pull) or there are none (import).
    downloads: bool,
    bar: Option<ProgressBar>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Bytes downloaded per layer digest.
    done: HashMap<String, u64>,
    /// Layers whose `done` line was printed (the last chunk may be reported twice).
    finished: HashSet<String>,
    /// Last quarter printed per big layer.
    quarter: HashMap<String, u64>,
    cached: bool,
}

impl Reporter {
    /// `verb` is `pulling` or `importing`; `subject` the reference or file.
    pub fn new(verb: &'static str, subject: &str, downloads: bool) -> Reporter {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(style("{spinner} {msg}"));
            bar.set_message(format!("{verb} {subject}"));
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Reporter {
            verb,
            subject: subject.to_string(),
            downloads,
            bar,
            state: Mutex::new(State::default()),
        }
    }

    /// Whether the image turned out to be cached already (nothing downloaded or unpacked).
    pub fn was_cached(&self) -> bool {
        self.lock().cached
    }

    /// Removes the bar (the lines stay).
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    /// Prints a line above the bar, or plainly.
    pub fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            // A closed stderr is no reason to fail the pull.
            None => {
                let _ = writeln!(std::io::stderr(), "{text}");
            }
        }
    }

    pub fn event(&self, p: &Progress) {
        match p {
            Progress::Resolved {
                reference,
                layers,
                total_bytes,
                ..
            } => {
                let name = if reference.is_empty() {
                    &self.subject
                } else {
                    reference
                };
                let s = if *layers == 1 { "" } else { "s" };
                self.line(&format!(
                    "{} {name}: {layers} layer{s}, {}",
                    self.verb,
                    bytes(*total_bytes)
                ));
                if let (Some(bar), true) = (&self.bar, self.downloads) {
                    bar.set_style(style(
                        "{spinner} {msg} [{bar:30.cyan/blue}] {bytes}/{total_bytes} ({bytes_per_sec})",
                    ));
                    bar.set_length(*total_bytes);
                    bar.set_position(0);
                }
            }
            Progress::Layer {
                digest,
                done_bytes,
                total_bytes,
            } => self.layer(digest, *done_bytes, *total_bytes),
            Progress::Unpacking { digest } => {
                let text = format!("unpacking {}", short_digest(digest));
                match &self.bar {
                    Some(bar) => bar.set_message(text),
                    None => self.line(&text),
                }
            }
            Progress::Cached { digest } => {
                self.lock().cached = true;
                self.line(&format!(
                    "{}: unchanged, already in the cache ({})",
                    self.subject,
                    short_digest(digest)
                ));
            }
        }
    }

    fn layer(&self, digest: &str, done: u64, total: u64) {
        let mut state = self.lock();
        state.done.insert(digest.to_string(), done);
        if let Some(bar) = &self.bar {
            bar.set_position(state.done.values().sum());
            bar.set_message(format!("downloading {}", short_digest(digest)));
        }
        if done >= total {
            if state.finished.insert(digest.to_string()) {
                drop(state);
                self.line(&format!(
                    "layer {} done ({})",
                    short_digest(digest),
                    bytes(total)
                ));
            }
            return;
        }
        if self.bar.is_some() || total < BIG_LAYER {
            return;
        }
        let quarter = done.saturating_mul(4) / total;
        let last = state.quarter.entry(digest.to_string()).or_insert(0);
        if quarter > *last {
            *last = quarter;
            drop(state);
            self.line(&format!(
                "layer {}: {}% of {}",
                short_digest(digest),
                quarter * 25,
                bytes(total)
            ));
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while printing progress must not stop the pull.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

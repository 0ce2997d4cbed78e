//! Latency samples and their percentiles.

use std::time::Duration;

/// Latencies of one run, in microseconds.
#[derive(Default, Clone)]
pub struct Latencies {
    micros: Vec<f64>,
}

impl Latencies {
    pub fn push(&mut self, latency: Duration) {
        self.micros.push(latency.as_secs_f64() * 1e6);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    /// The `q` quantile (0..=1) in microseconds; 0 when there is no sample.
    pub fn quantile(&mut self, q: f64) -> f64 {
        if self.micros.is_empty() {
            return 0.0;
        }
        self.micros.sort_by(f64::total_cmp);
        let index = ((self.micros.len() - 1) as f64 * q).round() as usize;
        self.micros[index]
    }
}

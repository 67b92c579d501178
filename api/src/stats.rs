//! What a finished stage measured: its wall time and throughput, as the runner reports them.

use serde::{Deserialize, Serialize};

/// Wall time and throughput of one stage's work (not of its reuse).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct StageStats {
    /// Wall seconds of the stage's work, loading included.
    pub seconds: f64,
    /// Items the stage went through (pairs, triplets, queries).
    pub items: u64,
    /// What an item is: `pairs`, `triplets`, `queries`.
    pub unit: String,
    /// Teacher scores taken from the runner's score cache instead of computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_cache: Option<u64>,
    /// Peak device memory in GiB (CUDA only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_gib: Option<f64>,
    /// Of `seconds`, those spent before the first item: loading models, parity checks.
    #[serde(default)]
    pub setup_seconds: f64,
    /// Jobs whose stats were merged into these (shards of one stage).
    #[serde(default = "one")]
    pub jobs: u32,
}

fn one() -> u32 {
    1
}

impl StageStats {
    /// Items per second of the work after its setup (0 when no time was measured).
    pub fn per_s(&self) -> f64 {
        let work = self.seconds - self.setup_seconds;
        if work > 0.0 {
            self.items as f64 / work
        } else {
            0.0
        }
    }

    /// Seconds `items` items would take at this rate, setup included once.
    pub fn projected(&self, items: u64) -> f64 {
        match self.per_s() {
            r if r > 0.0 => self.setup_seconds + items as f64 / r,
            _ => 0.0,
        }
    }

    /// Merges the stats of another shard of the same stage: items and cache hits add up,
    /// the wall time is the longest shard's (shards run side by side), peaks take the max.
    pub fn merge(&mut self, other: &StageStats) {
        self.items += other.items;
        if other.seconds > self.seconds {
            self.setup_seconds = other.setup_seconds;
        }
        self.seconds = self.seconds.max(other.seconds);
        self.from_cache = match (self.from_cache, other.from_cache) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0) + b.unwrap_or(0)),
        };
        self.peak_gib = match (self.peak_gib, other.peak_gib) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        self.jobs += other.jobs;
    }

    /// One line for a person: `12.3 s · 830 pairs/s · 120 pairs from cache · peak 20.1 GiB`.
    pub fn summary(&self) -> String {
        let mut parts = vec![format!("{:.1} s", self.seconds)];
        if self.setup_seconds > 0.0 {
            parts.push(format!("{:.1} s loading", self.setup_seconds));
        }
        parts.push(format!("{:.0} {}/s", self.per_s(), self.unit));
        if let Some(n) = self.from_cache {
            parts.push(format!("{n} {} from cache", self.unit));
        }
        if let Some(g) = self.peak_gib {
            parts.push(format!("peak {g:.1} GiB"));
        }
        if self.jobs > 1 {
            parts.push(format!("{} jobs", self.jobs));
        }
        parts.join(" · ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_merge_into_one_stage() {
        let mut a = StageStats {
            seconds: 2.0,
            items: 100,
            unit: "pairs".into(),
            from_cache: Some(10),
            peak_gib: None,
            setup_seconds: 0.0,
            jobs: 1,
        };
        let b = StageStats {
            seconds: 4.0,
            items: 300,
            from_cache: None,
            peak_gib: Some(1.5),
            ..a.clone()
        };
        a.merge(&b);
        assert_eq!(
            (a.items, a.seconds, a.from_cache, a.jobs),
            (400, 4.0, Some(10), 2)
        );
        assert_eq!(a.peak_gib, Some(1.5));
        assert_eq!(a.per_s(), 100.0);
        let old: StageStats =
            serde_json::from_str(r#"{"seconds":1,"items":2,"unit":"pairs"}"#).unwrap();
        assert_eq!((old.jobs, old.setup_seconds), (1, 0.0));
        let loaded = StageStats {
            seconds: 12.0,
            setup_seconds: 2.0,
            items: 100,
            ..old
        };
        assert_eq!(loaded.per_s(), 10.0);
        assert_eq!(loaded.projected(1_000), 102.0);
        assert_eq!(
            a.summary(),
            "4.0 s · 100 pairs/s · 10 pairs from cache · peak 1.5 GiB · 2 jobs"
        );
    }
}

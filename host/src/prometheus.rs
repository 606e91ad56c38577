//! Building a Prometheus text exposition (format 0.0.4) from figures read at
//! scrape time, for the JobManager's and the TaskManagers' `/metrics`
//! (`docs/metrics.md` lists every metric). Each scrape fills a fresh registry:
//! no figure is kept twice, and a job's series go when the job does.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A series' labels: (name, value) pairs.
pub type Labels = Vec<(&'static str, String)>;

/// The content type of an exposition.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Families of counters and gauges under the `eddy_` prefix, filled one family at a time.
pub struct Families {
    registry: Registry,
}

impl Default for Families {
    fn default() -> Self {
        Families { registry: Registry::with_prefix("eddy") }
    }
}

impl Families {
    /// A family of counters (`NAME_total`).
    pub fn counter(&mut self, name: &str, help: &str, series: Vec<(Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        for (labels, v) in series {
            family.get_or_create(&labels).inc_by(v);
        }
        self.registry.register(name, help, family);
    }

    /// A family of gauges.
    pub fn gauge(&mut self, name: &str, help: &str, series: Vec<(Labels, f64)>) {
        let family = Family::<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>::default();
        for (labels, v) in series {
            family.get_or_create(&labels).set(v);
        }
        self.registry.register(name, help, family);
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

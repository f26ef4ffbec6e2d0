//! Latency histograms: [`Latency`], an HDR histogram of request times in microseconds, bounded to
//! 1 µs..=[`MAX_LATENCY_MICROS`] and [`MAX_SIGFIG`] significant figures, and its summary figures
//! ([`Quantiles`]). Values enter by recording and merging (which saturate at the bound) and by
//! decoding HDR's V2 / V2-deflate encoding ([`decode_histogram`], which checks the header before
//! anything is allocated by a size the input claims); they leave as quantiles and in the same
//! encoding, base64 in JSON.

use base64::Engine as _;
use hdrhistogram::Histogram;
use hdrhistogram::serialization::{
    Deserializer as HdrDeserializer, Serializer as _, V2DeflateSerializer,
};
use serde::{Deserialize, Serialize};

/// Significant figures of the whole-run latency histograms.
pub const LATENCY_SIGFIG: u8 = 3;
/// Significant figures of the per-second latency histograms (smaller, one per second).
pub const TIMELINE_SIGFIG: u8 = 2;
/// The longest request time a histogram tracks, in µs: one day. A longer value is recorded as
/// this one (it saturates), and a decoded histogram may not track or hold more. A histogram of
/// [`LATENCY_SIGFIG`] figures over 1 µs..=this has 28 672 counters (224 KiB); one of
/// [`TIMELINE_SIGFIG`] figures has 3 968 (31 KiB): see [`histogram_counters`].
pub const MAX_LATENCY_MICROS: u64 = 86_400_000_000;
/// The most significant figures a decoded histogram may have (loads writes [`LATENCY_SIGFIG`]
/// and [`TIMELINE_SIGFIG`]).
pub const MAX_SIGFIG: u8 = LATENCY_SIGFIG;

/// Cookie of HDR's V2 encoding (the `0x10` flag: 64-bit counts, as every V2 writer sets it).
const V2_COOKIE: u32 = 0x1c84_9303 | 0x10;
/// Cookie of HDR's V2 encoding compressed with zlib.
pub(crate) const V2_DEFLATE_COOKIE: u32 = 0x1c84_9304 | 0x10;
/// Size of a V2 header: cookie, payload length, normalizing offset, significant figures,
/// lowest discernible value, highest trackable value, integer-to-double ratio.
const V2_HEADER_LEN: usize = 40;
/// Longest encoding of one count in a V2 payload (a LEB128-64b9B varint).
pub(crate) const V2_MAX_VARINT_LEN: usize = 9;

/// Why an encoded histogram was refused. Checked before anything is allocated by a size the
/// input claims.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HistogramError {
    /// The text is not base64.
    #[error("bad base64: {0}")]
    Base64(String),
    /// The input ends inside a header or payload.
    #[error("truncated")]
    Truncated,
    /// Neither the V2 nor the V2-deflate cookie.
    #[error("unknown cookie {0:#x}")]
    Cookie(u32),
    /// A V2-deflate length larger than the input.
    #[error("compressed length {claimed} but {available} bytes follow")]
    CompressedLength {
        /// What the header says.
        claimed: usize,
        /// What the input has.
        available: usize,
    },
    /// The compressed stream does not inflate.
    #[error("bad deflate stream: {0}")]
    Inflate(String),
    /// A normalizing offset or integer-to-double ratio (not written by any V2 writer of
    /// integer histograms).
    #[error("unsupported normalizing offset or integer-to-double ratio")]
    Unsupported,
    /// Significant figures outside `1..=MAX_SIGFIG`.
    #[error("{0} significant figures (at most {max} accepted)", max = MAX_SIGFIG)]
    SigFig(u32),
    /// A range wider than `1..=MAX_LATENCY_MICROS` (more buckets than that range needs), or
    /// narrower than HDR allows.
    #[error("range {low}..={high} (at most the buckets of 1..={max})", max = MAX_LATENCY_MICROS)]
    Range {
        /// Lowest discernible value.
        low: u64,
        /// Highest trackable value.
        high: u64,
    },
    /// A payload longer than a histogram of the header's range and precision can need, or
    /// than the input holds.
    #[error("payload of {claimed} bytes (at most {max} for this histogram)")]
    PayloadLength {
        /// What the header says.
        claimed: usize,
        /// The most this histogram can need (or what the input holds, if less).
        max: usize,
    },
    /// HDR refused the payload.
    #[error("bad payload: {0}")]
    Payload(String),
    /// A recorded value above [`MAX_LATENCY_MICROS`].
    #[error("a value of {0} µs (above a day)")]
    ValueAboveRange(u64),
}

/// The number of counters an HDR histogram of `sigfig` significant figures has when it covers
/// `low..=high` (the length of its counts array), computed as `hdrhistogram` does, without
/// creating it. `low` must be at least 1 and `sigfig` at most 5.
pub fn histogram_counters(low: u64, high: u64, sigfig: u8) -> usize {
    let largest = 2 * 10u64.pow(u32::from(sigfig.min(5)));
    // ceil(log2(largest)) and floor(log2(low)).
    let sub_bucket_count_magnitude = 64 - (largest - 1).leading_zeros();
    let sub_bucket_count = 1u64 << sub_bucket_count_magnitude;
    let unit_magnitude = 63 - low.max(1).leading_zeros();
    let mut smallest_untrackable = sub_bucket_count.checked_shl(unit_magnitude).unwrap_or(0);
    let mut buckets: u64 = 1;
    while smallest_untrackable <= high {
        if smallest_untrackable > u64::MAX / 2 {
            buckets += 1;
            break;
        }
        smallest_untrackable <<= 1;
        buckets += 1;
    }
    ((buckets + 1) * (sub_bucket_count / 2)) as usize
}

/// Checks a V2 header (without its cookie, which the caller checked) and returns the payload
/// length it claims, bounded by what a histogram of its range and precision can need.
fn check_v2_header(header: &[u8; V2_HEADER_LEN]) -> Result<usize, HistogramError> {
    let u32_at =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    let u64_at = |i: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&header[i..i + 8]);
        u64::from_be_bytes(b)
    };
    let payload_len = u32_at(4) as usize;
    let normalizing_offset = u32_at(8);
    let sigfig = u32_at(12);
    let low = u64_at(16);
    let high = u64_at(24);
    let ratio = f64::from_bits(u64_at(32));
    if normalizing_offset != 0 || ratio != 1.0 {
        return Err(HistogramError::Unsupported);
    }
    if !(1..=u32::from(MAX_SIGFIG)).contains(&sigfig) {
        return Err(HistogramError::SigFig(sigfig));
    }
    // An auto-resized histogram reports the top of its last bucket as its highest trackable
    // value: accept any range that needs no more buckets than one up to a day.
    if !(1..=MAX_LATENCY_MICROS / 2).contains(&low)
        || high < low.saturating_mul(2)
        || histogram_counters(low, high, sigfig as u8)
            > histogram_counters(low, MAX_LATENCY_MICROS, sigfig as u8)
    {
        return Err(HistogramError::Range { low, high });
    }
    // sigfig <= MAX_SIGFIG here.
    let max = histogram_counters(low, high, sigfig as u8) * V2_MAX_VARINT_LEN;
    if payload_len > max {
        return Err(HistogramError::PayloadLength {
            claimed: payload_len,
            max,
        });
    }
    Ok(payload_len)
}

/// Decodes a histogram in HDR's V2 or V2-deflate encoding, checking its header before
/// anything is allocated: significant figures at most [`MAX_SIGFIG`], range within
/// 1..=[`MAX_LATENCY_MICROS`], a payload no longer than such a histogram can need (inflated
/// through a reader that stops there), and no value above a day.
pub fn decode_histogram(bytes: &[u8]) -> Result<Histogram<u64>, HistogramError> {
    use std::io::Read as _;
    let be32 = |i: usize| -> Result<u32, HistogramError> {
        bytes
            .get(i..i + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or(HistogramError::Truncated)
    };
    let mut header = [0u8; V2_HEADER_LEN];
    let v2: std::borrow::Cow<[u8]> = match be32(0)? {
        V2_COOKIE => {
            header.copy_from_slice(
                bytes
                    .get(..V2_HEADER_LEN)
                    .ok_or(HistogramError::Truncated)?,
            );
            let len = check_v2_header(&header)?;
            let whole = bytes
                .get(..V2_HEADER_LEN + len)
                .ok_or(HistogramError::Truncated)?;
            std::borrow::Cow::Borrowed(whole)
        }
        V2_DEFLATE_COOKIE => {
            let claimed = be32(4)? as usize;
            let rest = &bytes[8..];
            let compressed = rest
                .get(..claimed)
                .ok_or(HistogramError::CompressedLength {
                    claimed,
                    available: rest.len(),
                })?;
            let mut z = flate2::read::ZlibDecoder::new(compressed);
            z.read_exact(&mut header).map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => HistogramError::Truncated,
                _ => HistogramError::Inflate(e.to_string()),
            })?;
            match u32::from_be_bytes([header[0], header[1], header[2], header[3]]) {
                V2_COOKIE => {}
                other => return Err(HistogramError::Cookie(other)),
            }
            let len = check_v2_header(&header)?;
            // Bounded by check_v2_header (at most 258 KB), and inflated no further.
            let mut v2 = Vec::with_capacity(V2_HEADER_LEN + len);
            v2.extend_from_slice(&header);
            z.take(len as u64)
                .read_to_end(&mut v2)
                .map_err(|e| HistogramError::Inflate(e.to_string()))?;
            if v2.len() != V2_HEADER_LEN + len {
                return Err(HistogramError::Truncated);
            }
            std::borrow::Cow::Owned(v2)
        }
        other => return Err(HistogramError::Cookie(other)),
    };
    let h: Histogram<u64> = HdrDeserializer::new()
        .deserialize(&mut &v2[..])
        .map_err(|e| HistogramError::Payload(format!("{e:?}")))?;
    if h.max() > h.highest_equivalent(MAX_LATENCY_MICROS) {
        return Err(HistogramError::ValueAboveRange(h.max()));
    }
    Ok(h)
}

/// A latency histogram in microseconds. Serialised in HDR's standard compressed form
/// (V2 + deflate), base64-encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency(pub Histogram<u64>);

impl Latency {
    /// An empty, auto-resizing histogram with `sigfig` significant figures.
    pub fn new(sigfig: u8) -> Self {
        // 1..=5 are always valid significant-figure counts for an auto-resizing histogram.
        Latency(Histogram::new(sigfig).expect("valid significant figures"))
    }

    /// Records one value in microseconds; a value above [`MAX_LATENCY_MICROS`] is recorded as
    /// that (so the histogram never grows beyond 1 µs..=one day).
    pub fn record(&mut self, micros: u64) {
        let micros = micros.min(MAX_LATENCY_MICROS);
        // An auto-resizing histogram accepts any u64 up to its bounds; saturate otherwise.
        if self.0.record(micros).is_err() {
            let high = self.0.high();
            let _ = self.0.record(high);
        }
    }

    /// Adds every value of `other` (values above [`MAX_LATENCY_MICROS`] saturate, as in
    /// [`Latency::record`]).
    pub fn add(&mut self, other: &Latency) {
        if other.0.is_empty() {
            return;
        }
        // Within the bound, HDR's own addition (it grows `self` to `other`'s largest value).
        if other.0.max() <= MAX_LATENCY_MICROS && self.0.add(&other.0).is_ok() {
            return;
        }
        // Different precision, or values to saturate: copy value by value.
        for v in other.0.iter_recorded() {
            let value = v.value_iterated_to().min(MAX_LATENCY_MICROS);
            if self.0.record_n(value, v.count_at_value()).is_err() {
                let high = self.0.high();
                let _ = self.0.record_n(high, v.count_at_value());
            }
        }
    }

    /// Number of recorded values.
    pub fn len(&self) -> u64 {
        self.0.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The value at quantile `q` (0.0..=1.0), in microseconds.
    pub fn quantile(&self, q: f64) -> u64 {
        self.0.value_at_quantile(q)
    }

    /// Mean in microseconds.
    pub fn mean(&self) -> f64 {
        self.0.mean()
    }

    /// Largest recorded value in microseconds.
    pub fn max(&self) -> u64 {
        self.0.max()
    }

    /// Clears the counts but keeps the allocation.
    pub fn reset(&mut self) {
        self.0.reset();
    }

    /// The summary figures of this histogram.
    pub fn quantiles(&self) -> Quantiles {
        Quantiles {
            count: self.len(),
            mean: self.mean(),
            p50: self.quantile(0.50),
            p90: self.quantile(0.90),
            p95: self.quantile(0.95),
            p99: self.quantile(0.99),
            max: self.max(),
        }
    }
}

impl Serialize for Latency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut buf = Vec::new();
        V2DeflateSerializer::new()
            .serialize(&self.0, &mut buf)
            .map_err(|e| serde::ser::Error::custom(format!("histogram: {e:?}")))?;
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(&buf))
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|e| HistogramError::Base64(e.to_string()))
            .map_err(|e| serde::de::Error::custom(format!("histogram: {e}")))?;
        let mut h = decode_histogram(&bytes)
            .map_err(|e| serde::de::Error::custom(format!("histogram: {e}")))?;
        h.auto(true);
        Ok(Latency(h))
    }
}

/// Summary figures of a latency distribution, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Quantiles {
    /// Number of values.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 95th percentile.
    pub p95: u64,
    /// 99th percentile.
    pub p99: u64,
    /// Maximum.
    pub max: u64,
}

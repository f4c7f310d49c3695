//! The HNSW graph against exact search: recall@10 on a few thousand clustered vectors, and
//! its bytes read back.

use tasklm_rag::dense::exact_top_k;
use tasklm_rag::hnsw::{Hnsw, HnswParams, DEFAULT_EF_SEARCH};

/// `n` unit vectors of `dims` around 40 random centres (embeddings cluster by topic).
fn clustered(n: usize, dims: usize, seed: u64) -> Vec<f32> {
    let mut x = seed;
    let mut uniform = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f32 / (1u64 << 53) as f32 * 2.0 - 1.0
    };
    let centres: Vec<f32> = (0..40 * dims).map(|_| uniform()).collect();
    let mut out = Vec::with_capacity(n * dims);
    for i in 0..n {
        let c = &centres[(i % 40) * dims..(i % 40 + 1) * dims];
        let v: Vec<f32> = c.iter().map(|&c| c + 0.6 * uniform()).collect();
        let norm = v.iter().map(|a| a * a).sum::<f32>().sqrt();
        out.extend(v.iter().map(|a| a / norm));
    }
    out
}

#[test]
fn recall_at_10_against_exact_search() {
    let (n, dims, queries) = (4000, 64, 200);
    let vectors = clustered(n, dims, 0x9E37_79B9_7F4A_7C15);
    let graph = Hnsw::build(&vectors, dims, HnswParams::default());
    assert_eq!(graph.len(), n);
    let qs = clustered(queries, dims, 0xD1B5_4A32_D192_ED03);
    let mut found = 0;
    for q in qs.chunks_exact(dims) {
        let exact: Vec<u32> = exact_top_k(&vectors, dims, q, 10)
            .iter()
            .map(|h| h.0)
            .collect();
        let approx = graph.search(&vectors, dims, q, 10, DEFAULT_EF_SEARCH);
        assert_eq!(approx.len(), 10);
        assert!(approx.windows(2).all(|w| w[0].1 >= w[1].1), "best first");
        found += approx.iter().filter(|h| exact.contains(&h.0)).count();
    }
    let recall = found as f64 / (10 * queries) as f64;
    eprintln!("HNSW recall@10 against exact search: {recall:.4} ({n} vectors of {dims}, {queries} queries, ef {DEFAULT_EF_SEARCH})");
    assert!(recall >= 0.95, "recall@10 {recall}");
}

#[test]
fn bytes_round_trip_and_corruption_is_an_error() {
    let dims = 16;
    let vectors = clustered(300, dims, 7);
    let graph = Hnsw::build(&vectors, dims, HnswParams::default());
    let bytes = graph.to_bytes();
    let path = std::path::Path::new("hnsw.bin");
    assert_eq!(Hnsw::from_bytes(&bytes, 300, path).unwrap(), graph);
    assert!(Hnsw::from_bytes(&bytes, 299, path).is_err());
    let e = Hnsw::from_bytes(&bytes[..bytes.len() - 3], 300, path).unwrap_err();
    assert!(e.to_string().contains("hnsw.bin"), "{e}");
    let mut wrong = bytes.clone();
    wrong[0] = b'X';
    assert!(Hnsw::from_bytes(&wrong, 300, path).is_err());
}

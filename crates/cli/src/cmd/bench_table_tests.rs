use super::*;

fn m(prefill: f64, decode: f64, rss: u64) -> Measurement {
    Measurement {
        prefill_tokens_per_s: prefill,
        decode_tokens_per_s: decode,
        peak_rss_bytes: Some(rss),
        first_tokens: vec![1, 2],
    }
}

#[test]
fn a_peer_line_parses_after_log_lines() {
    let out = "llama.cpp says hello\n{\"prefill_tokens_per_s\": 200.5, \"decode_tokens_per_s\": \
               30, \"peak_rss_bytes\": 1048576, \"llama_cpp\": \"0.3.36\", \"first_tokens\": \
               [5, 7]}\n\n";
    let got = parse_measurement(out, "llama.cpp").expect("a measurement");
    assert_eq!(
        got,
        Measurement {
            prefill_tokens_per_s: 200.5,
            decode_tokens_per_s: 30.0,
            peak_rss_bytes: Some(1 << 20),
            first_tokens: vec![5, 7],
        }
    );
    let no_rss = parse_measurement(
        r#"{"prefill_tokens_per_s": 1, "decode_tokens_per_s": 2}"#,
        "tasklm",
    )
    .expect("rss is optional");
    assert_eq!(no_rss.peak_rss_bytes, None);
}

#[test]
fn bad_peer_lines_get_named_errors() {
    assert_eq!(
        parse_measurement("\n  \n", "llama.cpp"),
        Err(MeasurementError::NoLine {
            who: "llama.cpp".into()
        })
    );
    let e =
        parse_measurement("Traceback (most recent call last)", "llama.cpp").expect_err("not JSON");
    assert!(matches!(e, MeasurementError::NotJson { .. }), "{e:?}");
    assert!(e.to_string().contains("Traceback"), "{e}");
    let e = parse_measurement("[1, 2]", "llama.cpp").expect_err("not an object");
    assert!(e.to_string().contains("expected an object"), "{e}");
    let e =
        parse_measurement(r#"{"prefill_tokens_per_s": 3}"#, "llama.cpp").expect_err("no decode");
    assert_eq!(
        e,
        MeasurementError::BadField {
            who: "llama.cpp".into(),
            field: "decode_tokens_per_s",
            line: r#"{"prefill_tokens_per_s": 3}"#.into(),
        }
    );
    let zero = r#"{"prefill_tokens_per_s": 0, "decode_tokens_per_s": 3}"#;
    let e = parse_measurement(zero, "tasklm").expect_err("zero prefill");
    assert!(e.to_string().contains("`prefill_tokens_per_s`"), "{e}");
    let rss = r#"{"prefill_tokens_per_s": 1, "decode_tokens_per_s": 3, "peak_rss_bytes": -5}"#;
    let e = parse_measurement(rss, "tasklm").expect_err("negative rss");
    assert!(e.to_string().contains("`peak_rss_bytes`"), "{e}");
}

#[test]
fn median_and_range() {
    assert_eq!(median(&[]), None);
    assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
    assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
    let s = Spread::of(&[5.0, 1.0, 3.0]).expect("three rounds");
    assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
    assert_eq!(s.rounds, vec![5.0, 1.0, 3.0]);
    assert_eq!(Spread::of(&[]), None);
}

#[test]
fn rows_take_medians_over_rounds_and_the_peak_rss() {
    let r = ConfigRounds {
        tasklm: vec![
            m(100.0, 20.0, 300),
            m(120.0, 24.0, 310),
            m(110.0, 22.0, 305),
        ],
        peer: vec![
            m(200.0, 40.0, 500),
            m(200.0, 30.0, 490),
            m(220.0, 44.0, 495),
        ],
    };
    let [decode, prefill] = rows_for("q4_1", &r).expect("rows");
    assert_eq!(decode.label, "decode q4_1");
    assert_eq!(prefill.label, "prefill q4_1");
    assert_eq!(decode.tasklm_tokens_per_s.median, 22.0);
    assert_eq!(decode.peer_tokens_per_s.median, 40.0);
    assert!((decode.ratio - 0.55).abs() < 1e-12);
    assert!((decode.ratio_min - 0.5).abs() < 1e-12 && (decode.ratio_max - 0.8).abs() < 1e-12);
    assert_eq!(
        (
            prefill.tasklm_tokens_per_s.min,
            prefill.tasklm_tokens_per_s.max
        ),
        (100.0, 120.0)
    );
    assert_eq!(decode.tasklm_peak_rss_bytes, Some(310));
    assert_eq!(prefill.peer_peak_rss_bytes, Some(500));
    // A round the peer did not finish is left out of both sides.
    let partial = ConfigRounds {
        tasklm: vec![m(1.0, 1.0, 1), m(9.0, 9.0, 9)],
        peer: vec![m(2.0, 2.0, 2)],
    };
    let [d, _] = rows_for("f32", &partial).expect("one round");
    assert_eq!(d.tasklm_tokens_per_s.rounds, vec![1.0]);
    assert!(rows_for("f32", &ConfigRounds::default()).is_none());
}

#[test]
fn the_table_prints_stable_labels_cpu_and_settings() {
    let r = ConfigRounds {
        tasklm: vec![m(100.0, 20.0, 300 << 20)],
        peer: vec![m(200.0, 40.0, 500 << 20)],
    };
    let rows: Vec<Row> = ["f32", "q4_1", "q8_0"]
        .iter()
        .flat_map(|c| rows_for(c, &r).expect("rows"))
        .collect();
    let labels: Vec<&str> = rows.iter().map(|r| r.label.as_str()).collect();
    assert_eq!(
        labels,
        [
            "decode f32",
            "prefill f32",
            "decode q4_1",
            "prefill q4_1",
            "decode q8_0",
            "prefill q8_0"
        ]
    );
    let t = Table {
        command: "tasklm bench generate --peer llama.cpp".into(),
        model: "smollm2-135m-instruct".into(),
        files: vec![ConfigFiles {
            config: "q4_1".into(),
            tasklm_file: "/c/models/a.Q4_1.gguf".into(),
            tasklm_load: "quantized".into(),
            peer_file: "/c/models/a.Q4_1.gguf".into(),
        }],
        cache_dir: "/c/bench".into(),
        cpu: Cpu::from_cpuinfo(
            "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse4_2 avx avx2 fma \
             avx512f avx_vnni\n",
        ),
        threads: 2,
        prompt_tokens: 32,
        new_tokens: 128,
        runs: 5,
        rounds: 3,
        date_utc: utc_date(0),
        tasklm: "tasklm 0.1.0".into(),
        peer: "llama-cpp-python 0.3.36".into(),
        peer_system_info: "CPU : AVX2 = 1".into(),
        rows,
        notes: vec!["q8_0: tokens differ".into()],
    };
    assert_eq!(
        t.cpu.flags,
        ["sse4_2", "avx", "avx2", "fma", "avx512f", "avx_vnni"]
    );
    let s = t.render();
    assert!(
        s.starts_with(
            "tasklm bench generate --peer llama.cpp\nsmollm2-135m-instruct; requantised files in /c/bench\n  q4_1: tasklm a.Q4_1.gguf \
             quantized, llama.cpp a.Q4_1.gguf\ncpu: "
        ),
        "{s}"
    );
    assert!(
        s.contains("cpu: AMD EPYC 7B13 | sse4_2 avx avx2 fma avx512f avx_vnni"),
        "{s}"
    );
    assert!(
        s.contains("2 threads | 32 prompt tokens, 128 new tokens"),
        "{s}"
    );
    assert!(s.contains("median of 3 rounds, each the median of 5 runs | 1970-01-01 00:00 UTC"));
    assert!(
        s.contains("| decode f32 | 20.0 (20.0-20.0) | 40.0 (40.0-40.0) | 0.50x (0.50-0.50) | 300 MiB | 500 MiB |"),
        "{s}"
    );
    assert!(s.contains("| prefill q8_0 | 100.0 (100.0-100.0) |"), "{s}");
    assert!(s.ends_with("note: q8_0: tokens differ"), "{s}");
    let json = serde_json::to_value(&t).expect("json");
    assert_eq!(json["rows"][1]["label"], "prefill f32");
    assert_eq!(json["rows"][0]["tasklm_tokens_per_s"]["median"], 20.0);
    assert_eq!(json["cpu"]["model"], "AMD EPYC 7B13");
    assert_eq!(json["rows"][0]["peer_peak_rss_bytes"], 500u64 << 20);
}

#[test]
fn utc_dates() {
    assert_eq!(utc_date(0), "1970-01-01 00:00 UTC");
    assert_eq!(utc_date(951_782_400), "2000-02-29 00:00 UTC");
    assert_eq!(utc_date(1_796_170_136), "2026-12-02 00:08 UTC");
}

#[test]
fn peak_rss_is_read_on_linux() {
    if cfg!(target_os = "linux") {
        assert!(peak_rss_bytes().is_some_and(|b| b > 1 << 20));
    }
}

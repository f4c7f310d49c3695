//! `tasklm serve` as a user runs it: a real process on a free loopback port, a model trained
//! for a task answering `/v1/tasks/{task}`, and SIGTERM finishing the stream in flight before
//! the process exits.

mod plumbing;

use plumbing::*;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tasklm serve --port 0 ARGS` and waits until `/health` is 200.
fn serve(args: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args(["--threads", "1", "serve", "--port", "0"])
        .args(args)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tasklm serve");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let port = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("tasklm serve said nothing");
        if let Some(rest) = line.split("listening on http://").nth(1) {
            let addr = rest.split_whitespace().next().expect("address");
            break addr
                .rsplit(':')
                .next()
                .expect("port")
                .parse()
                .expect("port number");
        }
    };
    let server = Server { child, port };
    while Instant::now() < deadline {
        if request(port, "GET", "/health", None).0 == 200 {
            return server;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("tasklm serve did not become healthy");
}

/// One HTTP/1.1 request; returns the status and the body (chunked bodies joined raw).
fn request(port: u16, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let payload = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        payload.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(payload.as_bytes()).unwrap();
    let mut raw = String::new();
    let _ = s.read_to_string(&mut raw);
    let status = raw
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = raw
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_string();
    (status, body)
}

/// The JSON object in a (possibly chunked) body.
fn json_in(body: &str) -> Value {
    let start = body.find('{').expect("a JSON body");
    let end = body.rfind('}').expect("a JSON body");
    serde_json::from_str(&body[start..=end]).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn a_trained_classifier_answers_its_task_endpoint() {
    let d = scratch("serve-classify");
    let tsv = reviews_tsv();
    let data = write(&d, "train.tsv", &tsv);
    let out = train(
        "classify",
        &encoder(),
        &data,
        &d.join("clf"),
        &["--max-steps", "5"],
    );
    let clf = format!("clf={}", path(&out));
    let server = serve(&["--model", &clf]);
    let (status, body) = request(
        server.port,
        "POST",
        "/v1/tasks/classify",
        Some(&json!({"model": "clf", "input": {"text": "a great film"}})),
    );
    assert_eq!(status, 200, "{body}");
    let v = json_in(&body);
    assert_eq!(v["task"], "classify");
    let label = v["output"]["label"].as_str().expect("label");
    assert!(label == "0" || label == "1", "{v}");
    let score = v["output"]["score"].as_f64().expect("score");
    assert!((0.0..=1.0).contains(&score), "{v}");
    // A batch, with one bad record answered alone; the model is found without naming it.
    let (status, body) = request(
        server.port,
        "POST",
        "/v1/tasks/classify",
        Some(&json!({"input": [{"text": "a bad film"}, {"txt": "no text"}]})),
    );
    assert_eq!(status, 200, "{body}");
    let v = json_in(&body);
    let outs = v["output"].as_array().expect("a list");
    assert!(outs[0]["label"].is_string(), "{v}");
    assert!(outs[1]["error"]["message"].is_string(), "{v}");
    // The model serves no other task.
    let (status, _) = request(
        server.port,
        "POST",
        "/v1/tasks/ner",
        Some(&json!({"model": "clf", "input": {"text": "x"}})),
    );
    assert_eq!(status, 400);
}

#[test]
fn a_trained_encoder_decoder_answers_its_task_endpoint() {
    let d = scratch("serve-seq2seq");
    let data = write(
        &d,
        "pairs.jsonl",
        "{\"source\": \"a dog runs\", \"target\": \"ein hund rennt\"}\n\
         {\"source\": \"two men talk\", \"target\": \"zwei männer reden\"}\n",
    );
    let bart = fixture("tiny_bart");
    let out = train(
        "translate",
        &bart,
        &data,
        &d.join("mt"),
        &["--max-steps", "2", "--src-lang", "en", "--tgt-lang", "de"],
    );
    let server = serve(&["--model", &format!("mt={}", path(&out))]);
    let (status, body) = request(
        server.port,
        "POST",
        "/v1/tasks/translate",
        Some(
            &json!({"model": "mt", "input": [{"source": "a dog runs"}, {"source": "two men talk"}]}),
        ),
    );
    assert_eq!(status, 200, "{body}");
    let v = json_in(&body);
    assert_eq!(v["task"], "translate");
    let outs = v["output"].as_array().expect("a list");
    assert_eq!(outs.len(), 2, "{v}");
    for o in outs {
        assert!(o["prediction"].is_string(), "{v}");
    }
    // No completions endpoint: that runs on the decoder engine.
    let (status, body) = request(
        server.port,
        "POST",
        "/v1/completions",
        Some(&json!({"model": "mt", "prompt": "a dog runs", "max_tokens": 2})),
    );
    assert_eq!(status, 400, "{body}");
    drop(server);

    // A checkpoint tasklm did not train names the endpoint it lacks and what runs it.
    let o = Command::new(env!("CARGO_BIN_EXE_tasklm"))
        .args(["serve", "--port", "0", "--model", &bart])
        .output()
        .expect("run tasklm serve");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("/v1/tasks/translate"),
        "{err}"
    );
}

#[test]
fn sigterm_finishes_the_stream_in_flight_then_exits() {
    let mut server = serve(&["--model", &format!("tiny={}", decoder())]);
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let body = json!({"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
                      "max_tokens": 200, "stream": true})
    .to_string();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body.as_bytes()).unwrap();
    // Wait for the first chunk, then ask the server to stop.
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("data: ") {
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "the stream closed early");
        got.extend_from_slice(&buf[..n]);
    }
    let pid = server.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&got).contains("data: [DONE]") {
            break;
        }
    }
    assert!(
        String::from_utf8_lossy(&got).contains("data: [DONE]"),
        "the stream was cut"
    );
    drop(s);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(st) = server.child.try_wait().unwrap() {
            break st;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    assert_eq!(
        request(server.port, "GET", "/health", None).0,
        0,
        "still accepting"
    );
}

#[test]
fn adapters_are_served_by_model_name() {
    let (base, adapter) = (decoder(), fixture("lora_decoder"));
    let (b, t) = (format!("base={base}"), format!("tuned={base}"));
    let (ta, pa) = (format!("tuned={adapter}"), format!("peft={adapter}"));
    let server = serve(&[
        "--model",
        &b,
        "--model",
        &t,
        "--adapter",
        &ta,
        "--adapter",
        &pa,
    ]);
    let complete = |model: &str| {
        let body =
            json!({"model": model, "prompt": "the film is", "max_tokens": 6, "temperature": 0});
        let (status, text) = request(server.port, "POST", "/v1/completions", Some(&body));
        assert_eq!(status, 200, "{text}");
        json_in(&text)["choices"][0]["text"]
            .as_str()
            .expect("text")
            .to_string()
    };
    // The adapter over a named --model and over the base its config names answer alike, and
    // unlike the base alone.
    let (tuned, peft) = (complete("tuned"), complete("peft"));
    assert_eq!(tuned, peft);
    assert_ne!(tuned, complete("base"));
}

//! TwiML rendering: the example document from TWILIO.md (a Gather with a nested
//! Say, a recorded Dial to a SIP URI, a Hangup), built and rendered to a string.
//! Compare with `callbid-twilio/scripts/twiml_bench.py` (twilio-python, same
//! document); results in docs/BENCHMARKS.md, section "TwiML rendering".

use callbid::twilio::twiml::{Dial, DialRecord, Gather, GatherInput, Say, Sip, VoiceResponse};
use criterion::{black_box, criterion_group, criterion_main, Criterion};

fn example() -> VoiceResponse {
    VoiceResponse::new()
        .gather(
            Gather::new()
                .input(GatherInput::Dtmf)
                .num_digits(5u32)
                .action("/ivr/zip")
                .timeout(5u32)
                .say(Say::new("Please enter your <zip> & code").voice("alice")),
        )
        .dial(
            Dial::new()
                .caller_id("+15551234567")
                .timeout(20u32)
                .record(DialRecord::RecordFromAnswer)
                .sip(Sip::new("sip:buyer@example.com")),
        )
        .hangup()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("twiml");
    g.bench_function("build_and_render_example", |b| {
        b.iter(|| black_box(example()).to_xml())
    });
    let doc = example();
    g.bench_function("render_example", |b| b.iter(|| black_box(&doc).to_xml()));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

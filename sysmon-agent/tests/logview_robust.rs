//! sysmonLogView must survive any input: every prefix of every recorded line (what a
//! syslog daemon's cut produces), and lines with bytes flipped, never panic and never
//! print a half event.

use sysmon_agent::logview::{Viewer, colour::Palette, options::Options};

fn sample() -> Vec<u8> {
    std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/logview/sample.log"
    ))
    .unwrap()
}

fn view(args: &[&str], input: &[u8]) -> (Vec<u8>, u64) {
    let argv = std::iter::once("sysmonLogView")
        .chain(args.iter().copied())
        .map(String::from);
    let opts = Options::parse(argv).unwrap();
    let mut viewer = Viewer::new(&opts, Palette::new(false));
    let (mut out, mut err) = (Vec::new(), Vec::new());
    viewer.read(input, "test", &mut out, &mut err).unwrap();
    viewer.finish(&mut out, &mut err).unwrap();
    (out, viewer.stats.bad)
}

#[test]
fn every_cut_of_every_line() {
    let log = sample();
    for line in log
        .split(|&b| b == b'\n')
        .filter(|l| l.ends_with(b"</Event>"))
    {
        for cut in 0..line.len() {
            // Every cut in the default layout; the other modes on every 5th (debug builds
            // are slow and the parser they share is the same).
            let modes: &[&[&str]] = if cut % 5 == 0 {
                &[&[], &["--json"], &["--tree"], &["--summary"]]
            } else {
                &[&[]]
            };
            for &args in modes {
                let (out, bad) = view(args, &line[..cut]);
                // A cut event is either not ours (cut before `<Event>`) or reported bad;
                // it is never shown.
                if args.is_empty() {
                    assert!(
                        out.is_empty(),
                        "cut {cut} printed {}",
                        String::from_utf8_lossy(&out)
                    );
                }
                assert!(bad <= 1);
            }
        }
    }
}

#[test]
fn flipped_bytes() {
    let log = sample();
    // A cheap deterministic generator; the point is coverage of odd bytes, not randomness.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..300 {
        let mut input = log.clone();
        for _ in 0..8 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let at = (seed % input.len() as u64) as usize;
            input[at] = (seed >> 32) as u8;
        }
        for args in [&[][..], &["--json"], &["--tree"], &["--summary"]] {
            view(args, &input);
        }
    }
}

#[test]
fn whole_sample_counts() {
    let (_, bad) = view(&[], &sample());
    assert_eq!(bad, 2, "the truncated and the malformed line");
}

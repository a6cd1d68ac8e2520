use sysmon_agent::kernel::{load, record};
fn main() -> anyhow::Result<()> {
    let mut k = match load::load(&load::Options { btf: None }) {
        Ok(k) => k,
        Err(e) => {
            for c in e.chain() {
                eprintln!("{c}");
            }
            std::process::exit(1)
        }
    };
    eprintln!("loaded");
    let t0 = std::time::Instant::now();
    while t0.elapsed().as_secs() < 3 {
        while let Some(item) = k.ring.next() {
            match record::decode(&item) {
                Ok(record::Record::Exec(r, t)) => println!(
                    "exec tgid={} ppid={} uid={} end_code={:x} tty={} flags={} exe={:?} cwd={:?} args={:?} ino={} dev={} size={} mtime={}",
                    r.header.tgid,
                    r.ppid,
                    r.uid,
                    r.end_code,
                    r.tty,
                    r.flags,
                    String::from_utf8_lossy(t.exe),
                    String::from_utf8_lossy(t.cwd),
                    String::from_utf8_lossy(t.args),
                    r.exe_ino,
                    r.exe_dev,
                    r.exe_size,
                    r.exe_mtime_sec
                ),
                Ok(record::Record::Exit(r)) => println!(
                    "exit tgid={} tid={} uid={}",
                    r.header.tgid, r.header.tid, r.uid
                ),
                Ok(record::Record::Fork(r)) => {
                    println!("fork tgid={} ppid={}", r.header.tgid, r.ppid)
                }
                Err(e) => println!("bad {e:?}"),
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    println!(
        "drops {:?}",
        k.drops()
            .iter()
            .map(|(k, n)| (*k as u32, *n))
            .collect::<Vec<_>>()
    );
    Ok(())
}

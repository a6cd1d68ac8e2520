//! Just enough of bbolt's file format to read one value out of containerd's metadata
//! database: the image of a container started with `ctr` (its bundle has no annotation
//! naming it). Read-only, from the last committed transaction, without taking the file's
//! lock: containerd keeps the database open.

use std::{fs::File, os::unix::fs::FileExt, path::Path};

const MAGIC: u32 = 0xED0C_DAED;
const PAGE_HEADER: usize = 16;
const ELEMENT: usize = 16;
const BRANCH: u16 = 0x01;
const LEAF: u16 = 0x02;
const BUCKET_LEAF: u32 = 0x01;
/// Deeper than any real tree: a corrupt file cannot loop us.
const MAX_DEPTH: usize = 32;

/// The image of containerd container `id` in `namespace`
/// (`v1/<namespace>/containers/<id>/image`).
pub fn containerd_image(db: &Path, namespace: &str, id: &str) -> Option<String> {
    let db = Db::open(db)?;
    let path: [&[u8]; 4] = [b"v1", namespace.as_bytes(), b"containers", id.as_bytes()];
    let mut bucket = db.root.clone();
    for name in path {
        bucket = db.bucket(&bucket, name)?;
    }
    let image = db.get(&bucket, b"image")?;
    String::from_utf8(image).ok()
}

struct Db {
    file: File,
    page_size: u64,
    root: Bucket,
}

/// A bucket: its root page, or its inline page (bytes) when it is small.
#[derive(Clone)]
enum Bucket {
    Page(u64),
    Inline(Vec<u8>),
}

impl Db {
    fn open(path: &Path) -> Option<Db> {
        let file = File::open(path).ok()?;
        let mut first = vec![0u8; 4096];
        file.read_exact_at(&mut first, 0).ok()?;
        let page_size = u32_at(&first, PAGE_HEADER + 8)? as u64;
        if !(512..=65536).contains(&page_size) {
            return None;
        }
        let mut second = vec![0u8; PAGE_HEADER + 64];
        file.read_exact_at(&mut second, page_size).ok()?;
        // The valid meta page of the newest transaction.
        let root = [&first[..], &second[..]]
            .into_iter()
            .filter_map(meta)
            .max_by_key(|(txid, _)| *txid)?
            .1;
        Some(Db {
            file,
            page_size,
            root: Bucket::Page(root),
        })
    }

    /// The page `id` with its overflow pages.
    fn page(&self, id: u64) -> Option<Vec<u8>> {
        let mut head = vec![0u8; PAGE_HEADER];
        self.file
            .read_exact_at(&mut head, id.checked_mul(self.page_size)?)
            .ok()?;
        let overflow = u32_at(&head, 12)? as u64;
        let len = (overflow + 1).checked_mul(self.page_size)?;
        if len > 64 << 20 {
            return None;
        }
        let mut page = vec![0u8; len as usize];
        self.file
            .read_exact_at(&mut page, id * self.page_size)
            .ok()?;
        Some(page)
    }

    /// The leaf element `key` of `bucket`: (flags, value).
    fn find(&self, bucket: &Bucket, key: &[u8]) -> Option<(u32, Vec<u8>)> {
        let mut page = match bucket {
            Bucket::Page(id) => self.page(*id)?,
            Bucket::Inline(bytes) => bytes.clone(),
        };
        for _ in 0..MAX_DEPTH {
            let flags = u16_at(&page, 8)?;
            let count = u16_at(&page, 10)? as usize;
            match flags {
                BRANCH => {
                    // The last element whose key is not past `key`.
                    let mut child = None;
                    for i in 0..count {
                        let at = PAGE_HEADER + i * ELEMENT;
                        let pos = u32_at(&page, at)? as usize;
                        let ksize = u32_at(&page, at + 4)? as usize;
                        let k = page.get(at + pos..at + pos + ksize)?;
                        if k > key && child.is_some() {
                            break;
                        }
                        child = Some(u64_at(&page, at + 8)?);
                    }
                    page = self.page(child?)?;
                }
                LEAF => {
                    for i in 0..count {
                        let at = PAGE_HEADER + i * ELEMENT;
                        let flags = u32_at(&page, at)?;
                        let pos = u32_at(&page, at + 4)? as usize;
                        let ksize = u32_at(&page, at + 8)? as usize;
                        let vsize = u32_at(&page, at + 12)? as usize;
                        let k = page.get(at + pos..at + pos + ksize)?;
                        if k == key {
                            let v = page.get(at + pos + ksize..at + pos + ksize + vsize)?;
                            return Some((flags, v.to_vec()));
                        }
                    }
                    return None;
                }
                _ => return None,
            }
        }
        None
    }

    fn bucket(&self, parent: &Bucket, name: &[u8]) -> Option<Bucket> {
        let (flags, value) = self.find(parent, name)?;
        if flags & BUCKET_LEAF == 0 {
            return None;
        }
        // A bucket's value: its root page id and sequence, then its page when inline (root 0).
        match u64_at(&value, 0)? {
            0 => Some(Bucket::Inline(value.get(16..)?.to_vec())),
            root => Some(Bucket::Page(root)),
        }
    }

    fn get(&self, bucket: &Bucket, key: &[u8]) -> Option<Vec<u8>> {
        let (flags, value) = self.find(bucket, key)?;
        (flags & BUCKET_LEAF == 0).then_some(value)
    }
}

/// (txid, root bucket page) of a meta page whose magic, version and checksum hold.
fn meta(page: &[u8]) -> Option<(u64, u64)> {
    let m = page.get(PAGE_HEADER..PAGE_HEADER + 64)?;
    if u32_at(m, 0)? != MAGIC || u32_at(m, 4)? != 2 {
        return None;
    }
    if fnv1a(&m[..56]) != u64_at(m, 56)? {
        return None;
    }
    Some((u64_at(m, 48)?, u64_at(m, 16)?))
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database as bbolt lays it out: two meta pages, a branch page over two leaves of the
    /// root bucket, nested inline buckets down to the container's `image`.
    #[test]
    fn reads_an_image_through_nested_buckets() {
        const PS: usize = 4096;
        let mut file = vec![0u8; PS * 5];
        let leaf = |elems: &[(u32, &[u8], Vec<u8>)]| -> Vec<u8> {
            let mut p = vec![0u8; PAGE_HEADER + elems.len() * ELEMENT];
            p[8..10].copy_from_slice(&LEAF.to_le_bytes());
            p[10..12].copy_from_slice(&(elems.len() as u16).to_le_bytes());
            for (i, (flags, k, v)) in elems.iter().enumerate() {
                let at = PAGE_HEADER + i * ELEMENT;
                let pos = (p.len() - at) as u32;
                p[at..at + 4].copy_from_slice(&flags.to_le_bytes());
                p[at + 4..at + 8].copy_from_slice(&pos.to_le_bytes());
                p[at + 8..at + 12].copy_from_slice(&(k.len() as u32).to_le_bytes());
                p[at + 12..at + 16].copy_from_slice(&(v.len() as u32).to_le_bytes());
                p.extend_from_slice(k);
                p.extend_from_slice(v);
            }
            p
        };
        let inline = |page: Vec<u8>| [vec![0u8; 16], page].concat();
        let container = inline(leaf(&[
            (0, b"image", b"docker.io/sysmon-test/busybox:1".to_vec()),
            (0, b"runtime", b"x".to_vec()),
        ]));
        let containers = inline(leaf(&[(BUCKET_LEAF, b"c2", container)]));
        let ns = inline(leaf(&[(BUCKET_LEAF, b"containers", containers)]));
        let v1 = inline(leaf(&[(BUCKET_LEAF, b"sysmon-test", ns)]));
        // Root bucket: a branch (page 2) over leaves at pages 3 and 4.
        let left = leaf(&[(0, b"a", b"1".to_vec())]);
        let right = leaf(&[(BUCKET_LEAF, b"v1", v1)]);
        file[3 * PS..3 * PS + left.len()].copy_from_slice(&left);
        file[4 * PS..4 * PS + right.len()].copy_from_slice(&right);
        let branch = 2 * PS;
        file[branch + 8..branch + 10].copy_from_slice(&BRANCH.to_le_bytes());
        file[branch + 10..branch + 12].copy_from_slice(&2u16.to_le_bytes());
        for (i, (key, child)) in [(&b"a"[..], 3u64), (&b"v1"[..], 4)].iter().enumerate() {
            let at = branch + PAGE_HEADER + i * ELEMENT;
            let pos = (64 + i * 8 - (at - branch)) as u32;
            file[at..at + 4].copy_from_slice(&pos.to_le_bytes());
            file[at + 4..at + 8].copy_from_slice(&(key.len() as u32).to_le_bytes());
            file[at + 8..at + 16].copy_from_slice(&child.to_le_bytes());
            let k = at + pos as usize;
            file[k..k + key.len()].copy_from_slice(key);
        }
        // Meta pages: page 1 is the newer transaction and names the root; page 0 is older
        // and points nowhere useful.
        for (page, txid, root) in [(0usize, 1u64, 9u64), (1, 2, 2)] {
            let m = page * PS + PAGE_HEADER;
            file[m..m + 4].copy_from_slice(&MAGIC.to_le_bytes());
            file[m + 4..m + 8].copy_from_slice(&2u32.to_le_bytes());
            file[m + 8..m + 12].copy_from_slice(&(PS as u32).to_le_bytes());
            file[m + 16..m + 24].copy_from_slice(&root.to_le_bytes());
            file[m + 48..m + 56].copy_from_slice(&txid.to_le_bytes());
            let sum = fnv1a(&file[m..m + 56]);
            file[m + 56..m + 64].copy_from_slice(&sum.to_le_bytes());
        }
        let path = std::env::temp_dir().join(format!("sysmon-bolt-{}.db", std::process::id()));
        std::fs::write(&path, &file).unwrap();
        let cases = [
            ("sysmon-test", "c2", Some("docker.io/sysmon-test/busybox:1")),
            ("sysmon-test", "c3", None),
            ("default", "c2", None),
        ];
        for (ns, id, want) in cases {
            assert_eq!(
                containerd_image(&path, ns, id).as_deref(),
                want,
                "{ns}/{id}"
            );
        }
        // A torn meta page (bad checksum) is not read.
        file[PS + PAGE_HEADER + 56] ^= 1;
        std::fs::write(&path, &file).unwrap();
        assert_eq!(containerd_image(&path, "sysmon-test", "c2"), None);
        std::fs::remove_file(&path).unwrap();
    }
}

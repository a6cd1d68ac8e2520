//! Whether files were executable, as user space last saw them: for a chmod by path that the
//! kernel could not see change its inode (before 6.13, see events/file_executable.rs), the
//! mode before the call is the one remembered here; a file never seen counts as having had
//! no execute bit, as in the kernel's own `MODES` map.

use std::collections::HashMap;

/// Files remembered at most; past that the memory starts over, and a file already
/// executable may be reported once more.
pub const MAX: usize = 16_384;

#[derive(Default)]
pub struct Modes(HashMap<(u32, u64), bool>);

impl Modes {
    /// Remembers whether the file `(dev, ino)` is executable now; returns whether it was.
    pub fn swap(&mut self, dev: u32, ino: u64, executable: bool) -> bool {
        if self.0.len() >= MAX && !self.0.contains_key(&(dev, ino)) {
            self.0.clear();
        }
        self.0.insert((dev, ino), executable).unwrap_or(false)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_each_file_within_its_bound() {
        let mut m = Modes::default();
        // (dev, ino, executable now, was executable)
        let steps = [
            (1, 10, true, false),
            (1, 10, true, true),
            (1, 10, false, true),
            (1, 10, true, false),
            (2, 10, true, false),
        ];
        for (dev, ino, now, was) in steps {
            assert_eq!(m.swap(dev, ino, now), was, "{dev}:{ino}");
        }
        for ino in 0..(MAX as u64 * 3) {
            m.swap(9, ino, true);
            assert!(m.len() <= MAX);
        }
    }
}

//! ANSI colours, or nothing: callers always write the codes, which are empty when off.

/// The escape codes the layouts use.
#[derive(Debug, Clone, Copy)]
pub struct Palette {
    on: bool,
}

impl Palette {
    pub fn new(on: bool) -> Self {
        Palette { on }
    }

    /// Event header: bold, coloured by what kind of activity it is, so a stream is easy
    /// to scan by eye.
    pub fn header(&self, id: u32) -> &'static str {
        if !self.on {
            return "";
        }
        match id {
            1 => "\x1b[1;32m",           // process create: green
            5 => "\x1b[1;33m",           // process end: yellow
            3 => "\x1b[1;36m",           // network: cyan
            9 | 11 | 23 => "\x1b[1;35m", // files and devices: magenta
            255 => "\x1b[1;31m",         // errors: red
            _ => "\x1b[1m",
        }
    }

    /// Field names (and tree annotations): dim, so values stand out.
    pub fn name(&self) -> &'static str {
        if self.on { "\x1b[2m" } else { "" }
    }

    pub fn reset(&self) -> &'static str {
        if self.on { "\x1b[0m" } else { "" }
    }
}

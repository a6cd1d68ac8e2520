//! uid → user name, through NSS (`getpwuid_r`), cached.

use std::{collections::HashMap, ffi::CStr};

#[derive(Default)]
pub struct Users {
    names: HashMap<u32, Option<Box<str>>>,
}

impl Users {
    /// The user name, or `None` when no passwd entry exists (printed as `-`).
    pub fn name(&mut self, uid: u32) -> Option<&str> {
        self.names
            .entry(uid)
            .or_insert_with(|| lookup(uid))
            .as_deref()
    }
}

fn lookup(uid: u32) -> Option<Box<str>> {
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut out: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe { libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut out) };
    if rc != 0 || out.is_null() || pw.pw_name.is_null() {
        return None;
    }
    let name = unsafe { CStr::from_ptr(pw.pw_name) };
    Some(name.to_string_lossy().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_and_unknown() {
        let mut u = Users::default();
        assert_eq!(u.name(0), Some("root"));
        assert_eq!(u.name(3_999_999_999), None);
    }
}

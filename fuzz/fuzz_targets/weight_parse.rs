//! `Weight::from_str` never panics, and accepts exactly the decimal integers 1..=u32::MAX
//! (surrounding whitespace allowed), naming the input when it refuses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_mesh::endpoint::Weight;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match s.parse::<Weight>() {
        Ok(w) => assert_eq!(s.trim().parse::<u32>().ok(), Some(w.get())),
        Err(e) => {
            assert_eq!(e.value(), s);
            assert!(!matches!(s.trim().parse::<u32>(), Ok(n) if n > 0));
        }
    }
});

//! The `Date` header, formatted once a second per thread.

use std::cell::RefCell;

/// `Sun, 06 Nov 1994 08:49:37 GMT`: the IMF-fixdate of RFC 9110, always 29 bytes.
pub(crate) const LEN: usize = 29;

struct Cached {
    second: i64,
    text: [u8; LEN],
}

thread_local! {
    static CACHE: RefCell<Cached> = const { RefCell::new(Cached { second: i64::MIN, text: [0; LEN] }) };
}

fn now_seconds() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec to write; CLOCK_REALTIME_COARSE exists on
    // every Linux this builds for (the coarse clock is enough at one-second grain).
    let r = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if r == 0 {
        ts.tv_sec
    } else {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}

/// Appends the current date, as a `Date` header value, to `out`.
pub(crate) fn append(out: &mut Vec<u8>) {
    let second = now_seconds();
    CACHE.with(|c| match c.try_borrow_mut() {
        Ok(mut c) => {
            if c.second != second {
                c.text = format(second);
                c.second = second;
            }
            out.extend_from_slice(&c.text);
        }
        Err(_) => out.extend_from_slice(&format(second)),
    });
}

/// Formats `secs` since the Unix epoch as an IMF-fixdate.
pub(crate) fn format(secs: i64) -> [u8; LEN] {
    const DAYS: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov",
        b"Dec",
    ];
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem / 60 % 60, rem % 60);
    let mut t = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    t[..3].copy_from_slice(DAYS[days.rem_euclid(7) as usize]);
    two(&mut t[5..7], d);
    t[8..11].copy_from_slice(MONTHS[(m - 1) as usize]);
    let y = y.clamp(0, 9999);
    two(&mut t[12..14], y / 100);
    two(&mut t[14..16], y % 100);
    two(&mut t[17..19], hh);
    two(&mut t[20..22], mm);
    two(&mut t[23..25], ss);
    t
}

fn two(out: &mut [u8], v: i64) {
    out[0] = b'0' + (v / 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

/// Days since 1970-01-01 to (year, month 1-12, day 1-31), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::format;

    #[test]
    fn formats_imf_fixdate() {
        assert_eq!(&format(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        // RFC 9110's own example.
        assert_eq!(&format(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&format(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&format(1_798_761_599), b"Thu, 31 Dec 2026 23:59:59 GMT");
    }
}

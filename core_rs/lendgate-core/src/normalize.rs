//! Normalisation of key values before they are used as aggregate or matching keys.
//!
//! Two partners rarely write the same phone or name the same way; keys are compared
//! only after normalisation, so "+7 (912) 345-67-89" and "89123456789" meet in one
//! aggregate.

use crate::error::{CoreError, CoreResult};
use serde::{Deserialize, Serialize};

/// How a key attribute is normalised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    /// Free text (names, e-mails, INNs, device ids): Unicode-lowercased, surrounding
    /// whitespace trimmed and inner runs of whitespace collapsed to one space.
    #[default]
    Text,
    /// A phone number: digits only; an 11-digit national number with the trunk
    /// prefix 8 is rewritten to the country code 7 (the convention of the seeds'
    /// market), so national and international spellings of one number agree.
    Phone,
    /// A document or account number (passport, INN, card, IBAN): letters and digits
    /// only, Unicode-lowercased, so "4510 123456" and "4510-123456" agree.
    Alnum,
}

impl std::str::FromStr for KeyKind {
    type Err = CoreError;

    fn from_str(s: &str) -> CoreResult<Self> {
        match s {
            "text" => Ok(Self::Text),
            "phone" => Ok(Self::Phone),
            "alnum" => Ok(Self::Alnum),
            other => Err(CoreError::invalid(
                "kind",
                format!("unknown key kind {other:?} (expected \"text\", \"phone\" or \"alnum\")"),
            )),
        }
    }
}

/// [`normalize_key`] appended to `out` (no allocation of its own). On error, `out`
/// may hold part of the value.
pub fn normalize_key_into(kind: KeyKind, value: &str, out: &mut String) -> CoreResult<()> {
    let base = out.len();
    let bytes = value.as_bytes();
    match kind {
        // Fast paths: already-clean ASCII is copied and lowercased in place.
        KeyKind::Text
            if bytes.first().is_some_and(|b| *b != b' ')
                && bytes.last().is_some_and(|b| *b != b' ')
                && !value.contains("  ")
                && bytes.iter().all(|b| b.is_ascii_graphic() || *b == b' ') =>
        {
            out.push_str(value);
            out[base..].make_ascii_lowercase();
            Ok(())
        }
        KeyKind::Alnum if bytes.iter().all(u8::is_ascii_alphanumeric) => {
            out.push_str(value);
            out[base..].make_ascii_lowercase();
            Ok(())
        }
        KeyKind::Text => {
            for word in value.split_whitespace() {
                if out.len() > base {
                    out.push(' ');
                }
                if word.is_ascii() {
                    out.extend(word.bytes().map(|b| char::from(b.to_ascii_lowercase())));
                } else {
                    out.extend(word.chars().flat_map(char::to_lowercase));
                }
            }
            Ok(())
        }
        KeyKind::Alnum => {
            if value.is_ascii() {
                out.extend(
                    value
                        .bytes()
                        .filter(u8::is_ascii_alphanumeric)
                        .map(|b| char::from(b.to_ascii_lowercase())),
                );
            } else {
                out.extend(
                    value
                        .chars()
                        .filter(|c| c.is_alphanumeric())
                        .flat_map(char::to_lowercase),
                );
            }
            Ok(())
        }
        KeyKind::Phone => {
            out.extend(value.chars().filter(char::is_ascii_digit));
            let n = out.len() - base;
            if !(5..=15).contains(&n) {
                return Err(CoreError::invalid(
                    "phone",
                    format!("a phone number has 5 to 15 digits, got {n} in {value:?}"),
                ));
            }
            if n == 11 && out.as_bytes()[base] == b'8' {
                out.replace_range(base..base + 1, "7");
            }
            Ok(())
        }
    }
}

/// Normalises `value` as a key of the given kind.
///
/// Returns `InvalidArgument` for a phone with no digits, or with fewer than 5 or
/// more than 15 digits (E.164's upper bound).
pub fn normalize_key(kind: KeyKind, value: &str) -> CoreResult<String> {
    match kind {
        KeyKind::Text => Ok(normalize_text(value)),
        KeyKind::Phone => normalize_phone(value),
        KeyKind::Alnum => Ok(normalize_alnum(value)),
    }
}

fn normalize_alnum(value: &str) -> String {
    value
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_lowercase)
        .collect()
}

fn normalize_text(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for word in value.split_whitespace() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.extend(word.chars().flat_map(char::to_lowercase));
    }
    out
}

fn normalize_phone(value: &str) -> CoreResult<String> {
    let mut digits: String = value.chars().filter(char::is_ascii_digit).collect();
    if !(5..=15).contains(&digits.len()) {
        return Err(CoreError::invalid(
            "phone",
            format!(
                "a phone number has 5 to 15 digits, got {} in {value:?}",
                digits.len()
            ),
        ));
    }
    if digits.len() == 11 && digits.starts_with('8') {
        digits.replace_range(0..1, "7");
    }
    Ok(digits)
}

/// Keeps the ASCII digits of `value` (taxpayer numbers, bank accounts).
///
/// Returns `InvalidArgument` (naming `field`) when fewer than `min` or more than
/// `max` digits remain.
pub fn normalize_digits(field: &str, value: &str, min: usize, max: usize) -> CoreResult<String> {
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    if !(min..=max).contains(&digits.len()) {
        return Err(CoreError::invalid(
            field,
            format!(
                "expected {min} to {max} digits, got {} in {value:?}",
                digits.len()
            ),
        ));
    }
    Ok(digits)
}

/// A passport series and number: letters and digits only, upper case, so
/// "45 06 123456" and "4506-123456" agree.
pub fn normalize_passport(value: &str) -> CoreResult<String> {
    let out: String = value
        .chars()
        .filter(|c| c.is_alphanumeric())
        .flat_map(char::to_uppercase)
        .collect();
    if out.is_empty() {
        return Err(CoreError::invalid(
            "passport",
            format!("no letters or digits in {value:?}"),
        ));
    }
    Ok(out)
}

/// An e-mail address: trimmed and lower-cased; it must contain `@`.
pub fn normalize_email(value: &str) -> CoreResult<String> {
    let out = normalize_text(value);
    if !out.contains('@') || out.contains(' ') {
        return Err(CoreError::invalid(
            "email",
            format!("not an e-mail address: {value:?}"),
        ));
    }
    Ok(out)
}

/// A card number or token: spaces and dashes removed. A number of digits only is a
/// PAN or a BIN; anything else is an opaque token, kept as sent (tokens are
/// case-sensitive).
pub fn normalize_card(value: &str) -> CoreResult<String> {
    let out: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .collect();
    if out.is_empty() {
        return Err(CoreError::invalid("card", "an empty card number"));
    }
    Ok(out)
}

/// An IP address in its canonical text form (`::ffff:1.2.3.4` becomes `1.2.3.4`,
/// IPv6 is compressed and lower-cased).
pub fn normalize_ip(value: &str) -> CoreResult<std::net::IpAddr> {
    let addr: std::net::IpAddr = value
        .trim()
        .parse()
        .map_err(|_| CoreError::invalid("ip", format!("not an IP address: {value:?}")))?;
    Ok(addr.to_canonical())
}

/// An IP network `addr/prefix` with the host bits cleared, or a single address
/// (prefix = full length). Returns the network address and the prefix length.
pub fn normalize_ip_network(value: &str) -> CoreResult<(std::net::IpAddr, u8)> {
    use std::net::IpAddr;
    let Some((addr, prefix)) = value.trim().split_once('/') else {
        let addr = normalize_ip(value)?;
        let full = if addr.is_ipv4() { 32 } else { 128 };
        return Ok((addr, full));
    };
    let addr = normalize_ip(addr)?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix: u8 =
        prefix.parse().ok().filter(|p| *p <= max).ok_or_else(|| {
            CoreError::invalid("ip", format!("invalid network prefix in {value:?}"))
        })?;
    let net = match addr {
        IpAddr::V4(a) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & mask).into())
        }
        IpAddr::V6(a) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & mask).into())
        }
    };
    Ok((net, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_lowercased_and_whitespace_collapsed() {
        let got = normalize_key(KeyKind::Text, "  Ivan \t  PETROV\n").unwrap();
        assert_eq!(got, "ivan petrov");
    }

    #[test]
    fn text_lowercases_cyrillic() {
        assert_eq!(normalize_key(KeyKind::Text, "ИВАН").unwrap(), "иван");
    }

    #[test]
    fn national_and_international_phones_agree() {
        let a = normalize_key(KeyKind::Phone, "+7 (912) 345-67-89").unwrap();
        let b = normalize_key(KeyKind::Phone, "8 912 345 67 89").unwrap();
        assert_eq!(a, "79123456789");
        assert_eq!(a, b);
    }

    #[test]
    fn phone_without_enough_digits_is_invalid() {
        let err = normalize_key(KeyKind::Phone, "call me").unwrap_err();
        assert!(matches!(err, CoreError::InvalidArgument { ref field, .. } if field == "phone"));
    }

    #[test]
    fn alnum_keeps_letters_and_digits() {
        let a = normalize_key(KeyKind::Alnum, " 4510-123 456 ").unwrap();
        assert_eq!(a, "4510123456");
        assert_eq!(normalize_key(KeyKind::Alnum, "AB 12").unwrap(), "ab12");
    }

    #[test]
    fn unknown_kind_is_invalid() {
        assert!("fax".parse::<KeyKind>().is_err());
        assert_eq!("phone".parse::<KeyKind>().unwrap(), KeyKind::Phone);
    }

    #[test]
    fn digits_passport_email_card() {
        assert_eq!(
            normalize_digits("tax_id", " 7701-234567 ", 10, 12).unwrap(),
            "7701234567"
        );
        assert!(normalize_digits("tax_id", "123", 10, 12).is_err());
        assert_eq!(normalize_passport("45 06 № 123456").unwrap(), "4506123456");
        assert_eq!(normalize_passport("ab-12").unwrap(), "AB12");
        assert_eq!(normalize_email(" Ivan@Mail.RU ").unwrap(), "ivan@mail.ru");
        assert!(normalize_email("ivan").is_err());
        assert_eq!(
            normalize_card("4276 1600-1234 5678").unwrap(),
            "4276160012345678"
        );
    }

    #[test]
    fn ip_addresses_and_networks() {
        assert_eq!(
            normalize_ip("::ffff:10.1.2.3").unwrap().to_string(),
            "10.1.2.3"
        );
        assert_eq!(
            normalize_ip("2001:DB8::0001").unwrap().to_string(),
            "2001:db8::1"
        );
        assert!(normalize_ip("10.1.2").is_err());
        let (net, p) = normalize_ip_network("10.1.2.3/8").unwrap();
        assert_eq!((net.to_string(), p), ("10.0.0.0".to_string(), 8));
        assert_eq!(normalize_ip_network("10.1.2.3").unwrap().1, 32);
        assert_eq!(normalize_ip_network("0.0.0.0/0").unwrap().1, 0);
        assert!(normalize_ip_network("10.0.0.0/33").is_err());
    }
}

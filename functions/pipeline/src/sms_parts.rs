//! How an SMS text is encoded and into how many parts it is split (3GPP TS 23.038).
//!
//! | encoding | when | one message | per part when concatenated |
//! |---|---|---|---|
//! | GSM-7 | every character is in the default alphabet or its extension table (the extension's `^ { } \ [ ~ ] \| €` and form feed take two) | 160 | 153 |
//! | UCS-2 | any other character | 70 | 67 (a character outside the Basic Multilingual Plane, most emoji, takes two) |
//!
//! A part never splits a two-unit character, as handsets do not.

use serde::Serialize;

/// The encoding of an SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Encoding {
    /// The GSM 03.38 alphabet, 7 bits a character: 160 in one part, 153 a part beyond.
    #[serde(rename = "GSM-7")]
    Gsm7,
    /// UTF-16: 70 units in one part, 67 a part beyond.
    #[serde(rename = "UCS-2")]
    Ucs2,
}

/// An SMS text's encoding and parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Parts {
    /// The encoding the text needs.
    pub encoding: Encoding,
    /// How many parts it takes (at least 1).
    pub parts: u32,
    /// Encoding units (septets for GSM-7, 16-bit units for UCS-2).
    pub units: u32,
}

/// The GSM-7 default alphabet (one septet each).
const BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
/// The GSM-7 extension table (an escape and the character: two septets each).
const EXTENSION: &str = "\u{c}^{}\\[~]|€";

/// Counts `text`'s encoding and parts.
pub fn count(text: &str) -> Parts {
    let gsm: Option<Vec<u32>> = text
        .chars()
        .map(|c| {
            if BASIC.contains(c) {
                Some(1)
            } else if EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .collect();
    match gsm {
        Some(units) => split(&units, Encoding::Gsm7, 160, 153),
        None => {
            let units: Vec<u32> = text
                .chars()
                .map(|c| u32::try_from(c.len_utf16()).unwrap_or(2))
                .collect();
            split(&units, Encoding::Ucs2, 70, 67)
        }
    }
}

fn split(units: &[u32], encoding: Encoding, single: u32, per_part: u32) -> Parts {
    let total: u32 = units.iter().sum();
    if total <= single {
        return Parts {
            encoding,
            parts: 1,
            units: total,
        };
    }
    let (mut parts, mut used) = (1, 0);
    for &unit in units {
        if used + unit > per_part {
            parts += 1;
            used = 0;
        }
        used += unit;
    }
    Parts {
        encoding,
        parts,
        units: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gsm7_fits_160_then_153_a_part() {
        assert_eq!(count("Your code is 1234").encoding, Encoding::Gsm7);
        assert_eq!(count(&"a".repeat(160)).parts, 1);
        assert_eq!(count(&"a".repeat(161)).parts, 2);
        assert_eq!(count(&"a".repeat(306)).parts, 2);
        assert_eq!(count(&"a".repeat(307)).parts, 3);
        // The extension table's characters take two septets.
        let euros = count(&"€".repeat(80));
        assert_eq!(
            (euros.encoding, euros.units, euros.parts),
            (Encoding::Gsm7, 160, 1)
        );
        assert_eq!(count(&"€".repeat(81)).parts, 2);
        assert_eq!(count("").parts, 1);
    }

    #[test]
    fn anything_else_is_ucs2_70_then_67_a_part() {
        assert_eq!(
            count("Grüße, Ärger, Niño, Ç").encoding,
            Encoding::Gsm7,
            "all in the alphabet"
        );
        assert_eq!(
            count("ça").encoding,
            Encoding::Ucs2,
            "a lower-case ç is not"
        );
        let cyrillic = count(&"щ".repeat(70));
        assert_eq!((cyrillic.encoding, cyrillic.parts), (Encoding::Ucs2, 1));
        assert_eq!(count(&"щ".repeat(71)).parts, 2);
        assert_eq!(count(&"щ".repeat(134)).parts, 2);
        assert_eq!(count(&"щ".repeat(135)).parts, 3);
        // An emoji is two units, and never split across parts.
        let emoji = count(&"😀".repeat(35));
        assert_eq!(
            (emoji.encoding, emoji.units, emoji.parts),
            (Encoding::Ucs2, 70, 1)
        );
        assert_eq!(count(&format!("{}😀", "a".repeat(66))).parts, 1);
        assert_eq!(count(&format!("{}😀", "щ".repeat(69))).parts, 2);
    }
}

//! Response `Content-Encoding` (RFC 9110 §8.4): gzip, deflate and brotli bodies are
//! decoded inside the executor's body cap, counting the *decoded* bytes.
//!
//! - The codings listed in `Content-Encoding` (one header or several, comma-separated)
//!   were applied in order, so they are undone last to first; `identity` is skipped.
//! - Each decoder is streamed and stops as soon as its output passes the cap, so a
//!   compression bomb (a few KiB inflating to gigabytes) is refused after at most
//!   `cap + 1` output bytes, never inflated whole.
//! - A body that does not decode, or a coding we do not support, is an error naming
//!   the coding.
//!
//! gzip (RFC 1952, `x-gzip` is its alias per RFC 9110 §8.4.1.3) and deflate (RFC 9110
//! §8.4.1.2: the zlib format of RFC 1950; a raw RFC 1951 stream, which some servers
//! send, is accepted too) use `flate2`; brotli (RFC 7932) uses `brotli-decompressor`.

use std::io::Read;

/// The codings we decode, as sent in `Accept-Encoding`.
pub const ACCEPT_ENCODING: &str = "gzip, deflate, br";

/// At most this many codings are undone (more is not a real server's answer).
pub const MAX_CODINGS: usize = 4;

/// Why a body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// A coding we do not decode.
    #[error(
        "unsupported Content-Encoding {coding:?} (callbid decodes gzip, deflate, br and identity)"
    )]
    Unsupported {
        /// The coding as sent.
        coding: String,
    },
    /// The body is not valid for the coding.
    #[error("body does not decode as {coding}: {detail}")]
    Invalid {
        /// The coding.
        coding: String,
        /// The decoder's complaint.
        detail: String,
    },
    /// Decoding produced more than the cap (stopped there).
    #[error("{coding}-decoded body exceeds the {cap}-byte limit (compressed {compressed} bytes); stopped decoding")]
    TooLarge {
        /// The coding.
        coding: String,
        /// The cap, in decoded bytes.
        cap: usize,
        /// The size of the input to this coding.
        compressed: usize,
    },
    /// More codings than [`MAX_CODINGS`].
    #[error("Content-Encoding {header:?} stacks more than {MAX_CODINGS} codings")]
    TooManyCodings {
        /// The header value(s), joined.
        header: String,
    },
}

/// The codings of `Content-Encoding` header values, in the order they were applied,
/// lowercased, `identity` and empty members dropped.
pub fn codings<'a>(values: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(|c| c.trim().to_ascii_lowercase())
        .filter(|c| !c.is_empty() && c != "identity")
        .collect()
}

/// Undoes `codings` (as listed, applied first to last) on `body`, allowing at most `cap`
/// decoded bytes at every stage.
pub fn decode(codings: &[String], body: Vec<u8>, cap: usize) -> Result<Vec<u8>, DecodeError> {
    if codings.len() > MAX_CODINGS {
        return Err(DecodeError::TooManyCodings {
            header: codings.join(", "),
        });
    }
    let mut data = body;
    for coding in codings.iter().rev() {
        data = decode_one(coding, &data, cap)?;
    }
    Ok(data)
}

fn decode_one(coding: &str, input: &[u8], cap: usize) -> Result<Vec<u8>, DecodeError> {
    match coding {
        "gzip" | "x-gzip" => read_capped(
            coding,
            flate2::read::MultiGzDecoder::new(input),
            input.len(),
            cap,
        ),
        "deflate" => {
            if looks_like_zlib(input) {
                read_capped(
                    coding,
                    flate2::read::ZlibDecoder::new(input),
                    input.len(),
                    cap,
                )
            } else {
                read_capped(
                    coding,
                    flate2::read::DeflateDecoder::new(input),
                    input.len(),
                    cap,
                )
            }
        }
        "br" => read_capped(
            coding,
            brotli_decompressor::Decompressor::new(input, 4096),
            input.len(),
            cap,
        ),
        other => Err(DecodeError::Unsupported {
            coding: other.to_string(),
        }),
    }
}

/// A zlib stream starts with CMF/FLG: method 8 (deflate) and a header checksum
/// (RFC 1950 §2.2).
fn looks_like_zlib(b: &[u8]) -> bool {
    b.len() >= 2 && b[0] & 0x0f == 8 && (u16::from(b[0]) << 8 | u16::from(b[1])) % 31 == 0
}

fn read_capped(
    coding: &str,
    decoder: impl Read,
    compressed: usize,
    cap: usize,
) -> Result<Vec<u8>, DecodeError> {
    let mut out = Vec::new();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    decoder
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| DecodeError::Invalid {
            coding: coding.to_string(),
            detail: e.to_string(),
        })?;
    if out.len() > cap {
        return Err(DecodeError::TooLarge {
            coding: coding.to_string(),
            cap,
            compressed,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn zlib(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    fn raw_deflate(b: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b).unwrap();
        e.finish().unwrap()
    }

    const JSON: &[u8] = br#"{"bidAmount": 30}"#;

    /// A brotli stream (RFC 7932 §9.2) of one uncompressed meta-block, built by hand
    /// (checked against Google's `brotli` decoder when the fixtures were generated):
    /// WBITS=16 (bit 0), ISLAST=0, MNIBBLES=4, MLEN-1 (16 bits), ISUNCOMPRESSED=1,
    /// padding, the bytes, then ISLAST=1 ISLASTEMPTY=1.
    fn brotli_stored(data: &[u8]) -> Vec<u8> {
        assert!(!data.is_empty() && data.len() <= 65_536);
        let header: u32 = ((data.len() as u32 - 1) << 4) | (1 << 20);
        let mut out = vec![header as u8, (header >> 8) as u8, (header >> 16) as u8];
        out.extend_from_slice(data);
        out.push(0b11);
        out
    }

    #[test]
    fn codings_are_split_lowercased_and_identity_dropped() {
        assert_eq!(codings(["GZIP, identity", " br"]), vec!["gzip", "br"]);
        assert_eq!(codings(["identity"]), Vec::<String>::new());
        assert_eq!(codings([" , "]), Vec::<String>::new());
    }

    #[test]
    fn decodes_each_coding_and_stacks_last_to_first() {
        let g = |s: &str| vec![s.to_string()];
        assert_eq!(decode(&g("gzip"), gzip(JSON), 100).unwrap(), JSON);
        assert_eq!(decode(&g("x-gzip"), gzip(JSON), 100).unwrap(), JSON);
        assert_eq!(decode(&g("deflate"), zlib(JSON), 100).unwrap(), JSON);
        assert_eq!(decode(&g("deflate"), raw_deflate(JSON), 100).unwrap(), JSON);
        // gzip applied first, then deflate: undone deflate first.
        let both = zlib(&gzip(JSON));
        assert_eq!(
            decode(&["gzip".into(), "deflate".into()], both.clone(), 100).unwrap(),
            JSON
        );
        assert!(decode(&["deflate".into(), "gzip".into()], both, 100).is_err());
        assert_eq!(decode(&[], JSON.to_vec(), 100).unwrap(), JSON);
        assert_eq!(decode(&g("br"), brotli_stored(JSON), 100).unwrap(), JSON);
        assert_eq!(
            decode(
                &["gzip".into(), "br".into()],
                brotli_stored(&gzip(JSON)),
                100
            )
            .unwrap(),
            JSON
        );
        assert!(
            decode(&g("br"), brotli_stored(&[7; 200]), 100).is_err(),
            "br over the cap"
        );
    }

    #[test]
    fn a_body_that_is_not_encoded_names_the_coding() {
        let e = decode(&["gzip".into()], JSON.to_vec(), 100).unwrap_err();
        assert!(
            e.to_string().starts_with("body does not decode as gzip"),
            "{e}"
        );
        let e = decode(&["br".into()], JSON.to_vec(), 100).unwrap_err();
        assert!(e.to_string().contains("as br"), "{e}");
        let e = decode(&["gzip".into()], gzip(JSON)[..10].to_vec(), 100).unwrap_err();
        assert!(e.to_string().contains("as gzip"), "truncated: {e}");
    }

    #[test]
    fn unknown_and_too_many_codings_are_refused() {
        let e = decode(&["zstd".into()], JSON.to_vec(), 100).unwrap_err();
        assert_eq!(
            e,
            DecodeError::Unsupported {
                coding: "zstd".into()
            }
        );
        let five: Vec<String> = (0..5).map(|_| "gzip".to_string()).collect();
        assert!(matches!(
            decode(&five, JSON.to_vec(), 100),
            Err(DecodeError::TooManyCodings { .. })
        ));
    }

    #[test]
    fn a_bomb_stops_at_the_cap() {
        let bomb = gzip(&vec![b'0'; 10_000_000]);
        assert!(bomb.len() < 20_000, "{}", bomb.len());
        let e = decode(&["gzip".into()], bomb, 65_536).unwrap_err();
        assert!(
            e.to_string()
                .contains("gzip-decoded body exceeds the 65536-byte limit"),
            "{e}"
        );
        // Exactly the cap is fine; one more byte is not.
        assert_eq!(
            decode(&["gzip".into()], gzip(&[1; 64]), 64).unwrap().len(),
            64
        );
        assert!(decode(&["gzip".into()], gzip(&[1; 65]), 64).is_err());
    }
}

//! Attachments: images handed to a run's agents with their prompt.
//!
//! The intake ([`intake`]) is the one door every launch goes through (`boo/launchFlow`,
//! `boo/launchWorkflow`, the CLI's `--attach`, and later `boo/spawnAgent`): it reads
//! each file (inline base64 or a path), refuses what qwen would not forward (size,
//! count, a type that is not PNG, JPEG, GIF or WebP, a declared type or name that
//! disagrees with the bytes, a model not declared to take images) with a message
//! naming the file and the limit, and hands back the bytes with their type and
//! dimensions read from the headers. Types are sniffed from the bytes, never taken
//! from the name. Nothing here touches the database; the store keeps each image once
//! by SHA-256.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// qwen forwards a file of at most 9.9 MB of base64 (QWEN.md, "Images").
pub const MAX_BASE64_CHARS: usize = 9_900_000;
/// The decoded size that fits in [`MAX_BASE64_CHARS`].
pub const MAX_BYTES: usize = MAX_BASE64_CHARS / 4 * 3;
/// Images per run: every later request of a session carries them all again.
pub const MAX_FILES: usize = 5;
/// The longest attachment name.
pub const MAX_NAME: usize = 200;

/// An image type qwen forwards to a vision model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageType {
    Png,
    Jpeg,
    Gif,
    Webp,
}

impl ImageType {
    pub fn mime(self) -> &'static str {
        match self {
            ImageType::Png => "image/png",
            ImageType::Jpeg => "image/jpeg",
            ImageType::Gif => "image/gif",
            ImageType::Webp => "image/webp",
        }
    }

    /// The type a MIME string names (`image/jpg` is taken for `image/jpeg`).
    pub fn from_mime(m: &str) -> Option<ImageType> {
        match m.trim().to_ascii_lowercase().as_str() {
            "image/png" => Some(ImageType::Png),
            "image/jpeg" | "image/jpg" | "image/pjpeg" => Some(ImageType::Jpeg),
            "image/gif" => Some(ImageType::Gif),
            "image/webp" => Some(ImageType::Webp),
            _ => None,
        }
    }

    /// The type a file name's extension names, if it names an image type boo knows.
    pub fn from_name(name: &str) -> Option<ImageType> {
        let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
        match ext.as_str() {
            "png" => Some(ImageType::Png),
            "jpg" | "jpeg" | "jpe" | "jfif" => Some(ImageType::Jpeg),
            "gif" => Some(ImageType::Gif),
            "webp" => Some(ImageType::Webp),
            _ => None,
        }
    }
}

/// What the headers of an image say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    pub kind: ImageType,
    pub width: u32,
    pub height: u32,
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]) as u32)
}
fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u16::from_le_bytes([*b.get(at)?, *b.get(at + 1)?]) as u32)
}
fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn le24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(s[0] as u32 | (s[1] as u32) << 8 | (s[2] as u32) << 16)
}

/// The image type and dimensions the bytes declare, or `None` when they are not a
/// PNG, JPEG, GIF or WebP whose headers can be read. Pure; reads headers only.
pub fn sniff(b: &[u8]) -> Option<Sniffed> {
    let found = if b.starts_with(b"\x89PNG\r\n\x1a\n") {
        // The first chunk is IHDR: width and height, big-endian.
        if b.get(12..16)? != b"IHDR" {
            return None;
        }
        (ImageType::Png, be32(b, 16)?, be32(b, 20)?)
    } else if b.starts_with(b"GIF87a") || b.starts_with(b"GIF89a") {
        (ImageType::Gif, le16(b, 6)?, le16(b, 8)?)
    } else if b.starts_with(&[0xFF, 0xD8, 0xFF]) {
        let (w, h) = jpeg_size(b)?;
        (ImageType::Jpeg, w, h)
    } else if b.len() >= 12 && &b[0..4] == b"RIFF" && &b[8..12] == b"WEBP" {
        let (w, h) = webp_size(b)?;
        (ImageType::Webp, w, h)
    } else {
        return None;
    };
    let (kind, width, height) = found;
    (width > 0 && height > 0).then_some(Sniffed {
        kind,
        width,
        height,
    })
}

/// Walks a JPEG's marker segments to the first start-of-frame.
fn jpeg_size(b: &[u8]) -> Option<(u32, u32)> {
    let mut i = 2;
    loop {
        // Markers may be preceded by fill bytes (0xFF).
        if *b.get(i)? != 0xFF {
            return None;
        }
        while *b.get(i)? == 0xFF {
            i += 1;
        }
        let marker = *b.get(i)?;
        i += 1;
        match marker {
            // Standalone markers carry no length.
            0x01 | 0xD0..=0xD7 => continue,
            0xD8..=0xDA => return None,
            _ => {}
        }
        let len = be16(b, i)? as usize;
        if len < 2 {
            return None;
        }
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            // length, precision, height, width
            let h = be16(b, i + 3)?;
            let w = be16(b, i + 5)?;
            return Some((w, h));
        }
        i += len;
    }
}

/// The canvas size of a WebP (lossy `VP8 `, lossless `VP8L` or extended `VP8X`).
fn webp_size(b: &[u8]) -> Option<(u32, u32)> {
    match b.get(12..16)? {
        b"VP8 " => {
            // Frame tag (3 bytes), start code 9d 01 2a, then 14-bit sizes.
            if b.get(23..26)? != [0x9d, 0x01, 0x2a] {
                return None;
            }
            let w = u16::from_le_bytes([*b.get(26)?, *b.get(27)?]) as u32 & 0x3fff;
            let h = u16::from_le_bytes([*b.get(28)?, *b.get(29)?]) as u32 & 0x3fff;
            Some((w, h))
        }
        b"VP8L" => {
            if *b.get(20)? != 0x2f {
                return None;
            }
            let bits = u32::from_le_bytes(b.get(21..25)?.try_into().ok()?);
            Some(((bits & 0x3fff) + 1, ((bits >> 14) & 0x3fff) + 1))
        }
        b"VP8X" => Some((le24(b, 24)? + 1, le24(b, 27)? + 1)),
        _ => None,
    }
}

// ---- base64 ---------------------------------------------------------------------

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk.len();
        let v = (chunk[0] as u32) << 16
            | (*chunk.get(1).unwrap_or(&0) as u32) << 8
            | *chunk.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= n {
                out.push(B64[((v >> (18 - 6 * k)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 (padding optional, ASCII whitespace ignored). The error
/// says where the text stops being base64.
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut padding = 0;
    for (at, c) in text.bytes().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            b' ' | b'\n' | b'\r' | b'\t' => continue,
            _ => return Err(format!("character {at} ({:?}) is not base64", c as char)),
        };
        if padding > 0 {
            return Err(format!("character {at} comes after the padding"));
        }
        acc = acc << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return Err("the text ends in the middle of a byte".into());
    }
    Ok(out)
}

// ---- intake ---------------------------------------------------------------------

/// One attachment as a launch names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttachmentInput {
    /// The bytes themselves (base64), with the name the run shows.
    Inline {
        name: String,
        mime_type: Option<String>,
        data: String,
    },
    /// A file: absolute, or relative to the run's root.
    Path(PathBuf),
}

/// An accepted image, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub name: String,
    pub kind: ImageType,
    pub width: u32,
    pub height: u32,
    /// Hex SHA-256 of the bytes: the image's key in the store.
    pub sha256: String,
    pub data: Vec<u8>,
}

/// An attachment as a run lists it (the bytes stay in the store).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttachmentInfo {
    pub attachment_id: String,
    pub name: String,
    pub mime_type: String,
    pub bytes: u64,
    pub sha256: String,
    pub width: u32,
    pub height: u32,
}

/// Why an attachment was refused; every message names the file and what to do.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AttachError {
    #[error("attachments: {count} files attached; a run takes at most {MAX_FILES} images (every request of an agent carries them all); attach fewer")]
    TooMany { count: usize },
    #[error("attachments: images were attached but the model {model} is not declared to take images; if it is a vision model, set BOO_VISION_MODEL=1 (or initializationOptions.visionModel: true, or visionModel: true on the launch, `--vision` on the command line); otherwise launch without attachments")]
    TextOnlyModel { model: String },
    #[error("attachments[{index}] {name}: {reason}")]
    Refused {
        index: usize,
        name: String,
        reason: String,
    },
}

fn refused(index: usize, name: &str, reason: impl Into<String>) -> AttachError {
    AttachError::Refused {
        index,
        name: name.to_string(),
        reason: reason.into(),
    }
}

const TYPES: &str = "PNG, JPEG, GIF or WebP";

/// Reads, checks and sniffs a launch's attachments. `vision`: the run's model is
/// declared to take images. Blocking (reads files); call off the async threads.
pub fn intake(
    inputs: &[AttachmentInput],
    root: &Path,
    vision: bool,
    model: Option<&str>,
) -> Result<Vec<Attachment>, AttachError> {
    if inputs.is_empty() {
        return Ok(Vec::new());
    }
    if inputs.len() > MAX_FILES {
        return Err(AttachError::TooMany {
            count: inputs.len(),
        });
    }
    if !vision {
        return Err(AttachError::TextOnlyModel {
            model: model.unwrap_or("(the endpoint's default)").to_string(),
        });
    }
    let mut out: Vec<Attachment> = Vec::with_capacity(inputs.len());
    for (index, input) in inputs.iter().enumerate() {
        let (name, declared, data) = match input {
            AttachmentInput::Inline {
                name,
                mime_type,
                data,
            } => {
                let name = name.trim();
                if data.len() > MAX_BASE64_CHARS + MAX_BASE64_CHARS / 64 {
                    return Err(refused(
                        index,
                        name,
                        format!("{} characters of base64; the most qwen forwards is {MAX_BASE64_CHARS} (about {} MB of image)", data.len(), MAX_BYTES / 1_000_000),
                    ));
                }
                let bytes = base64_decode(data)
                    .map_err(|e| refused(index, name, format!("data is not base64: {e}")))?;
                (name.to_string(), mime_type.clone(), bytes)
            }
            AttachmentInput::Path(p) => {
                let full = if p.is_absolute() {
                    p.clone()
                } else {
                    root.join(p)
                };
                let name = full
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| p.display().to_string());
                let shown = p.display().to_string();
                let meta = std::fs::metadata(&full).map_err(|e| {
                    refused(
                        index,
                        &shown,
                        format!("cannot read {} ({e})", full.display()),
                    )
                })?;
                if !meta.is_file() {
                    return Err(refused(index, &shown, "is not a regular file"));
                }
                if meta.len() > MAX_BYTES as u64 {
                    return Err(refused(index, &shown, too_big(meta.len())));
                }
                let bytes = std::fs::read(&full).map_err(|e| {
                    refused(
                        index,
                        &shown,
                        format!("cannot read {} ({e})", full.display()),
                    )
                })?;
                (name, None, bytes)
            }
        };
        if name.is_empty() {
            return Err(refused(
                index,
                "",
                "the name is empty; give the image a file name",
            ));
        }
        if name.len() > MAX_NAME
            || name.contains(['/', '\\', '\0'])
            || name.chars().any(char::is_control)
        {
            return Err(refused(
                index,
                &name,
                format!("the name must be a file name of at most {MAX_NAME} bytes, without slashes or control characters"),
            ));
        }
        if out.iter().any(|a| a.name == name) {
            return Err(refused(
                index,
                &name,
                "another attachment of this run has the same name; findings cite images by name, so rename one",
            ));
        }
        if data.len() > MAX_BYTES {
            return Err(refused(index, &name, too_big(data.len() as u64)));
        }
        let Some(s) = sniff(&data) else {
            return Err(refused(
                index,
                &name,
                format!("the content is not a {TYPES} image (the type is read from the bytes, not the name); convert it to PNG"),
            ));
        };
        if let Some(d) = declared.as_deref() {
            match ImageType::from_mime(d) {
                Some(t) if t == s.kind => {}
                _ => {
                    return Err(refused(
                        index,
                        &name,
                        format!("mimeType says {d} but the content is {}; send the right mimeType or leave it out", s.kind.mime()),
                    ))
                }
            }
        }
        if let Some(t) = ImageType::from_name(&name) {
            if t != s.kind {
                return Err(refused(
                    index,
                    &name,
                    format!(
                        "the name says {} but the content is {}; rename the file",
                        t.mime(),
                        s.kind.mime()
                    ),
                ));
            }
        }
        out.push(Attachment {
            name,
            kind: s.kind,
            width: s.width,
            height: s.height,
            sha256: hex(&Sha256::digest(&data)),
            data,
        });
    }
    Ok(out)
}

fn too_big(bytes: u64) -> String {
    format!(
        "{bytes} bytes; the most qwen forwards is {MAX_BYTES} bytes ({MAX_BASE64_CHARS} characters of base64); scale or crop the image"
    )
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests;

use super::*;

const PNG: &[u8] = include_bytes!("../../tests/fixtures/images/red-3x2.png");

fn jpeg(sof: u8, w: u16, h: u16) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8];
    // APP0 (JFIF), 16 bytes long.
    b.extend([0xFF, 0xE0, 0x00, 0x10]);
    b.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
    // A DHT segment before the frame (must be skipped, not read as a frame).
    b.extend([0xFF, 0xC4, 0x00, 0x04, 0x00, 0x00]);
    // Fill bytes before a marker are allowed.
    b.extend([0xFF, 0xFF, sof, 0x00, 0x11, 0x08]);
    b.extend(h.to_be_bytes());
    b.extend(w.to_be_bytes());
    b.extend([0x03, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1]);
    b.extend([0xFF, 0xD9]);
    b
}

fn gif(w: u16, h: u16) -> Vec<u8> {
    let mut b = b"GIF89a".to_vec();
    b.extend(w.to_le_bytes());
    b.extend(h.to_le_bytes());
    b.extend([0, 0, 0, 0x3B]);
    b
}

fn riff(chunk: &[u8; 4], body: &[u8]) -> Vec<u8> {
    let mut b = b"RIFF".to_vec();
    b.extend(((body.len() + 12) as u32).to_le_bytes());
    b.extend(b"WEBP");
    b.extend(chunk);
    b.extend((body.len() as u32).to_le_bytes());
    b.extend(body);
    b
}

fn webp_lossy(w: u16, h: u16) -> Vec<u8> {
    let mut body = vec![0x30, 0x01, 0x00, 0x9d, 0x01, 0x2a];
    body.extend(w.to_le_bytes());
    body.extend(h.to_le_bytes());
    body.extend([0; 4]);
    riff(b"VP8 ", &body)
}

fn webp_lossless(w: u32, h: u32) -> Vec<u8> {
    let bits = (w - 1) | (h - 1) << 14;
    let mut body = vec![0x2f];
    body.extend(bits.to_le_bytes());
    riff(b"VP8L", &body)
}

fn webp_extended(w: u32, h: u32) -> Vec<u8> {
    let mut body = vec![0x10, 0, 0, 0];
    body.extend(&(w - 1).to_le_bytes()[..3]);
    body.extend(&(h - 1).to_le_bytes()[..3]);
    riff(b"VP8X", &body)
}

fn sniffed(kind: ImageType, width: u32, height: u32) -> Option<Sniffed> {
    Some(Sniffed {
        kind,
        width,
        height,
    })
}

#[test]
fn sniffing_reads_the_type_and_size_from_the_headers() {
    let cases: Vec<(&str, Vec<u8>, Option<Sniffed>)> = vec![
        ("png", PNG.to_vec(), sniffed(ImageType::Png, 3, 2)),
        (
            "baseline jpeg",
            jpeg(0xC0, 640, 480),
            sniffed(ImageType::Jpeg, 640, 480),
        ),
        (
            "progressive jpeg",
            jpeg(0xC2, 7, 5),
            sniffed(ImageType::Jpeg, 7, 5),
        ),
        ("gif", gif(9, 4), sniffed(ImageType::Gif, 9, 4)),
        (
            "lossy webp",
            webp_lossy(6, 3),
            sniffed(ImageType::Webp, 6, 3),
        ),
        (
            "lossless webp",
            webp_lossless(5, 8),
            sniffed(ImageType::Webp, 5, 8),
        ),
        (
            "extended webp",
            webp_extended(4000, 3000),
            sniffed(ImageType::Webp, 4000, 3000),
        ),
        ("empty", Vec::new(), None),
        ("text", b"hello, this is not an image".to_vec(), None),
        (
            "svg",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>".to_vec(),
            None,
        ),
        ("bmp", b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0".to_vec(), None),
        ("png cut short", PNG[..18].to_vec(), None),
        (
            "png without IHDR first",
            {
                let mut b = PNG.to_vec();
                b[12..16].copy_from_slice(b"IDAT");
                b
            },
            None,
        ),
        ("jpeg without a frame", vec![0xFF, 0xD8, 0xFF, 0xD9], None),
        ("jpeg cut short", jpeg(0xC0, 10, 10)[..30].to_vec(), None),
        ("zero-sized gif", gif(0, 4), None),
        ("webp with an unknown chunk", riff(b"ABCD", &[0; 10]), None),
        (
            "riff that is not webp",
            {
                let mut b = webp_lossy(2, 2);
                b[8..12].copy_from_slice(b"WAVE");
                b
            },
            None,
        ),
    ];
    for (what, bytes, want) in cases {
        assert_eq!(sniff(&bytes), want, "{what}");
    }
}

#[test]
fn base64_round_trips_and_refuses_what_is_not_base64() {
    for n in 0..20usize {
        let data: Vec<u8> = (0..n as u8).map(|i| i.wrapping_mul(37)).collect();
        let text = base64_encode(&data);
        assert_eq!(text.len() % 4, 0);
        assert_eq!(base64_decode(&text).unwrap(), data, "{n} bytes");
        // Padding may be left out, and line breaks are ignored.
        let bare = text.trim_end_matches('=');
        assert_eq!(base64_decode(bare).unwrap(), data);
    }
    assert_eq!(base64_encode(b"boo!"), "Ym9vIQ==");
    assert_eq!(base64_decode("Ym9v\nIQ==").unwrap(), b"boo!");
    assert!(base64_decode("Ym9v*Q==")
        .unwrap_err()
        .contains("character 4"));
    assert!(base64_decode("Ym==9v")
        .unwrap_err()
        .contains("after the padding"));
    assert!(base64_decode("Y").unwrap_err().contains("middle of a byte"));
}

fn inline(name: &str, mime: Option<&str>, data: &[u8]) -> AttachmentInput {
    AttachmentInput::Inline {
        name: name.into(),
        mime_type: mime.map(String::from),
        data: base64_encode(data),
    }
}

fn refusal(inputs: &[AttachmentInput]) -> String {
    intake(inputs, Path::new("/nonexistent-root"), true, Some("m"))
        .unwrap_err()
        .to_string()
}

#[test]
fn intake_accepts_images_and_keys_them_by_sha256() {
    let got = intake(
        &[
            inline("shot.png", Some("image/png"), PNG),
            inline("diagram", None, &gif(9, 4)),
            inline("photo.JPG", Some("image/jpg"), &jpeg(0xC0, 7, 5)),
        ],
        Path::new("/"),
        true,
        None,
    )
    .unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].kind, ImageType::Png);
    assert_eq!((got[0].width, got[0].height), (3, 2));
    assert_eq!(got[0].data, PNG);
    assert_eq!(hex(&Sha256::digest(PNG)), got[0].sha256);
    assert_eq!(got[0].sha256.len(), 64);
    assert_eq!(got[1].kind.mime(), "image/gif");
    assert_eq!(got[2].kind, ImageType::Jpeg);
}

#[test]
fn intake_reads_paths_relative_to_the_root() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let got = intake(
        &[AttachmentInput::Path(
            "tests/fixtures/images/red-3x2.png".into(),
        )],
        root,
        true,
        None,
    )
    .unwrap();
    assert_eq!(got[0].name, "red-3x2.png");
    assert_eq!(got[0].data, PNG);
    let e = intake(
        &[AttachmentInput::Path(
            "tests/fixtures/images/missing.png".into(),
        )],
        root,
        true,
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("tests/fixtures/images/missing.png") && e.contains("cannot read"),
        "{e}"
    );
    let e = intake(&[AttachmentInput::Path("tests".into())], root, true, None)
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a regular file"), "{e}");
}

#[test]
fn intake_refusals_name_the_file_and_the_limit() {
    // A text-only model: nothing is read, the message says how to declare a vision model.
    let e = intake(
        &[inline("a.png", None, PNG)],
        Path::new("/"),
        false,
        Some("qwen3-coder"),
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("qwen3-coder") && e.contains("BOO_VISION_MODEL=1"),
        "{e}"
    );
    assert!(e.contains("visionModel"), "{e}");
    // Without attachments the model does not matter.
    assert!(intake(&[], Path::new("/"), false, None).unwrap().is_empty());

    let many: Vec<_> = (0..MAX_FILES + 1)
        .map(|i| inline(&format!("{i}.png"), None, PNG))
        .collect();
    assert!(refusal(&many).contains(&format!("at most {MAX_FILES}")));

    let cases: Vec<(AttachmentInput, &[&str])> = vec![
        (
            inline("notes.png", None, b"just some text"),
            &["attachments[0] notes.png", "not a PNG, JPEG, GIF or WebP"],
        ),
        (
            inline("a.bmp", None, b"BM\x3a\0\0\0\0\0\0\0\x36\0\0\0"),
            &["a.bmp", "not a PNG"],
        ),
        (
            inline("shot.png", Some("image/jpeg"), PNG),
            &[
                "shot.png",
                "mimeType says image/jpeg but the content is image/png",
            ],
        ),
        (
            inline("shot.png", Some("text/plain"), PNG),
            &["mimeType says text/plain"],
        ),
        (
            inline("photo.jpg", None, PNG),
            &[
                "photo.jpg",
                "the name says image/jpeg but the content is image/png",
            ],
        ),
        (
            AttachmentInput::Inline {
                name: "x.png".into(),
                mime_type: None,
                data: "not base64!".into(),
            },
            &["x.png", "not base64"],
        ),
        (
            AttachmentInput::Inline {
                name: "huge.png".into(),
                mime_type: None,
                data: "A".repeat(MAX_BASE64_CHARS + MAX_BASE64_CHARS / 64 + 4),
            },
            &["huge.png", "9900000"],
        ),
        (inline("  ", None, PNG), &["the name is empty"]),
        (inline("a/b.png", None, PNG), &["without slashes"]),
    ];
    for (input, wants) in cases {
        let e = refusal(std::slice::from_ref(&input));
        for w in wants {
            assert!(e.contains(w), "{input:?}: {e:?} lacks {w:?}");
        }
    }
    // Decoded size over the limit (base64 within its slack, bytes over).
    let mut big = PNG.to_vec();
    big.resize(MAX_BYTES + 1, 0);
    let e = refusal(&[inline("big.png", None, &big)]);
    assert!(
        e.contains("big.png") && e.contains(&MAX_BYTES.to_string()),
        "{e}"
    );
    // Two attachments of a run may not share a name.
    let e = refusal(&[inline("a.png", None, PNG), inline("a.png", None, PNG)]);
    assert!(
        e.contains("attachments[1] a.png") && e.contains("same name"),
        "{e}"
    );
}

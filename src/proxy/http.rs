//! The little HTTP/1.1 the proxy speaks to agents: one request per connection, the
//! answer in chunked transfer encoding (each upstream read is one chunk, written as
//! soon as it arrives), then `Connection: close`.

use super::usage;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// The largest request head and body accepted (a prompt with images fits).
const MAX_HEAD: usize = 64 * 1024;
const MAX_BODY: usize = 64 * 1024 * 1024;

#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header named `name` (lower case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("the connection closed before a request")]
    Closed,
    #[error("bad request: {0}")]
    Bad(String),
    #[error("reading the request failed: {0}")]
    Io(#[from] std::io::Error),
}

async fn line<R: AsyncRead + Unpin>(
    rd: &mut BufReader<R>,
    budget: &mut usize,
) -> Result<String, ReadError> {
    let mut buf = Vec::new();
    let n = (&mut *rd)
        .take(*budget as u64 + 1)
        .read_until(b'\n', &mut buf)
        .await?;
    if n > *budget {
        return Err(ReadError::Bad("request head too large".into()));
    }
    *budget -= n;
    if n == 0 {
        return Err(ReadError::Closed);
    }
    let s = String::from_utf8(buf).map_err(|_| ReadError::Bad("head is not UTF-8".into()))?;
    Ok(s.trim_end_matches(['\r', '\n']).to_string())
}

/// Reads one request: head, then a `Content-Length` or chunked body.
pub async fn read_request<R: AsyncRead + Unpin>(
    rd: &mut BufReader<R>,
) -> Result<Request, ReadError> {
    let mut budget = MAX_HEAD;
    let first = line(rd, &mut budget).await?;
    let mut parts = first.split(' ');
    let (Some(method), Some(target), Some(_version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad(format!("bad request line {first:?}")));
    };
    let mut headers = Vec::new();
    loop {
        let l = line(rd, &mut budget).await.map_err(|e| match e {
            ReadError::Closed => ReadError::Bad("the head ended early".into()),
            e => e,
        })?;
        if l.is_empty() {
            break;
        }
        let Some((k, v)) = l.split_once(':') else {
            return Err(ReadError::Bad(format!("bad header line {l:?}")));
        };
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let mut req = Request {
        method: method.to_string(),
        target: target.to_string(),
        headers,
        body: Vec::new(),
    };
    let chunked = req
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        loop {
            let mut b = MAX_HEAD;
            let size_line = line(rd, &mut b).await?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| ReadError::Bad(format!("bad chunk size {size_line:?}")))?;
            if req.body.len() + size > MAX_BODY {
                return Err(ReadError::Bad("request body too large".into()));
            }
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut b = MAX_HEAD;
                    if line(rd, &mut b).await?.is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = req.body.len();
            req.body.resize(start + size, 0);
            rd.read_exact(&mut req.body[start..]).await?;
            let mut b = 2;
            line(rd, &mut b).await?;
        }
    } else if let Some(len) = req.header("content-length") {
        let len: usize = len
            .parse()
            .map_err(|_| ReadError::Bad(format!("bad content-length {len:?}")))?;
        if len > MAX_BODY {
            return Err(ReadError::Bad("request body too large".into()));
        }
        req.body.resize(len, 0);
        rd.read_exact(&mut req.body).await?;
    }
    Ok(req)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Status",
    }
}

pub async fn write_head<W: AsyncWrite + Unpin>(
    wr: &mut W,
    status: u16,
    content_type: Option<&str>,
) -> std::io::Result<()> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    if let Some(ct) = content_type {
        head.push_str(&format!("content-type: {ct}\r\n"));
    }
    head.push_str(
        "cache-control: no-cache\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n",
    );
    wr.write_all(head.as_bytes()).await?;
    wr.flush().await
}

pub async fn write_chunk<W: AsyncWrite + Unpin>(wr: &mut W, bytes: &[u8]) -> std::io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let mut out = Vec::with_capacity(bytes.len() + 12);
    out.extend_from_slice(format!("{:x}\r\n", bytes.len()).as_bytes());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    wr.write_all(&out).await?;
    wr.flush().await
}

pub async fn write_end<W: AsyncWrite + Unpin>(wr: &mut W) -> std::io::Result<()> {
    wr.write_all(b"0\r\n\r\n").await?;
    wr.flush().await
}

/// A whole JSON error answer in the OpenAI shape.
pub async fn write_error<W: AsyncWrite + Unpin>(
    wr: &mut W,
    status: u16,
    message: &str,
) -> std::io::Result<()> {
    let body =
        serde_json::json!({"error": {"message": message, "type": "boo_proxy", "code": status}})
            .to_string();
    let head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        reason(status),
        body.len()
    );
    wr.write_all(head.as_bytes()).await?;
    wr.write_all(body.as_bytes()).await?;
    wr.flush().await
}

/// Reads token counts out of an answer as it streams by: SSE `data:` lines, or one
/// JSON body. Keeps only the current line and the first bytes (for error text).
#[derive(Default)]
pub struct SseScan {
    line: Vec<u8>,
    first: Vec<u8>,
    whole: Vec<u8>,
    whole_overflow: bool,
    counts: usage::Counts,
}

/// The largest non-stream body kept to read its usage.
const MAX_WHOLE: usize = 4 * 1024 * 1024;

impl SseScan {
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.first.len() < 1024 {
            let n = (1024 - self.first.len()).min(bytes.len());
            self.first.extend_from_slice(&bytes[..n]);
        }
        if !self.whole_overflow {
            if self.whole.len() + bytes.len() > MAX_WHOLE {
                self.whole_overflow = true;
                self.whole = Vec::new();
            } else {
                self.whole.extend_from_slice(bytes);
            }
        }
        for &b in bytes {
            if b == b'\n' {
                let l = std::mem::take(&mut self.line);
                self.take_line(&l);
            } else if self.line.len() < MAX_WHOLE {
                self.line.push(b);
            }
        }
    }

    fn take_line(&mut self, l: &[u8]) {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        if let Some(data) = l.strip_prefix(b"data:") {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(data) {
                self.counts.merge(usage::parse(&v));
            }
        }
    }

    /// The first bytes of the answer.
    pub fn head(&self, n: usize) -> Vec<u8> {
        self.first[..n.min(self.first.len())].to_vec()
    }

    /// The counts read so far; a non-stream answer is parsed whole.
    pub fn counts(&self) -> usage::Counts {
        let mut c = self.counts;
        if !self.whole_overflow {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&self.whole) {
                c.merge(usage::parse(&v));
            }
        }
        c
    }
}

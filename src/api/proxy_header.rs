//! A small, strict PROXY protocol reader (HAProxy's v1 text and v2 binary headers), for
//! listeners behind a TCP proxy that cannot add `X-Forwarded-For` (TLS passed through). The
//! header is read byte-exactly from the socket, before TLS or HTTP, so nothing after it is
//! consumed. Only a peer in `trusted_proxies` may send one (the caller checks that first); a
//! listener configured for it refuses a connection without one.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use tokio::io::AsyncReadExt;

/// Why a connection's PROXY header was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    /// The connection does not start with a PROXY header.
    #[error("no PROXY protocol header")]
    Missing,
    /// A header that breaks the specification.
    #[error("malformed PROXY protocol header: {0}")]
    Malformed(&'static str),
    /// The connection ended or failed while the header was read.
    #[error("reading the PROXY protocol header: {0}")]
    Io(String),
}

/// The v2 signature.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 header, CRLF included (the specification's bound).
const V1_MAX: usize = 107;
/// Longest v2 address block we accept (addresses plus a few TLVs).
const V2_MAX: usize = 536;

/// Reads the header from `stream`; returns the client's address (`None` for a v1 `UNKNOWN`
/// or v2 `LOCAL` header: the proxy's own connection, e.g. a health check, so the peer counts).
pub async fn read<S: tokio::io::AsyncRead + Unpin>(stream: &mut S) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let io = |e: std::io::Error| ProxyHeaderError::Io(e.to_string());
    let mut start = [0u8; 5];
    stream.read_exact(&mut start).await.map_err(io)?;
    if &start == b"PROXY" {
        let mut line = start.to_vec();
        while !line.ends_with(b"\r\n") {
            if line.len() >= V1_MAX {
                return Err(ProxyHeaderError::Malformed("v1 line longer than 107 bytes"));
            }
            line.push(stream.read_u8().await.map_err(io)?);
        }
        return parse_v1(&line);
    }
    if start != V2_SIGNATURE[..5] {
        return Err(ProxyHeaderError::Missing);
    }
    let mut head = [0u8; 16];
    head[..5].copy_from_slice(&start);
    stream.read_exact(&mut head[5..]).await.map_err(io)?;
    if head[..12] != V2_SIGNATURE {
        return Err(ProxyHeaderError::Missing);
    }
    let length = usize::from(u16::from_be_bytes([head[14], head[15]]));
    if length > V2_MAX {
        return Err(ProxyHeaderError::Malformed("v2 address block too long"));
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.map_err(io)?;
    parse_v2(&head, &body)
}

/// A whole v1 line, `PROXY ` to CRLF.
pub fn parse_v1(line: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let bad = ProxyHeaderError::Malformed;
    let text = std::str::from_utf8(line).map_err(|_| bad("v1 header is not ASCII"))?;
    let text = text.strip_suffix("\r\n").ok_or(bad("v1 header does not end in CRLF"))?;
    let fields: Vec<&str> = text.split(' ').collect();
    match fields.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Ok(None),
        ["PROXY", family @ ("TCP4" | "TCP6"), source, _destination, port, _destination_port] => {
            let ip: IpAddr = source.parse().map_err(|_| bad("v1 source address"))?;
            if ip.is_ipv4() != (*family == "TCP4") {
                return Err(bad("v1 address does not match its family"));
            }
            let digits = !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit());
            let leading_zero = port.len() > 1 && port.starts_with('0');
            let port: u16 = port.parse().ok().filter(|_| digits && !leading_zero).ok_or(bad("v1 source port"))?;
            Ok(Some(SocketAddr::new(ip, port)))
        }
        _ => Err(bad("v1 header fields")),
    }
}

/// A v2 header: the 16 fixed bytes and the address block.
pub fn parse_v2(head: &[u8; 16], body: &[u8]) -> Result<Option<SocketAddr>, ProxyHeaderError> {
    let bad = ProxyHeaderError::Malformed;
    if head[12] >> 4 != 2 {
        return Err(bad("v2 version"));
    }
    match head[12] & 0x0f {
        0 => return Ok(None),
        1 => {}
        _ => return Err(bad("v2 command")),
    }
    match head[13] {
        0x11 if body.len() >= 12 => {
            let ip = Ipv4Addr::new(body[0], body[1], body[2], body[3]);
            Ok(Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([body[8], body[9]]))))
        }
        0x21 if body.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&body[..16]);
            let ip = Ipv6Addr::from(octets);
            Ok(Some(SocketAddr::new(IpAddr::V6(ip), u16::from_be_bytes([body[32], body[33]]))))
        }
        0x00 => Ok(None),
        0x11 | 0x21 => Err(bad("v2 address block too short")),
        _ => Err(bad("v2 family (TCP over IPv4 or IPv6 only)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read_bytes(bytes: &[u8]) -> (Result<Option<SocketAddr>, ProxyHeaderError>, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(bytes.to_vec());
        let result = read(&mut cursor).await;
        let position = cursor.position() as usize;
        (result, bytes[position..].to_vec())
    }

    #[tokio::test]
    async fn v1_names_the_client_and_leaves_the_rest_unread() {
        let (got, rest) = read_bytes(b"PROXY TCP4 198.51.100.7 192.0.2.1 5000 80\r\nGET / HTTP/1.1\r\n").await;
        assert_eq!(got.unwrap(), Some("198.51.100.7:5000".parse().unwrap()));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n");
        let (got, _) = read_bytes(b"PROXY TCP6 2001:db8::7 2001:db8::1 443 443\r\n").await;
        assert_eq!(got.unwrap(), Some("[2001:db8::7]:443".parse().unwrap()));
        assert_eq!(read_bytes(b"PROXY UNKNOWN\r\n").await.0.unwrap(), None);
    }

    #[tokio::test]
    async fn v1_is_strict() {
        for bad in [
            &b"PROXY TCP4 198.51.100.7 192.0.2.1 5000 80\n"[..],
            b"PROXY TCP4 2001:db8::7 192.0.2.1 5000 80\r\n",
            b"PROXY TCP4 198.51.100.7 192.0.2.1 99999 80\r\n",
            b"PROXY TCP4 198.51.100.7 192.0.2.1 05000 80\r\n",
            b"PROXY TCP4  198.51.100.7 192.0.2.1 5000 80\r\n",
            b"PROXY UDP4 198.51.100.7 192.0.2.1 5000 80\r\n",
        ] {
            assert!(read_bytes(bad).await.0.is_err(), "{}", String::from_utf8_lossy(bad));
        }
        let long = [b"PROXY ".to_vec(), vec![b'1'; 200]].concat();
        assert!(matches!(read_bytes(&long).await.0, Err(ProxyHeaderError::Malformed(_))));
        assert_eq!(read_bytes(b"GET / HTTP/1.1\r\n\r\n").await.0, Err(ProxyHeaderError::Missing));
    }

    fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.extend([0x20 | command, family]);
        out.extend((body.len() as u16).to_be_bytes());
        out.extend(body);
        out
    }

    #[tokio::test]
    async fn v2_names_the_client() {
        let body = [198, 51, 100, 7, 192, 0, 2, 1, 0x13, 0x88, 0, 80];
        let (got, rest) = read_bytes(&[v2(1, 0x11, &body), b"tail".to_vec()].concat()).await;
        assert_eq!(got.unwrap(), Some("198.51.100.7:5000".parse().unwrap()));
        assert_eq!(rest, b"tail");
        assert_eq!(read_bytes(&v2(0, 0x00, &[])).await.0.unwrap(), None);
        assert!(read_bytes(&v2(1, 0x11, &body[..8])).await.0.is_err());
        assert!(read_bytes(&v2(1, 0x12, &body)).await.0.is_err());
        assert!(read_bytes(&v2(3, 0x11, &body)).await.0.is_err());
        let mut wrong_version = v2(1, 0x11, &body);
        wrong_version[12] = 0x11;
        assert!(read_bytes(&wrong_version).await.0.is_err());
    }
}
